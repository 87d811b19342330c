"""A unit's LoRaWAN identity: its DevEUI from an IEEE block and a serial counter, and fresh root keys.

:class:`EuiBlock` is an IEEE assignment as a prefix: an MA-L (24-bit OUI, 40 bits for the
manufacturer), MA-M (28 bits) or MA-S (36 bits); a station may use only a range of serial numbers
in it (several stations share a block without colliding). DevEUI = prefix followed by the serial.
TR007-1.1 §3.1: EUIs come from the vendor's own IEEE-assigned range and SHALL be globally unique.

Keys come from :mod:`secrets` (the operating system's CSPRNG); every key is recorded with the
process-wide redactor the moment it exists, so no log line can show it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from hil.lorawan.crypto import AESKey
from hil.lorawan.types import EUI64
from hil.rigfile.redaction import REDACTOR

__all__ = ["EuiBlock", "EuiBlockError", "EuiBlockExhausted", "RootKeys", "generate_root_keys"]

_PREFIX = re.compile(r"^[0-9A-Fa-f]+$")


class EuiBlockError(ValueError):
    """A malformed EUI block or serial range."""


class EuiBlockExhausted(RuntimeError):
    """Every serial number of the station's range is taken: the line needs a new range."""


@dataclass(frozen=True, slots=True)
class EuiBlock:
    """An IEEE EUI-64 block: ``prefix`` hex digits (6 for MA-L, 7 MA-M, 9 MA-S) and the serial range used."""

    prefix: str
    first_serial: int = 0
    last_serial: int | None = None  # None: the end of the block

    def __post_init__(self) -> None:
        digits = self.prefix.replace(":", "").replace("-", "")
        if not _PREFIX.match(digits) or len(digits) not in (6, 7, 9):
            raise EuiBlockError(f"EUI block prefix {self.prefix!r}: expected 6 (MA-L/OUI), 7 (MA-M) or 9 (MA-S) "
                                "hex digits, e.g. 70B3D5")
        object.__setattr__(self, "prefix", digits.upper())
        top = self.size - 1
        last = top if self.last_serial is None else self.last_serial
        if not 0 <= self.first_serial <= last <= top:
            raise EuiBlockError(f"EUI block {self.prefix}: serial range {self.first_serial}..{last} must lie "
                                f"within 0..{top} ({self.serial_bits} serial bits)")

    @property
    def serial_bits(self) -> int:
        return 64 - 4 * len(self.prefix)

    @property
    def size(self) -> int:
        """How many EUIs the block holds."""
        return 1 << self.serial_bits

    @property
    def last(self) -> int:
        return self.size - 1 if self.last_serial is None else self.last_serial

    @property
    def name(self) -> str:
        """A stable name for the counter of this range (prefix and range)."""
        return f"{self.prefix}/{self.first_serial:x}-{self.last:x}"

    def dev_eui(self, serial: int) -> EUI64:
        """The DevEUI of ``serial``; EuiBlockExhausted past the range's end."""
        if serial > self.last:
            raise EuiBlockExhausted(f"EUI block {self.prefix}: serial {serial} is past the station's range end "
                                    f"{self.last} ({self.first_serial}..{self.last} all allocated)")
        if serial < self.first_serial:
            raise EuiBlockError(f"serial {serial} is below the range start {self.first_serial}")
        return EUI64((int(self.prefix, 16) << self.serial_bits) | serial)

    def contains(self, eui: EUI64) -> bool:
        """True if ``eui`` lies in this block's serial range."""
        if (int(eui) >> self.serial_bits) != int(self.prefix, 16):
            return False
        return self.first_serial <= (int(eui) & (self.size - 1)) <= self.last


@dataclass(frozen=True, slots=True)
class RootKeys:
    """A unit's root keys: AppKey, and NwkKey for LoRaWAN 1.1 (both redacted in any repr)."""

    app_key: AESKey
    nwk_key: AESKey | None = None


def generate_root_keys(lorawan_version: str) -> RootKeys:
    """Fresh keys from the CSPRNG: AppKey, plus NwkKey for 1.1. Recorded with the redactor at once."""
    app_key = AESKey(secrets.token_bytes(16), "AppKey")
    REDACTOR.add_key(app_key)
    nwk_key = None
    if lorawan_version == "1.1":
        nwk_key = AESKey(secrets.token_bytes(16), "NwkKey")
        REDACTOR.add_key(nwk_key)
        if nwk_key == app_key:  # 2^-128; but a key must never repeat, so do not even trust that
            return generate_root_keys(lorawan_version)
    return RootKeys(app_key, nwk_key)
