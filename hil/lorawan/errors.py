"""Error types of the LoRaWAN core."""

from __future__ import annotations


class LoRaWANError(Exception):
    """Base of every error the LoRaWAN core raises on purpose."""


class FrameError(LoRaWANError):
    """A frame (or a field given to build one) is malformed.

    ``field`` names the LoRaWAN field at fault and ``offset`` its byte offset in the PHYPayload
    (``None`` when the problem is not at a position, e.g. a value given to an encoder).
    """

    def __init__(self, message: str, *, field: str, offset: int | None = None) -> None:
        where = f" (field {field}" + (f" at offset {offset})" if offset is not None else ")")
        super().__init__(message + where)
        self.field = field
        self.offset = offset


class KeyFormatError(LoRaWANError, ValueError):
    """A key is malformed; the message never carries the key's value."""
