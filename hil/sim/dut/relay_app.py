"""The relay application of the reference relay node (relay protocol v1, /work/shared/reference/relay-protocol.md).

Commands arrive as LoRaWAN downlinks on FPort 10 and are checked in the protocol's order:
length, outer CRC, inner CRC (:func:`hil.relay.protocol.decode`; a discarded frame gets no
answer), then the frame counter against ``expected`` (kept in NVM):

* ``fcnt == expected``: accepted. ``expected + 1`` is written to NVM *before* the command acts;
  the command acts in the write's ``on_done``, so a power cut before the commit leaves the command
  unexecuted and ``expected`` unchanged.
* any other fcnt: not executed; after 100 ms a SYNC response ``0x83`` carrying ``expected``.

NOP, GET_OUTPUT and SYNC are answered 100 ms after they act (``fcnt`` = the command's; for SYNC the
relay's ``expected``). SET_OUTPUT drives the coil, persists the state, waits 1 s, reads the mains
sense (output > 100 V RMS = present) and answers ``0x81`` (status 0x02 if the sense disagrees with
the command). An unknown command is answered ``0x80 | cmd`` with status 0x01. An unsolicited
``0x83`` goes out after boot (when a session exists) and after every join (:meth:`RelayApp.announce`).

Power-up: the relay comes up in its documented safe state, **off**, whatever was commanded before
the power was lost (:meth:`RelayApp.restore`): the coil stays de-energised, an NVM ``relay_state``
still saying on is rewritten to off, and the unsolicited ``0x83`` after boot/join reports the
output off. A load never comes back on by itself after an outage; the controller switches it on
again if it wants it.

Defects (hil/sim/dut/defects.py): ``sync_silent`` (no SYNC response to a wrong counter),
``relay_accepts_replay`` (fcnt < expected is executed, expected unchanged), ``relay_feedback_lies``
(the commanded state is reported as sensed: 230 V when on, status OK), ``relay_restores_last_state``
(after boot the coil is driven to the state kept in NVM: a relay commanded on comes back on).

The application talks to the rest of the firmware through :class:`RelayPlatform` only; every
method runs on the scheduler thread.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Protocol


from hil.relay.protocol import (
    FPORT,
    RESPONSE,
    Command,
    RelayKey,
    RelayMessage,
    RelayPacketError,
    Status,
    decode,
    encode,
    response_arg,
)

log = logging.getLogger(__name__)

RESPONSE_DELAY_S = 0.100
SET_SETTLE_S = 1.0
MAINS_SENSE_THRESHOLD_V = 100.0
LIED_VOLTS = 230


def relay_key_k(passphrase: str) -> bytes:
    """K = SHA-256(passphrase, UTF-8): what NVM stores (never the passphrase)."""
    return hashlib.sha256(passphrase.encode("utf-8")).digest()


class RelayPlatform(Protocol):
    """What the relay application needs from the firmware (all on the scheduler thread)."""

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None: ...

    def persist(self, on_done: Callable[[], None] | None = None, **fields: Any) -> None:
        """Write NVM fields (``relay_expected``, ``relay_state``); ``on_done`` after the commit."""
        ...

    def send_uplink(self, payload: bytes) -> None:
        """Send on FPort 10, unconfirmed (queued while the MAC is busy)."""
        ...

    def drive_coil(self, on: bool) -> None: ...

    def output_voltage_rms(self) -> float:
        """The mains sense at the relay output."""
        ...


class RelayApp:
    """One boot's relay application: counter check, commands, responses."""

    def __init__(
        self,
        platform: RelayPlatform,
        *,
        key: RelayKey | None,
        expected: int,
        state: bool,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.platform = platform
        self.key = key
        self._expected = expected & 0xFFFFFFFF
        self._state = bool(state)
        self.defects = defects
        self.discarded: list[str] = []  # reasons of discarded frames (diagnostics)

    @property
    def expected(self) -> int:
        """The next command counter accepted (RAM copy; NVM gets it before a command acts)."""
        return self._expected

    @property
    def state(self) -> bool:
        """The commanded relay output."""
        return self._state

    # -- lifecycle -----------------------------------------------------------------------------

    def restore(self) -> None:
        """After boot: the documented safe state, output off (the coil stays de-energised).

        NVM still saying on (the relay was on when the power went) is rewritten to off. With the
        defect ``relay_restores_last_state`` the coil is driven to the state kept in NVM instead.
        """
        if "relay_restores_last_state" in self.defects:
            if self._state:
                log.debug("relay: last state ON restored after boot (defect relay_restores_last_state)")
                self.platform.drive_coil(True)
            return
        if self._state:
            self._state = False
            self.platform.persist(None, relay_state=False)

    def announce(self) -> None:
        """Unsolicited SYNC response (after boot with a session, after each join)."""
        self._send(RelayMessage(RESPONSE | Command.SYNC, self._expected, Status.OK, self._arg(fault_check=False)[1]))

    # -- receiving -----------------------------------------------------------------------------

    def on_downlink(self, fport: int, payload: bytes) -> None:
        """A LoRaWAN downlink the MAC accepted; only FPort 10 is ours."""
        if fport != FPORT:
            return
        if self.key is None:
            self._discard("no_key")
            return
        try:
            msg = decode(payload, self.key)
        except RelayPacketError as exc:
            self._discard(exc.reason)
            return
        if msg.fcnt == self._expected:
            self._expected = (self._expected + 1) & 0xFFFFFFFF
            self.platform.persist(lambda: self._act(msg), relay_expected=self._expected)
        elif msg.fcnt < self._expected and "relay_accepts_replay" in self.defects:
            log.debug("relay: replayed counter %d executed (defect relay_accepts_replay)", msg.fcnt)
            self._act(msg)
        elif "sync_silent" not in self.defects:
            log.debug("relay: counter %d, expected %d: SYNC response", msg.fcnt, self._expected)
            self.platform.call_later(RESPONSE_DELAY_S, self._respond, Command.SYNC, None, False)

    def _discard(self, reason: str) -> None:
        log.info("relay: discarded a command frame (%s)", reason)
        self.discarded.append(reason)

    def _act(self, msg: RelayMessage) -> None:
        cmd = msg.cmd
        if cmd == Command.SET_OUTPUT:
            on = bool(msg.arg[0])
            self._state = on
            self.platform.drive_coil(on)
            self.platform.persist(None, relay_state=on)
            self.platform.call_later(SET_SETTLE_S, self._respond, cmd, msg.fcnt, True)
        elif cmd in (Command.NOP, Command.GET_OUTPUT):
            self.platform.call_later(RESPONSE_DELAY_S, self._respond, cmd, msg.fcnt, cmd == Command.GET_OUTPUT)
        elif cmd == Command.SYNC:
            self.platform.call_later(RESPONSE_DELAY_S, self._respond, cmd, None, False)
        else:
            self.platform.call_later(RESPONSE_DELAY_S, self._respond_unknown, cmd, msg.fcnt)

    # -- answering -----------------------------------------------------------------------------

    def _respond(self, cmd: int, fcnt: int | None, fault_check: bool) -> None:
        """Response to ``cmd``; ``fcnt`` None = the relay's expected counter (SYNC)."""
        status, arg = self._arg(fault_check)
        self._send(RelayMessage(RESPONSE | cmd, self._expected if fcnt is None else fcnt, status, arg))

    def _respond_unknown(self, cmd: int, fcnt: int) -> None:
        _, arg = self._arg(False)
        self._send(RelayMessage((RESPONSE | cmd) & 0xFF, fcnt, Status.UNKNOWN_COMMAND, arg))

    def _arg(self, fault_check: bool) -> tuple[int, bytes]:
        """(status, arg) from the mains sense now."""
        if "relay_feedback_lies" in self.defects:
            return Status.OK, response_arg(self._state, self._state, LIED_VOLTS if self._state else 0)
        volts = self.platform.output_voltage_rms()
        sensed = volts > MAINS_SENSE_THRESHOLD_V
        status = Status.OUTPUT_FAULT if (fault_check and sensed != self._state) else Status.OK
        return status, response_arg(self._state, sensed, volts)

    def _send(self, msg: RelayMessage) -> None:
        if self.key is None:
            log.info("relay: no key set, response 0x%02x not sent", msg.cmd)
            return
        self.platform.send_uplink(encode(msg, self.key))
