"""drivers.gateway.protojson: the protobuf JSON mapping rules ChirpStack Gateway Bridge uses."""

from __future__ import annotations

import pytest

from drivers.gateway.protojson import (
    ProtoJsonError,
    ProtoReader,
    camel,
    code_rate_from_enum,
    code_rate_to_enum,
    decode_bytes,
    decode_duration,
    dumps,
    encode_bytes,
    encode_duration,
    message,
)


def test_camel_case_names():
    assert camel("phy_payload") == "phyPayload"
    assert camel("time_since_gps_epoch") == "timeSinceGpsEpoch"
    assert camel("frequency") == "frequency"


def test_bytes_standard_base64_with_padding_both_ways():
    assert encode_bytes(bytes.fromhex("c70c7419")) == "xwx0GQ=="
    assert decode_bytes("xwx0GQ==") == bytes.fromhex("c70c7419")
    assert decode_bytes("xwx0GQ") == bytes.fromhex("c70c7419")  # protojson accepts it unpadded
    assert decode_bytes("-_8=") == b"\xfb\xff"  # and URL-safe
    assert decode_bytes("") == b""


@pytest.mark.parametrize("bad", ["xw!x0GQ==", "x", 12, None, ["xw=="], "+/-_"])
def test_bad_base64_names_the_field(bad):
    with pytest.raises(ProtoJsonError, match=r"rxInfo\.context: expected base64"):
        decode_bytes(bad, "rxInfo.context")


@pytest.mark.parametrize("seconds, text", [
    (1, "1s"), (5.0, "5s"), (1.5, "1.500s"), (0, "0s"), (0.000001, "0.000001s"), (2.000000001, "2.000000001s"),
    (-0.25, "-0.250s"), (1.0005, "1.000500s"),
])
def test_duration_strings_both_ways(seconds, text):
    assert encode_duration(seconds) == text
    assert decode_duration(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("bad", ["1", "1.s", "s", "1.0000000001s", "1 s", 1, None, "+1s"])
def test_bad_duration_is_rejected_with_its_path(bad):
    with pytest.raises(ProtoJsonError, match=r"timing\.delay\.delay: expected a duration"):
        decode_duration(bad, "timing.delay.delay")


def test_duration_out_of_range():
    with pytest.raises(ProtoJsonError, match="range"):
        encode_duration(4e11)
    with pytest.raises(ProtoJsonError, match="finite"):
        encode_duration(float("nan"))


@pytest.mark.parametrize("rate, name", [("4/5", "CR_4_5"), ("4/8", "CR_4_8"), ("4/5LI", "CR_LI_4_5"),
                                        ("2/6", "CR_2_6")])
def test_code_rate_enum_names_both_ways(rate, name):
    assert code_rate_to_enum(rate) == name
    assert code_rate_from_enum(name) == rate


def test_code_rate_numbers_and_default():
    assert code_rate_from_enum(1) == "4/5"
    assert code_rate_from_enum(None) is None  # omitted = CR_UNDEFINED
    assert code_rate_from_enum("CR_UNDEFINED") is None
    with pytest.raises(ProtoJsonError, match="codeRate"):
        code_rate_from_enum("CR_9_9")
    with pytest.raises(ProtoJsonError, match="4/9"):
        code_rate_to_enum("4/9")


def test_message_omits_default_scalars_but_keeps_set_messages():
    body = message(downlink_id=0, gateway_id="", power=0, flag=False, items=[], ctx=b"", name=None,
                   immediately={}, inv=True, freq=868100000, payload=b"\x01")
    assert body == {"immediately": {}, "inv": True, "freq": 868100000, "payload": "AQ=="}
    assert dumps(body) == b'{"immediately":{},"inv":true,"freq":868100000,"payload":"AQ=="}'


def test_reader_defaults_aliases_and_numbers():
    msg = ProtoReader.loads(b'{"rx_info":{"rssi":"-52","uplinkId":7895.0,"snr":"NaN"},"a":null}')
    rx = msg.message("rx_info")
    assert rx.int32("rssi") == -52 and rx.uint32("uplink_id") == 7895
    assert rx.double("snr") != rx.double("snr")  # NaN
    assert rx.bytes("context") == b"" and rx.string("gateway_id") == "" and rx.boolean("x") is False
    assert msg.message("tx_info").uint32("frequency") == 0 and msg.messages("items") == []
    assert rx.duration("time_since_gps_epoch") is None
    assert rx.enum("crc_status", ("NO_CRC", "BAD_CRC", "CRC_OK")) == "NO_CRC"


@pytest.mark.parametrize("payload, match", [
    (b'{"rxInfo":{"rssi":1.5}}', r"rxInfo\.rssi: expected an integer"),
    (b'{"rxInfo":{"rssi":true}}', r"rxInfo\.rssi: expected an integer"),
    (b'{"rxInfo":{"uplinkId":-1}}', r"rxInfo\.uplinkId: expected an integer in 0\.\.4294967295"),
    (b'{"rxInfo":{"uplinkId":4294967296}}', r"rxInfo\.uplinkId"),
    (b'{"rxInfo":{"snr":"abc"}}', r"rxInfo\.snr: expected a number"),
    (b'{"rxInfo":{"gatewayId":5}}', r"rxInfo\.gatewayId: expected a string"),
    (b'{"rxInfo":[]}', r"rxInfo: expected an object"),
    (b'{"rxInfo":{"items":{}}}', r"rxInfo\.items: expected a list"),
    (b'{"rxInfo":{"items":[3]}}', r"rxInfo\.items\[0\]: expected an object"),
])
def test_reader_errors_name_the_field(payload, match):
    with pytest.raises(ProtoJsonError, match=match):
        rx = ProtoReader.loads(payload).message("rx_info")
        rx.int32("rssi"), rx.uint32("uplink_id"), rx.double("snr"), rx.string("gateway_id"), rx.messages("items")


@pytest.mark.parametrize("payload, match", [
    (b"\x0a\x04\xc7\x0c\x74\x19\xff", "not UTF-8"), (b"{", "not JSON"), (b"[1]", "expected a JSON object"),
])
def test_reader_rejects_non_objects(payload, match):
    with pytest.raises(ProtoJsonError, match=match):
        ProtoReader.loads(payload, "UplinkFrame")
