"""Which session sent a data uplink, at which full FCnt, and whether the counter is acceptable.

Each session using the frame's DevAddr is tried (several devices may share one; the MIC tells
them apart). For each, the 16-bit FCnt is extended to 32 bits from the last accepted value
(:func:`hil.lorawan.fcnt.check`); the MIC decides between that value and the earlier candidates
that would make the frame a replay (the previous value with these 16 LSB, and the raw 16-bit
value, which catches a device whose counters were reset). 1.1 uplink MICs also need ConfFCnt
(of the last confirmed downlink, if ACK is set), TxDr and TxCh (index of the uplink frequency
in the device's channel list).
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.lorawan import fcnt, session as lsession
from hil.lorawan.fcnt import Verdict
from hil.lorawan.frames import DataFrame
from hil.lorawan.region import Region
from hil.network.registry import DeviceState, Session


@dataclass(frozen=True, slots=True)
class UplinkMatch:
    """The session whose keys verify the frame, and the counter verdict at the full ``fcnt``."""

    state: DeviceState
    session: Session
    verdict: Verdict
    fcnt: int
    last: int | None
    max_gap: int | None
    mic_context: dict[str, int]

    @property
    def reason(self) -> str:
        """Why the counter is not accepted ("" when it is)."""
        if self.verdict is Verdict.OK:
            return ""
        if self.verdict is Verdict.RETRANSMISSION:
            return f"retransmission of FCnt {self.fcnt}"
        if self.verdict is Verdict.REPLAY:
            return f"FCnt replay: {self.fcnt} ≤ last {self.last}"
        gap = self.fcnt - (self.last or 0) - 1
        return f"FCnt gap too large: {self.fcnt} is {gap} past last {self.last} (MAX_FCNT_GAP {self.max_gap})"


@dataclass(frozen=True, slots=True)
class NoMatch:
    """No session verifies the frame; ``reason`` says what was tried."""

    reason: str
    state: DeviceState | None = None


def mic_context(frame: DataFrame, session: Session, tx_dr: int, frequency_hz: int) -> dict[str, int] | None:
    """ConfFCnt/TxDr/TxCh for a 1.1 session's uplink MIC ({} for 1.0.x); None if TxCh is unknown."""
    if not session.lorawan_1_1:
        return {}
    tx_ch = session.tx_channel(frequency_hz)
    if tx_ch is None:
        return None
    conf = session.last_confirmed_down_fcnt if frame.fctrl.ack else None
    return {"conf_fcnt": (conf or 0) & 0xFFFF, "tx_dr": tx_dr, "tx_ch": tx_ch}


def identify(
    frame: DataFrame,
    candidates: list[tuple[DeviceState, Session]],
    region: Region,
    *,
    tx_dr: int,
    frequency_hz: int,
) -> UplinkMatch | NoMatch:
    """Find the session that sent ``frame`` among ``candidates`` and classify its counter."""
    if not candidates:
        return NoMatch(f"unknown DevAddr {frame.dev_addr}")
    notes: list[str] = []
    for state, session in candidates:
        ctx = mic_context(frame, session, tx_dr, frequency_hz)
        if ctx is None:
            notes.append(
                f"device {state.dev_eui}: uplink frequency {frequency_hz} Hz is not one of its channels, "
                "so TxCh for the 1.1 MIC is unknown"
            )
            continue
        version = state.config.version
        max_gap = region.max_fcnt_gap if version.uses_max_fcnt_gap else None
        last = session.last_fcnt_up
        check = fcnt.check(frame.fcnt, last, max_gap=max_gap)
        if lsession.verify_mic(frame, session.keys, check.fcnt, **ctx):
            return UplinkMatch(state, session, check.verdict, check.fcnt, last, max_gap, ctx)
        if last is None:
            continue
        for value in fcnt.replay_candidates(frame.fcnt, last):
            if value != check.fcnt and lsession.verify_mic(frame, session.keys, value, **ctx):
                return UplinkMatch(state, session, Verdict.REPLAY, value, last, max_gap, ctx)
    if notes:
        return NoMatch("; ".join(notes), candidates[0][0] if len(candidates) == 1 else None)
    if len(candidates) == 1:
        return NoMatch(f"MIC invalid (device {candidates[0][0].dev_eui})", candidates[0][0])
    return NoMatch(f"MIC invalid for all {len(candidates)} sessions with DevAddr {frame.dev_addr}")
