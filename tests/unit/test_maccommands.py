"""MAC command table, parsing and builders."""

from __future__ import annotations

import pytest

from hil.lorawan import maccommands as mac
from hil.lorawan.errors import FrameError


def test_names_by_direction() -> None:
    assert mac.MacCommand(0x02, uplink=True).name == "LinkCheckReq"
    assert mac.MacCommand(0x02, b"\x00\x00", uplink=False).name == "LinkCheckAns"
    assert mac.MacCommand(0x03, b"\x00", uplink=True).name == "LinkADRAns"
    assert mac.MacCommand(0x03, bytes(4), uplink=False).name == "LinkADRReq"
    assert mac.MacCommand(0x0B, b"\x01", uplink=True).name == "RekeyInd"
    assert mac.MacCommand(0x0B, b"\x01", uplink=False).name == "RekeyConf"
    assert mac.MacCommand(0x01, b"\x01", uplink=False).name == "ResetConf"


def test_parse_sequence_and_fields() -> None:
    down = mac.encode([mac.link_check_ans(20, 3), mac.device_time_ans(1_000_000_000.5), mac.rekey_conf(1)])
    parsed = mac.parse(down, uplink=False)
    assert [c.name for c in parsed] == ["LinkCheckAns", "DeviceTimeAns", "RekeyConf"]
    assert parsed[0].fields() == {"margin": 20, "gw_cnt": 3}
    assert parsed[1].fields() == {"gps_time_s": 1_000_000_000.5}
    assert parsed[2].fields() == {"minor": 1}


def test_dev_status_margin_is_signed() -> None:
    cmd = mac.parse(bytes((0x06, 200, 0x3F)), uplink=True)[0]
    assert cmd.fields() == {"battery": 200, "margin": -1}


def test_unknown_cid_ends_the_sequence() -> None:
    parsed = mac.parse(bytes.fromhex("02" "80aabb" "02"), uplink=True)
    assert [c.cid for c in parsed] == [0x02, 0x80] and parsed[1].payload == bytes.fromhex("aabb02")


def test_truncated_command_names_offset() -> None:
    with pytest.raises(FrameError) as info:
        mac.parse(bytes.fromhex("0d" "03"), uplink=False, offset=8)
    assert info.value.offset == 8 and "DeviceTimeAns" in str(info.value)


def test_encode_checks_lengths() -> None:
    with pytest.raises(FrameError, match="takes 2 payload bytes"):
        mac.encode([mac.MacCommand(0x02, b"\x01", uplink=False)])
