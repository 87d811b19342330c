"""Frame codec: exact layouts, round trips for every message type, and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError
from hil.lorawan.frames import (
    CFList,
    DataFrame,
    DLSettings,
    EncryptedJoinAccept,
    FCtrl,
    JoinAccept,
    JoinRequest,
    MType,
    Proprietary,
    RejoinRequest,
    decode,
)
from hil.lorawan.types import EUI64, DevAddr, NetID
from tests.unit import strategies as s

APP_KEY = AESKey("0102030405060708090a0b0c0d0e0f10")


def test_join_request_layout_is_little_endian_on_air() -> None:
    # ChirpStack lrwn phy_payload.rs test_non_proprietary (facts §1): JoinEUI 0102..08,
    # DevEUI 0807..01, DevNonce 1024 -> 00 | 0807060504030201 | 0102030405060708 | 0004 | MIC.
    jr = JoinRequest(EUI64.parse("0102030405060708"), EUI64.parse("0807060504030201"), 1024, mic=b"\x01\x02\x03\x04")
    assert jr.to_bytes().hex() == "00" "0807060504030201" "0102030405060708" "0004" "01020304"
    back = decode(jr.to_bytes())
    assert back == jr
    assert str(back.join_eui) == "0102030405060708" and back.dev_nonce == 1024


def test_data_frame_layout() -> None:
    frame = DataFrame(
        MType.CONFIRMED_DATA_UP, DevAddr.parse("26011bda"), FCtrl(adr=True, ack=True), 0x1234,
        fopts=b"\x02", fport=10, frm_payload=b"\xaa\xbb", mic=b"\xde\xad\xbe\xef",
    )
    assert frame.to_bytes().hex() == "80" "da1b0126" "a1" "3412" "02" "0a" "aabb" "deadbeef"
    back = decode(frame.to_bytes())
    assert back == frame and back.raw == frame.to_bytes()
    assert back.uplink and back.confirmed and back.fctrl.adr and back.fctrl.ack


def test_fctrl_bit4_means_class_b_up_and_fpending_down() -> None:
    up = decode(bytes.fromhex("40" "04030201" "10" "0000" "00000000"))
    down = decode(bytes.fromhex("60" "04030201" "10" "0000" "00000000"))
    assert up.fctrl.class_b and not up.fctrl.f_pending
    assert down.fctrl.f_pending and not down.fctrl.class_b


def test_frame_without_fport_has_no_payload() -> None:
    frame = decode(bytes.fromhex("40" "04030201" "00" "0100" "11223344"))
    assert frame.fport is None and frame.frm_payload == b"" and frame.fcnt == 1


def test_fport_present_with_empty_payload() -> None:
    frame = decode(bytes.fromhex("40" "04030201" "00" "0100" "07" "11223344"))
    assert frame.fport == 7 and frame.frm_payload == b""


def test_join_accept_encrypt_decrypt_with_cflist() -> None:
    cf = CFList(0, frequencies=(867100000, 867300000, 867500000, 867700000, 867900000))
    ja = JoinAccept(
        join_nonce=0x010203, net_id=NetID.parse("000013"), dev_addr=DevAddr.parse("26011bda"),
        dl_settings=DLSettings(opt_neg=False, rx1_dr_offset=2, rx2_dr=3), rx_delay=1, cf_list=cf.to_bytes(),
    ).signed(APP_KEY)
    wire = ja.encrypt(APP_KEY)
    assert len(wire) == 33 and wire[0] == 0x20
    received = decode(wire)
    assert isinstance(received, EncryptedJoinAccept)
    clear = received.decrypt(APP_KEY)
    assert clear == ja and clear.mic_valid(APP_KEY)
    assert clear.cf_list_decoded == cf
    assert clear.dl_settings.rx1_dr_offset == 2 and clear.dl_settings.rx2_dr == 3


def test_join_accept_decrypted_with_wrong_key_fails_mic() -> None:
    ja = JoinAccept(1, NetID(1), DevAddr(1)).signed(APP_KEY)
    other = AESKey(bytes(16))
    assert not decode(ja.encrypt(APP_KEY)).decrypt(other).mic_valid(other)


def test_rx_delay_zero_means_one_second() -> None:
    assert JoinAccept(1, NetID(1), DevAddr(1), rx_delay=0).rx1_delay_s == 1
    assert JoinAccept(1, NetID(1), DevAddr(1), rx_delay=5).rx1_delay_s == 5


def test_opt_neg_join_accept_needs_join_eui_and_dev_nonce() -> None:
    ja = JoinAccept(1, NetID(1), DevAddr(1), dl_settings=DLSettings(opt_neg=True))
    with pytest.raises(FrameError, match="JoinEUI and DevNonce"):
        ja.signed(APP_KEY)
    signed = ja.signed(APP_KEY, join_eui=EUI64(5), dev_nonce=7)
    assert signed.mic_valid(APP_KEY, join_eui=EUI64(5), dev_nonce=7)
    assert not signed.mic_valid(APP_KEY, join_eui=EUI64(5), dev_nonce=8)
    assert not signed.mic_valid(APP_KEY, join_eui=EUI64(5), dev_nonce=7, join_req_type=0)


def test_rejoin_request_layouts() -> None:
    r0 = RejoinRequest(0, EUI64.parse("0102030405060708"), 5, net_id=NetID.parse("010203"), mic=b"abcd")
    assert r0.to_bytes().hex() == "c0" "00" "030201" "0807060504030201" "0500" + b"abcd".hex()
    r1 = RejoinRequest(1, EUI64(2), 6, join_eui=EUI64.parse("1112131415161718"), mic=b"abcd")
    assert len(r1.to_bytes()) == 24 and r1.to_bytes()[2:10].hex() == "1817161514131211"
    assert decode(r0.to_bytes()) == r0 and decode(r1.to_bytes()) == r1


def test_proprietary_is_opaque() -> None:
    frame = decode(bytes.fromhex("e0deadbeef"))
    assert isinstance(frame, Proprietary) and frame.payload == bytes.fromhex("deadbeef")
    assert frame.to_bytes().hex() == "e0deadbeef"


@given(s.join_requests)
def test_join_request_round_trip(jr: JoinRequest) -> None:
    assert decode(jr.to_bytes()) == jr


@given(s.join_accepts, s.keys)
def test_join_accept_round_trip(ja: JoinAccept, key: AESKey) -> None:
    assert JoinAccept.from_plaintext(ja.plaintext()) == ja
    assert decode(ja.encrypt(key)).decrypt(key) == ja


@given(s.rejoin_requests)
def test_rejoin_round_trip(rj: RejoinRequest) -> None:
    assert decode(rj.to_bytes()) == rj


@given(s.data_frames())
def test_data_frame_round_trip(frame: DataFrame) -> None:
    wire = frame.to_bytes()
    back = decode(wire)
    assert back == frame and back.to_bytes() == wire


@given(s.cf_lists)
def test_cflist_round_trip(cf: CFList) -> None:
    assert CFList.from_bytes(cf.to_bytes()) == cf


@pytest.mark.parametrize(
    ("hex_frame", "field", "offset"),
    [
        ("", "MHDR", 0),
        ("00" + "11" * 10, "DevEUI", 9),
        ("00" + "11" * 17, "DevNonce", 17),
        ("00" + "11" * 18, "MIC", 19),
        ("00" + "11" * 30, "MIC", 19),
        ("20" + "11" * 2, "JoinNonce", 1),
        ("20" + "11" * 5, "NetID", 4),
        ("20" + "11" * 20, "CFList", 13),
        ("40" + "04030201", "FCtrl", 5),
        ("40" + "04030201" + "00" + "0000" + "1122", "MIC", 8),
        ("40" + "04030201" + "05" + "0000" + "11223344", "FOpts", 8),
        ("40" + "04030201" + "01" + "0000" + "02" + "00" + "11223344", "FPort", 9),
        ("c0" + "07" + "00" * 20, "RejoinType", 1),
        ("c001" + "00" * 5, "JoinEUI", 2),
        ("41" + "00" * 15, "MHDR.Major", 0),
    ],
)
def test_malformed_frames_name_field_and_offset(hex_frame: str, field: str, offset: int) -> None:
    with pytest.raises(FrameError) as info:
        decode(bytes.fromhex(hex_frame))
    assert info.value.field == field and info.value.offset == offset
    assert f"field {field} at offset {offset}" in str(info.value)


def test_undefined_cflist_type_is_a_frame_error() -> None:
    plain = JoinAccept(1, NetID(1), DevAddr(1), cf_list=bytes(15) + b"\x07").signed(APP_KEY).plaintext()
    with pytest.raises(FrameError) as info:
        JoinAccept.from_plaintext(plain)
    assert info.value.field == "CFList.CFListType" and info.value.offset == 28


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(FrameError, match="must be bytes"):
        decode("40")  # type: ignore[arg-type]
    assert decode(bytearray.fromhex("e0")) == Proprietary()


@pytest.mark.parametrize(
    "frame",
    [
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), fcnt=0x10000),
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), fopts=bytes(16)),
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), fport=256),
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), frm_payload=b"x"),
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), fopts=b"\x02", fport=0),
        DataFrame(MType.UNCONFIRMED_DATA_UP, DevAddr(1), mic=b"12"),
        DataFrame(MType.JOIN_REQUEST, DevAddr(1)),
        JoinRequest(EUI64(1), EUI64(2), 70000),
        JoinAccept(1 << 24, NetID(1), DevAddr(1)),
        RejoinRequest(3, EUI64(1), 1, net_id=NetID(1)),
        RejoinRequest(0, EUI64(1), 1),
    ],
)
def test_encoders_reject_bad_fields_with_frame_error(frame: object) -> None:
    encode = frame.plaintext if isinstance(frame, JoinAccept) else frame.to_bytes  # type: ignore[attr-defined]
    with pytest.raises(FrameError):
        encode()
