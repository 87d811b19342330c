"""Identifiers with LoRaWAN byte order: the one place that knows it.

EUIs, DevAddr and NetID are written big-endian by people ("70B3D57ED0000001") and sent
little-endian on air. Each type is an ``int`` (cheap, hashable, usable as a dict key) whose
``str`` is the display form and whose ``wire`` is the on-air bytes.
"""

from __future__ import annotations

import re
from typing import ClassVar, Self

from hil.lorawan.errors import FrameError

_SEPARATORS = re.compile(r"[\s:\-_.]")


class _LEIdentifier(int):
    """An unsigned identifier of ``SIZE`` bytes, little-endian on air."""

    SIZE: ClassVar[int] = 0
    FIELD: ClassVar[str] = ""

    def __new__(cls, value: int | str | Self) -> Self:
        if isinstance(value, str):
            return cls.parse(value)
        value = int(value)
        if not 0 <= value < 1 << (8 * cls.SIZE):
            raise FrameError(f"{cls.FIELD} {value:#x} does not fit in {cls.SIZE} bytes", field=cls.FIELD)
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse the big-endian display form; separators ``- : . _`` and spaces are allowed."""
        digits = _SEPARATORS.sub("", text)
        if len(digits) != 2 * cls.SIZE or not re.fullmatch(r"[0-9a-fA-F]*", digits):
            raise FrameError(
                f"{cls.FIELD} must be {2 * cls.SIZE} hex digits (big-endian display form), got {text!r}",
                field=cls.FIELD,
            )
        return int.__new__(cls, int(digits, 16))

    @classmethod
    def from_wire(cls, data: bytes) -> Self:
        """Build from the little-endian on-air bytes."""
        if len(data) != cls.SIZE:
            raise FrameError(f"{cls.FIELD} needs {cls.SIZE} bytes, got {len(data)}", field=cls.FIELD)
        return int.__new__(cls, int.from_bytes(data, "little"))

    @property
    def wire(self) -> bytes:
        """The on-air (little-endian) bytes."""
        return self.to_bytes(self.SIZE, "little")

    @property
    def display(self) -> bytes:
        """The big-endian bytes, as people write them."""
        return self.to_bytes(self.SIZE, "big")

    def __str__(self) -> str:
        return format(int(self), f"0{2 * self.SIZE}x")

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"


class EUI64(_LEIdentifier):
    """A 64-bit extended unique identifier (DevEUI, JoinEUI/AppEUI, gateway id)."""

    SIZE = 8
    FIELD = "EUI"


class DevAddr(_LEIdentifier):
    """A 32-bit device address."""

    SIZE = 4
    FIELD = "DevAddr"


class NetID(_LEIdentifier):
    """A 24-bit network identifier."""

    SIZE = 3
    FIELD = "NetID"
