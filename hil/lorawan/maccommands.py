"""MAC commands (FOpts or FRMPayload on FPort 0): lengths per direction, parsing and builders.

Lengths are implicit in LoRaWAN, so the table below is the codec; an unknown CID ends parsing
(LoRaWAN 1.0.3 §5: "the first unknown MAC command terminates the processing").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from hil.lorawan.errors import FrameError

# CID: (name, uplink payload length, downlink payload length). Uplink = sent by the device.
COMMANDS: dict[int, tuple[str, int, int]] = {
    0x01: ("Reset", 1, 1),  # ResetInd / ResetConf (1.1 ABP)
    0x02: ("LinkCheck", 0, 2),
    0x03: ("LinkADR", 1, 4),
    0x04: ("DutyCycle", 0, 1),
    0x05: ("RXParamSetup", 1, 4),
    0x06: ("DevStatus", 2, 0),
    0x07: ("NewChannel", 1, 5),
    0x08: ("RXTimingSetup", 0, 1),
    0x09: ("TxParamSetup", 0, 1),
    0x0A: ("DlChannel", 1, 4),
    0x0B: ("Rekey", 1, 1),  # RekeyInd / RekeyConf (1.1 OTAA)
    0x0C: ("ADRParamSetup", 0, 1),
    0x0D: ("DeviceTime", 0, 5),
    0x0E: ("ForceRejoin", 0, 2),  # downlink only
    0x0F: ("RejoinParamSetup", 1, 1),
}
# Which suffix each direction carries: the device *indicates* Reset/Rekey and *requests* LinkCheck/DeviceTime.
_DEVICE_INITIATED = {0x01: "Ind", 0x0B: "Ind", 0x02: "Req", 0x0D: "Req"}
_NETWORK_ANSWER = {0x01: "Conf", 0x0B: "Conf", 0x02: "Ans", 0x0D: "Ans"}

GPS_EPOCH_UNIX = 315964800  # 1980-01-06T00:00:00Z


@dataclass(frozen=True, slots=True)
class MacCommand:
    """One MAC command: its CID, payload and direction (``uplink``: sent by the end device)."""

    cid: int
    payload: bytes = b""
    uplink: bool = True

    @property
    def name(self) -> str:
        entry = COMMANDS.get(self.cid)
        if entry is None:
            return f"Unknown(0x{self.cid:02x})"
        if self.uplink:
            return entry[0] + _DEVICE_INITIATED.get(self.cid, "Ans")
        return entry[0] + _NETWORK_ANSWER.get(self.cid, "Req")

    def to_bytes(self) -> bytes:
        return bytes((self.cid,)) + self.payload

    def fields(self) -> dict[str, int | float]:
        """The payload's fields, decoded for the commands the framework acts on."""
        p = self.payload
        if self.cid in (0x01, 0x0B) and len(p) == 1:
            return {"minor": p[0] & 0x0F}
        if self.cid == 0x02 and not self.uplink and len(p) == 2:
            return {"margin": p[0], "gw_cnt": p[1]}
        if self.cid == 0x06 and self.uplink and len(p) == 2:
            margin = p[1] & 0x3F
            return {"battery": p[0], "margin": margin - 64 if margin & 0x20 else margin}
        if self.cid == 0x08 and not self.uplink and len(p) == 1:
            return {"delay_s": (p[0] & 0x0F) or 1}
        if self.cid == 0x0D and not self.uplink and len(p) == 5:
            return {"gps_time_s": int.from_bytes(p[:4], "little") + p[4] / 256}
        return {}


def parse(data: bytes, *, uplink: bool, offset: int = 0) -> list[MacCommand]:
    """Parse a MAC command sequence. ``offset`` places ``data`` in the frame for error messages.

    An unknown CID ends the sequence and is returned as a last command holding the rest.
    A known command cut short raises :class:`FrameError`.
    """
    out: list[MacCommand] = []
    i = 0
    while i < len(data):
        cid = data[i]
        entry = COMMANDS.get(cid)
        if entry is None:
            out.append(MacCommand(cid, bytes(data[i + 1 :]), uplink))
            break
        size = entry[1] if uplink else entry[2]
        if uplink and cid == 0x0E:
            out.append(MacCommand(cid, bytes(data[i + 1 :]), uplink))  # ForceRejoin has no uplink form
            break
        if i + 1 + size > len(data):
            raise FrameError(
                f"MAC command {MacCommand(cid, uplink=uplink).name} needs {size} payload bytes, "
                f"{len(data) - i - 1} left",
                field="FOpts/MAC command",
                offset=offset + i,
            )
        out.append(MacCommand(cid, bytes(data[i + 1 : i + 1 + size]), uplink))
        i += 1 + size
    return out


def encode(commands: Iterable[MacCommand]) -> bytes:
    """Concatenate commands, checking each payload length against the table."""
    out = bytearray()
    for cmd in commands:
        entry = COMMANDS.get(cmd.cid)
        if entry is not None:
            size = entry[1] if cmd.uplink else entry[2]
            if len(cmd.payload) != size:
                raise FrameError(f"{cmd.name} takes {size} payload bytes, got {len(cmd.payload)}", field="MAC command")
        out += cmd.to_bytes()
    return bytes(out)


# --- builders for what the reference network answers and the virtual device sends -------------


def link_check_ans(margin_db: int, gw_cnt: int) -> MacCommand:
    return MacCommand(0x02, bytes((max(0, min(254, margin_db)), max(0, min(255, gw_cnt)))), uplink=False)


def device_time_ans(gps_time_s: float) -> MacCommand:
    """DeviceTimeAns: seconds since the GPS epoch (uint32) and 1/256 s fractions."""
    whole, frac = divmod(round(gps_time_s * 256), 256)  # a fraction rounding up to 1 s carries
    return MacCommand(0x0D, (whole & 0xFFFFFFFF).to_bytes(4, "little") + bytes((frac,)), uplink=False)


def reset_conf(minor: int = 1) -> MacCommand:
    return MacCommand(0x01, bytes((minor & 0x0F,)), uplink=False)


def rekey_conf(minor: int = 1) -> MacCommand:
    return MacCommand(0x0B, bytes((minor & 0x0F,)), uplink=False)


def reset_ind(minor: int = 1) -> MacCommand:
    return MacCommand(0x01, bytes((minor & 0x0F,)), uplink=True)


def rekey_ind(minor: int = 1) -> MacCommand:
    return MacCommand(0x0B, bytes((minor & 0x0F,)), uplink=True)


def link_check_req() -> MacCommand:
    return MacCommand(0x02, b"", uplink=True)


def device_time_req() -> MacCommand:
    return MacCommand(0x0D, b"", uplink=True)
