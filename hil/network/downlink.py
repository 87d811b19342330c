"""Build a data downlink for a session: ACK, MAC answers, the next queued application payload.

MAC answers ride in FOpts when they fit (15 bytes), else alone on FPort 0 (the queued payload
waits for the next opportunity). Counters: one FCntDown in 1.0.x; in 1.1 NFCntDown for FPort
0/absent and AFCntDown for FPort > 0. A 1.1 downlink that ACKs a confirmed uplink carries that
uplink's FCnt as ConfFCnt in its MIC. Building a downlink commits it: the counter advances,
the queue item is taken, a confirmed downlink awaits the device's ACK.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.lorawan import maccommands, session as lsession
from hil.lorawan.frames import MAX_FOPTS, FCtrl, MType
from hil.lorawan.maccommands import MacCommand
from hil.network.application import DownlinkState, QueuedDownlink
from hil.network.join import flip_mic
from hil.network.registry import DeviceState, Session


@dataclass(frozen=True, slots=True)
class BuiltDownlink:
    """A sealed data downlink and what it carries, for sending and for the event log."""

    phy_payload: bytes
    mtype: MType
    fcnt: int
    fport: int | None
    payload: bytes  # clear FRMPayload (application data, or MAC commands on FPort 0)
    mac_commands: tuple[str, ...]
    ack: bool
    queued: QueuedDownlink | None
    mic_valid: bool


def build(
    state: DeviceState,
    session: Session,
    *,
    mac_answers: list[MacCommand],
    take_queue: bool = True,
    jump_by: int = 0,
    corrupt_mic: bool = False,
) -> BuiltDownlink:
    """Seal the next downlink for ``session`` and commit its counters and queue effects.

    ``jump_by`` first advances the downlink counter (Fault.JUMP_FCNT_DOWN); ``corrupt_mic``
    flips the MIC bits after sealing (Fault.CORRUPT_MIC).
    """
    mac_bytes = maccommands.encode(mac_answers)
    item = state.queue[0] if take_queue and state.queue else None
    if len(mac_bytes) > MAX_FOPTS:
        fopts, fport, payload, item = b"", 0, mac_bytes, None
    elif item is not None:
        fopts, fport, payload = mac_bytes, item.fport, item.payload
    else:
        fopts, fport, payload = mac_bytes, None, b""
    confirmed = item is not None and item.confirmed
    mtype = MType.CONFIRMED_DATA_DOWN if confirmed else MType.UNCONFIRMED_DATA_DOWN
    use_a_counter = session.lorawan_1_1 and fport is not None and fport > 0
    if use_a_counter:
        session.a_fcnt_down += jump_by
        counter = session.a_fcnt_down
    else:
        session.n_fcnt_down += jump_by
        counter = session.n_fcnt_down
    ack = session.pending_ack_fcnt is not None
    conf_fcnt = (session.pending_ack_fcnt or 0) & 0xFFFF if (ack and session.lorawan_1_1) else 0
    remaining = len(state.queue) - (1 if item is not None else 0)
    frame = lsession.seal_frame(
        mtype,
        session.dev_addr,
        session.keys,
        counter,
        fctrl=FCtrl(ack=ack, f_pending=remaining > 0),
        fopts=fopts,
        fport=fport,
        frm_payload=payload,
        fopts_variant=session.fopts_variant,
        conf_fcnt=conf_fcnt,
    )
    phy = frame.to_bytes()
    if corrupt_mic:
        phy = phy[:-4] + flip_mic(phy[-4:])
    # commit
    if use_a_counter:
        session.a_fcnt_down = counter + 1
    else:
        session.n_fcnt_down = counter + 1
    session.pending_ack_fcnt = None
    if item is not None:
        state.queue.popleft()
        item.state = DownlinkState.SENT
        item.fcnt = counter
        if confirmed:
            if session.awaiting_ack is not None:  # superseded before the device could answer
                session.awaiting_ack.state = DownlinkState.UNACKED
            session.awaiting_ack = item
            session.last_confirmed_down_fcnt = counter
    names = tuple(c.name for c in mac_answers)
    return BuiltDownlink(phy, mtype, counter, fport, payload, names, ack, item, not corrupt_mic)
