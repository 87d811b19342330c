"""Relay command protocol v1: the 20-byte packet both the relay and its controller speak.

``wire = AES-256-ECB(K, crc_inner | data) | crc_outer`` with ``data = cmd | fcnt | status | arg``,
K = SHA-256(passphrase), CRC-32 (IEEE 802.3, little-endian). Decoding checks in the order the
relay firmware does: length, outer CRC, inner CRC; each failure is its own error type so a
receiver can tell a damaged frame from one under another key.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PACKET_SIZE = 20
FPORT = 10
NOT_MEASURED = 0xFFFF


class Command(IntEnum):
    NOP = 0x00
    SET_OUTPUT = 0x01
    GET_OUTPUT = 0x02
    SYNC = 0x03


RESPONSE = 0x80


class Status(IntEnum):
    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    OUTPUT_FAULT = 0x02


class RelayPacketError(ValueError):
    """A relay packet that a receiver discards; ``reason`` is ``length``, ``outer_crc`` or ``inner_crc``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RelayKey:
    """K = SHA-256(passphrase) as an AES-256 key; ``repr`` never shows it."""

    __slots__ = ("_enc", "_dec")

    def __init__(self, passphrase: str) -> None:
        self._set(hashlib.sha256(passphrase.encode("utf-8")).digest())

    @classmethod
    def from_k(cls, k: bytes) -> "RelayKey":
        """The key from K itself (a relay keeps K in NVM, never the passphrase)."""
        if len(k) != 32:
            raise ValueError(f"relay key K must be 32 bytes, got {len(k)} (value not shown)")
        key = cls.__new__(cls)
        key._set(bytes(k))
        return key

    def _set(self, k: bytes) -> None:
        cipher = Cipher(algorithms.AES(k), modes.ECB())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()

    def encrypt(self, block: bytes) -> bytes:
        """AES-256-ECB of one 16-byte block."""
        return self._enc.update(block)

    def decrypt(self, block: bytes) -> bytes:
        return self._dec.update(block)

    def __repr__(self) -> str:
        return "RelayKey(****)"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("RelayKey cannot be pickled")


@dataclass(frozen=True, slots=True)
class RelayMessage:
    """The 12 data bytes: ``cmd | fcnt (LE32) | status | arg(6)``."""

    cmd: int
    fcnt: int
    status: int = Status.OK
    arg: bytes = bytes(6)

    @property
    def is_response(self) -> bool:
        return bool(self.cmd & RESPONSE)

    @property
    def command(self) -> int:
        """The command this is, or answers (response bit cleared)."""
        return self.cmd & 0x7F

    @property
    def relay_state(self) -> bool:
        """Response arg[0]: the commanded relay state."""
        return bool(self.arg[0])

    @property
    def mains_sensed(self) -> bool:
        """Response arg[1]: mains present at the output."""
        return bool(self.arg[1])

    @property
    def output_voltage(self) -> int | None:
        """Response arg[2..3]: sensed output voltage in volts, None when not measured."""
        volts = int.from_bytes(self.arg[2:4], "little")
        return None if volts == NOT_MEASURED else volts

    def data(self) -> bytes:
        if len(self.arg) != 6:
            raise ValueError(f"relay arg must be 6 bytes, got {len(self.arg)}")
        return struct.pack("<BIB", self.cmd, self.fcnt & 0xFFFFFFFF, self.status) + self.arg


def response_arg(relay_on: bool, mains_sensed: bool, volts: int | None) -> bytes:
    """arg for a response: commanded state, mains sensed, voltage (0xFFFF = not measured)."""
    v = NOT_MEASURED if volts is None else max(0, min(0xFFFE, int(round(volts))))
    return bytes((int(relay_on), int(mains_sensed))) + v.to_bytes(2, "little") + b"\x00\x00"


def encode(message: RelayMessage, key: RelayKey) -> bytes:
    """The 20-byte wire packet."""
    data = message.data()
    plain = zlib.crc32(data).to_bytes(4, "little") + data
    block = key.encrypt(plain)
    return block + zlib.crc32(block).to_bytes(4, "little")


def decode(wire: bytes, key: RelayKey) -> RelayMessage:
    """Check length, outer CRC and inner CRC (in this order) and return the message."""
    if len(wire) != PACKET_SIZE:
        raise RelayPacketError(f"relay packet must be {PACKET_SIZE} bytes, got {len(wire)}", "length")
    block, crc_outer = wire[:16], wire[16:]
    if zlib.crc32(block).to_bytes(4, "little") != crc_outer:
        raise RelayPacketError("relay packet outer CRC mismatch (damaged frame)", "outer_crc")
    plain = key.decrypt(block)
    data = plain[4:]
    if zlib.crc32(data).to_bytes(4, "little") != plain[:4]:
        raise RelayPacketError("relay packet inner CRC mismatch (encrypted with another key)", "inner_crc")
    cmd, fcnt, status = struct.unpack_from("<BIB", data)
    return RelayMessage(cmd, fcnt, status, data[6:12])
