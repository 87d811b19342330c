"""TR005 label payloads: parsing what a scanner types, formatting what the label printer prints."""

from __future__ import annotations

import pytest

from hil.lorawan.types import EUI64
from hil.provision.tr005 import LabelError, Tr005Label, crc16_modbus, format_label, parse_label

# The example payload of TR005 (also in tago-io's SDK tests); its checksum AF2C is CRC-16/MODBUS.
EXAMPLE = "LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:OAABBCCDDEEFF:SYYWWNNNNNN:PFOOBAR:CAF2C"


def test_the_tr005_example_parses_with_every_extension() -> None:
    label = parse_label(EXAMPLE)
    assert label.join_eui == EUI64(0x1122334455667788) and label.dev_eui == EUI64(0xAABBCCDDEEFF0011)
    assert (label.vendor_id, label.model_id, label.profile_id) == (0xAABB, 0x1122, "AABB1122")
    assert (label.owner_token, label.serial_number, label.proprietary, label.checksum) == (
        "AABBCCDDEEFF", "YYWWNNNNNN", "FOOBAR", "AF2C")
    assert "owner_token=****" in repr(label) and "OAABB" not in repr(label)  # a claim secret


def test_checksum_is_crc16_modbus_of_everything_before_it() -> None:
    assert crc16_modbus(EXAMPLE[: EXAMPLE.rfind(":C")].encode()) == 0xAF2C
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC catalogue's check value of CRC-16/MODBUS


def test_format_then_parse_round_trip() -> None:
    label = Tr005Label(EUI64(0x70B3D57ED00000FF), EUI64(0x70B3D57ED2000001), 0xFFFF, 1, serial_number="00000001")
    text = format_label(label, checksum=True)
    assert text.startswith("LW:D0:70B3D57ED00000FF:70B3D57ED2000001:FFFF0001:S00000001:C")
    assert parse_label(text).dev_eui == label.dev_eui
    assert format_label(parse_label(EXAMPLE), checksum=True) == EXAMPLE


def test_scanner_noise_is_forgiven_minimal_payload_accepted() -> None:
    label = parse_label("  LW:D0:1122334455667788:aabbccddeeff0011:aabb1122\r\n")
    assert label.dev_eui == EUI64(0xAABBCCDDEEFF0011) and label.serial_number is None


@pytest.mark.parametrize(("payload", "field", "position"), [
    ("", "payload", 0),
    ("HELLO WORLD", "preface", 0),
    ("LW:D1:1122334455667788:AABBCCDDEEFF0011:AABB1122", "schema_id", 3),
    ("LW:D0:11223344556677:AABBCCDDEEFF0011:AABB1122", "join_eui", 6),
    ("LW:D0:1122334455667788:AABBCCDDEEFF00ZZ:AABB1122", "dev_eui", 23),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011", "profile_id", 39),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB112", "profile_id", 40),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:X12", "extension", 49),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:S1:S2", "serial_number", 52),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122::S1", "extension", 49),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:CAF2C:S1", "checksum", 49),
    ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:C12", "checksum", 50),
    (EXAMPLE.replace("FOOBAR", "FOOBAZ"), "checksum", len(EXAMPLE) - 4),
])
def test_malformed_payloads_name_the_field_and_position(payload: str, field: str, position: int) -> None:
    with pytest.raises(LabelError) as err:
        parse_label(payload)
    assert (err.value.field, err.value.position) == (field, position)
    assert f"{field} at character {position}" in str(err.value)


def test_format_refuses_a_colon_in_an_extension() -> None:
    with pytest.raises(LabelError, match="serial_number"):
        format_label(Tr005Label(EUI64(1), EUI64(2), 1, 2, serial_number="A:B"))
