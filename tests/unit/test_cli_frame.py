"""``python -m hil frame decode``: JSON fields, keys unlocking MIC/decryption, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hil.cli import main
from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import CFList, DLSettings, JoinAccept, JoinRequest, MType
from hil.lorawan.security import SessionKeys, derive_session_keys_10
from hil.lorawan.session import seal_frame
from hil.lorawan.types import EUI64, DevAddr, NetID

APP_KEY = "0102030405060708090a0b0c0d0e0f10"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None, str]:
    code = main(["frame", "decode", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def test_join_request(capsys: pytest.CaptureFixture[str]) -> None:
    wire = JoinRequest(EUI64(1), EUI64.parse("70b3d57ed0000001"), 7).signed(AESKey(APP_KEY)).to_bytes()
    code, out, _ = run(capsys, wire.hex(), "--appkey", APP_KEY)
    assert code == 0 and out is not None
    assert out["mtype"] == "join_request" and out["dev_eui"] == "70b3d57ed0000001" and out["dev_nonce"] == 7
    assert out["mic_valid"] is True
    _, out, _ = run(capsys, wire.hex())
    assert out["mic_valid"] is None
    _, out, _ = run(capsys, wire.hex(), "--appkey", "00" * 16)
    assert out["mic_valid"] is False


def test_join_accept_with_session_keys(capsys: pytest.CaptureFixture[str]) -> None:
    cf = CFList(0, frequencies=(867100000, 867300000, 0, 0, 0)).to_bytes()
    ja = JoinAccept(5, NetID.parse("000013"), DevAddr.parse("26011bda"), DLSettings(False, 1, 3), 2, cf)
    wire = ja.signed(AESKey(APP_KEY)).encrypt(AESKey(APP_KEY))
    code, out, _ = run(capsys, wire.hex(), "--appkey", APP_KEY, "--dev-nonce", "9")
    assert code == 0 and out["mic_valid"] is True
    assert out["dev_addr"] == "26011bda" and out["net_id"] == "000013" and out["join_nonce"] == 5
    assert out["dl_settings"] == {"opt_neg": False, "rx1_dr_offset": 1, "rx2_dr": 3} and out["rx_delay"] == 2
    assert out["cf_list"] == {"cf_list_type": 0, "frequencies": [867100000, 867300000, 0, 0, 0]}
    expected = derive_session_keys_10(AESKey(APP_KEY), 5, NetID.parse("000013").wire, 9)
    assert out["session_keys"] == {
        "nwk_s_key": expected.nwk_s_key.reveal_hex(),
        "app_s_key": expected.app_s_key.reveal_hex(),
    }


def test_data_uplink_decrypted_with_32_bit_fcnt(capsys: pytest.CaptureFixture[str]) -> None:
    nwk, app = AESKey(bytes(range(16))), AESKey(bytes(range(16, 32)))
    frame = seal_frame(MType.CONFIRMED_DATA_UP, DevAddr.parse("26011bda"), SessionKeys.for_1_0(nwk, app), 0x2_0005,
                       fopts=b"\x02", fport=10, frm_payload=b"relay")
    code, out, _ = run(capsys, frame.to_bytes().hex(), "--nwkskey", nwk.reveal_hex(), "--appskey", app.reveal_hex(),
                       "--fcnt-msb", "2")
    assert code == 0
    assert out["fcnt"] == 0x20005 and out["fport"] == 10 and out["frm_payload"] == b"relay".hex()
    assert out["mic_valid"] is True and out["fopts"] == "02"
    assert out["mac_commands"][0]["name"] == "LinkCheckReq"
    assert out["fctrl"]["fopts_len"] == 1
    _, out, _ = run(capsys, frame.to_bytes().hex(), "--nwkskey", nwk.reveal_hex())  # wrong MSB: MIC fails
    assert out["mic_valid"] is False and out["frm_payload_decrypted"] is False


def test_lorawan_1_1_uplink_needs_both_integrity_keys(capsys: pytest.CaptureFixture[str]) -> None:
    f, s, e, a = (AESKey(bytes([i]) * 16) for i in (1, 2, 3, 4))
    frame = seal_frame(MType.UNCONFIRMED_DATA_UP, DevAddr(0x01020304), SessionKeys(f, s, e, a, lorawan_1_1=True),
                       3, fopts=b"\x0b\x01", fport=1, frm_payload=b"x", tx_dr=5, tx_ch=2)
    args = [frame.to_bytes().hex(), "--version", "1.1", "--fnwksintkey", f.reveal_hex(), "--snwksintkey",
            s.reveal_hex(), "--nwksenckey", e.reveal_hex(), "--tx-dr", "5", "--tx-ch", "2"]
    _, out, _ = run(capsys, *args)
    assert out["mic_valid"] is True and out["fopts"] == "0b01" and out["mac_commands"][0]["name"] == "RekeyInd"
    _, out, _ = run(capsys, *args[:-2])  # TxCh 0 instead of 2
    assert out["mic_valid"] is False
    _, out, _ = run(capsys, *args, "--fopts-variant", "original")
    assert out["fopts"] != "0b01"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["zz"], "not hex"),
        (["40"], "field DevAddr at offset 1"),
        (["00" * 23, "--appkey", "1234"], "16 bytes"),
        (["00" * 23, "--dir", "down"], "--dir down"),
        (["00" * 23, "--version", "2.0"], "--version"),
        (["00" * 23, "--fcnt-msb", "x"], "not an integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out is None
    assert message in err and err.count("\n") == 1


def test_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "hil", "frame", "decode", "e0aa"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and json.loads(done.stdout) == {"mtype": "proprietary", "major": 0, "payload": "aa",
                                                               "mic": None, "mic_valid": None}
