"""LoRa Alliance TR005 device-identification QR payloads: parse a scanned label, format a new one.

A TR005 payload reads ``LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>[:<ext>...]``:

* ``LW`` the preface, ``D0`` the schema of a device QR code;
* JoinEUI and DevEUI as 16 hex digits (big-endian display form), ProfileID as 8 hex digits:
  the VendorID (4) then the vendor's model/profile id (4);
* optional extensions, each one letter and its value with no ``:`` in it: ``O`` OwnerToken,
  ``S`` serial number, ``P`` proprietary, ``C`` checksum (4 hex digits, last).

Format as in The Things Stack's ``pkg/qrcodegenerator/qrcode/enddevices`` (LoRaAllianceTR005,
which cites TR005_LoRaWAN_Device_Identification_QR_Codes.pdf). The checksum is CRC-16/MODBUS of
every character before ``:C``: that reproduces ``AF2C`` of the example payload
``LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:OAABBCCDDEEFF:SYYWWNNNNNN:PFOOBAR:CAF2C``
(used by tago-io's SDK tests); no other common CRC-16 does (verify against the PDF).

Scanners type what they read, so the parser forgives surrounding whitespace and lower-case hex;
anything else malformed raises :class:`LabelError` naming the field and its character position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hil.lorawan.types import EUI64

__all__ = ["LabelError", "Tr005Label", "crc16_modbus", "format_label", "parse_label"]

_HEX = re.compile(r"[0-9A-Fa-f]+")
_EXTENSIONS = {"O": "owner_token", "S": "serial_number", "P": "proprietary", "C": "checksum"}
_EXT_VALUE = re.compile(r"[\x21-\x7e]*")  # printable ASCII; ':' is excluded below


class LabelError(ValueError):
    """A malformed TR005 payload: ``field`` names the part, ``position`` its 0-based character offset."""

    def __init__(self, message: str, *, field: str, position: int) -> None:
        super().__init__(f"TR005 label: {field} at character {position}: {message}")
        self.field = field
        self.position = position


@dataclass(frozen=True, slots=True)
class Tr005Label:
    """The fields of a TR005 device QR code (the OwnerToken is a claim secret: not in ``repr``)."""

    join_eui: EUI64
    dev_eui: EUI64
    vendor_id: int  # 16 bits
    model_id: int  # 16 bits: the vendor's profile (model) id
    serial_number: str | None = None
    proprietary: str | None = None
    owner_token: str | None = None
    checksum: str | None = None  # as read; format_label computes it

    @property
    def profile_id(self) -> str:
        """The 8-hex-digit ProfileID (VendorID then model id), upper case."""
        return f"{self.vendor_id:04X}{self.model_id:04X}"

    def __repr__(self) -> str:
        token = ", owner_token=****" if self.owner_token else ""
        return (f"Tr005Label(join_eui={str(self.join_eui).upper()}, dev_eui={str(self.dev_eui).upper()}, "
                f"profile_id={self.profile_id}, serial_number={self.serial_number!r}{token})")


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no final xor). Eight lines: not worth a dependency."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _hex_field(text: str, digits: int, field: str, position: int) -> int:
    if len(text) != digits or not _HEX.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise LabelError(f"expected {digits} hex digits, got {shown!r}", field=field, position=position)
    return int(text, 16)


def parse_label(text: str) -> Tr005Label:
    """Parse a scanned TR005 payload; :class:`LabelError` (naming field and position) if malformed."""
    if not isinstance(text, str):
        raise LabelError(f"expected text, got {type(text).__name__}", field="payload", position=0)
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if not body:
        raise LabelError("empty: nothing was scanned", field="payload", position=0)
    parts = body.split(":")
    starts: list[int] = []
    pos = lead
    for part in parts:
        starts.append(pos)
        pos += len(part) + 1
    if parts[0] != "LW":
        raise LabelError(f"expected the preface 'LW', got {parts[0][:10]!r} (not a LoRaWAN TR005 code)",
                         field="preface", position=starts[0])
    if len(parts) < 2 or parts[1] != "D0":
        got = parts[1][:10] if len(parts) > 1 else "nothing"
        raise LabelError(f"expected schema 'D0' (device QR code), got {got!r}", field="schema_id",
                         position=starts[1] if len(parts) > 1 else pos - 1)
    names = ("join_eui", "dev_eui", "profile_id")
    if len(parts) < 5:
        missing = names[len(parts) - 2]
        raise LabelError(f"missing: the payload ends after {len(parts)} field(s); expected "
                         "LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>", field=missing, position=len(text.rstrip()))
    join_eui = EUI64(_hex_field(parts[2], 16, "join_eui", starts[2]))
    dev_eui = EUI64(_hex_field(parts[3], 16, "dev_eui", starts[3]))
    profile = _hex_field(parts[4], 8, "profile_id", starts[4])
    found: dict[str, str] = {}
    for index in range(5, len(parts)):
        part, start = parts[index], starts[index]
        if not part:
            raise LabelError("empty extension (two ':' in a row, or a trailing ':')", field="extension",
                             position=start)
        kind = part[0]
        name = _EXTENSIONS.get(kind)
        if name is None:
            raise LabelError(f"unknown extension {kind!r}; expected O (OwnerToken), S (serial), P (proprietary) "
                             "or C (checksum)", field="extension", position=start)
        if name in found:
            raise LabelError(f"extension {kind} given twice", field=name, position=start)
        value = part[1:]
        if not _EXT_VALUE.fullmatch(value):
            raise LabelError("only printable ASCII is allowed in an extension", field=name, position=start + 1)
        if name == "checksum":
            if index != len(parts) - 1:
                raise LabelError("the checksum must be the last field", field=name, position=start)
            _hex_field(value, 4, name, start + 1)
            want = crc16_modbus(body[: body.rfind(":C")].encode("ascii"))
            if int(value, 16) != want:
                raise LabelError(f"checksum {value.upper()} does not match the payload (CRC-16 {want:04X}): "
                                 "a misread label", field=name, position=start + 1)
        found[name] = value
    return Tr005Label(join_eui, dev_eui, profile >> 16, profile & 0xFFFF, **{k: v or None for k, v in found.items()})


def format_label(label: Tr005Label, *, checksum: bool = False) -> str:
    """The TR005 payload of ``label`` (hex upper case, extensions O, S, P then C when ``checksum``)."""
    for name in ("owner_token", "serial_number", "proprietary"):
        value = getattr(label, name)
        if value is not None and (":" in value or not _EXT_VALUE.fullmatch(value)):
            raise LabelError("an extension holds printable ASCII without ':'", field=name, position=0)
    if not (0 <= label.vendor_id <= 0xFFFF and 0 <= label.model_id <= 0xFFFF):
        raise LabelError("VendorID and model id are 16-bit numbers", field="profile_id", position=0)
    text = f"LW:D0:{str(EUI64(label.join_eui)).upper()}:{str(EUI64(label.dev_eui)).upper()}:{label.profile_id}"
    for kind, name in (("O", "owner_token"), ("S", "serial_number"), ("P", "proprietary")):
        value = getattr(label, name)
        if value:
            text += f":{kind}{value}"
    if checksum:
        text += f":C{crc16_modbus(text.encode('ascii')):04X}"
    return text
