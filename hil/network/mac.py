"""The network's answers to MAC commands a device sends (LinkCheck, DeviceTime, Reset, Rekey)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.lorawan import maccommands
from hil.lorawan.maccommands import MacCommand

# Demodulation floor (SNR in dB a LoRa receiver needs) per spreading factor, as used for
# LinkCheckAns margins by network servers (ChirpStack, The Things Stack): SX127x datasheet.
DEMOD_FLOOR_DB: dict[int, float] = {5: -2.5, 6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}

NETWORK_MINOR = 1  # this network implements LoRaWAN 1.1 (Minor=1 in ResetConf/RekeyConf)


def link_margin_db(snr_db: float, spreading_factor: int) -> int:
    """LinkCheckAns margin: dB of SNR above the demodulation floor, 0..254."""
    floor = DEMOD_FLOOR_DB.get(spreading_factor, -20.0)
    return max(0, min(254, int(snr_db - floor)))


@dataclass(slots=True)
class MacContext:
    """What the answers depend on, about the uplink that carried the commands."""

    snr_db: float
    spreading_factor: int
    gps_time_s: float  # GPS time at the end of the uplink
    lorawan_1_1: bool
    otaa: bool
    gw_cnt: int = 1


@dataclass(slots=True)
class MacOutcome:
    """The answers to send, and notes on what was seen but not answered."""

    answers: list[MacCommand] = field(default_factory=list)
    rekey_ind: bool = False
    notes: list[str] = field(default_factory=list)


def answer(commands: list[MacCommand], ctx: MacContext) -> MacOutcome:
    """Answer the device-initiated commands this network supports; note the rest."""
    out = MacOutcome()
    for cmd in commands:
        if cmd.cid == 0x02:  # LinkCheckReq
            out.answers.append(maccommands.link_check_ans(link_margin_db(ctx.snr_db, ctx.spreading_factor), ctx.gw_cnt))
        elif cmd.cid == 0x0D:  # DeviceTimeReq
            out.answers.append(maccommands.device_time_ans(ctx.gps_time_s))
        elif cmd.cid == 0x01:  # ResetInd: 1.1 ABP only (1.1 §5.1; an OTAA device's is ignored)
            if ctx.lorawan_1_1 and not ctx.otaa:
                out.answers.append(maccommands.reset_conf(min(NETWORK_MINOR, cmd.fields().get("minor", 1) or 1)))
            else:
                out.notes.append("ResetInd ignored: only LoRaWAN 1.1 ABP devices may send it")
        elif cmd.cid == 0x0B:  # RekeyInd: 1.1 OTAA only
            if ctx.lorawan_1_1 and ctx.otaa:
                out.answers.append(maccommands.rekey_conf(min(NETWORK_MINOR, cmd.fields().get("minor", 1) or 1)))
                out.rekey_ind = True
            else:
                out.notes.append("RekeyInd ignored: only LoRaWAN 1.1 OTAA devices may send it")
        elif cmd.cid not in maccommands.COMMANDS:
            out.notes.append(f"unknown MAC command 0x{cmd.cid:02x} ended the MAC command list")
    return out
