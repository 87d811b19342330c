"""Named values in the DUT's non-volatile memory, as the rig file's ``dut.swd.nvm_layout`` lays them out.

=========  =====  ===============================================================================
type       bytes  value
=========  =====  ===============================================================================
u8         1      int
u16le      2      int, little-endian
u32le      4      int, little-endian
eui64      8      :class:`~hil.lorawan.types.EUI64` (an int), stored in LoRaWAN wire order
                  (little-endian), as the virtual relay node and LoRaMac-node's NVM keep it
bytes      size   bytes of exactly ``size``
=========  =====  ===============================================================================
"""

from __future__ import annotations

from typing import Mapping

from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64
from hil.rigfile.model import NvmField

_INT_SIZES = {"u8": 1, "u16le": 2, "u32le": 4}


class FieldError(LookupError):
    """An NVM field the layout does not have; the message names it and the known ones."""

    def __str__(self) -> str:  # LookupError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def field(layout: Mapping[str, NvmField], name: str) -> NvmField:
    """The field ``name`` of ``layout``; FieldError naming the known ones otherwise."""
    try:
        return layout[name]
    except KeyError:
        known = ", ".join(sorted(layout)) or "none: the rig file's dut.swd has no nvm_layout"
        raise FieldError(f"no NVM field {name!r} in dut.swd.nvm_layout (known: {known})") from None


def decode(name: str, f: NvmField, raw: bytes) -> int | bytes:
    """The value of field ``f`` from its ``raw`` bytes."""
    if f.type in _INT_SIZES:
        return int.from_bytes(raw, "little")
    if f.type == "eui64":
        return EUI64.from_wire(raw)
    return bytes(raw)


def encode(name: str, f: NvmField, value: int | bytes | str) -> bytes:
    """The bytes of ``value`` for field ``f``; ValueError naming the field if it does not fit."""
    where = f"NVM field {name} ({f.type} at 0x{f.addr:08X})"
    if f.type in _INT_SIZES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} takes an int, not {type(value).__name__}")
        size = _INT_SIZES[f.type]
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"{where}: {value} does not fit in {size} byte(s) (0..{(1 << (8 * size)) - 1})")
        return value.to_bytes(size, "little")
    if f.type == "eui64":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{where} takes an EUI-64 (int or 16 hex digits), not {type(value).__name__}")
        try:
            eui = EUI64.parse(value) if isinstance(value, str) else EUI64(value)  # type: ignore[arg-type]
        except (FrameError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{where}: not an EUI-64 ({exc})") from None
        return eui.wire
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{where} takes bytes, not {type(value).__name__}")
    if len(value) != f.length:
        raise ValueError(f"{where} is {f.length} bytes, got {len(value)}")
    return bytes(value)
