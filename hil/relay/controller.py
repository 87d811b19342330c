"""The relay's controller (the push-button of seed 004), as the test framework plays it.

It sends each command with its own counter ``c``, waits 5 s for the matching response, retries
twice with the same ``c`` and then declares "no communication". A SYNC response (0x83) carries
the relay's ``expected`` counter: the controller adopts it and resends the pending command once —
the frame-counter SYNC recovery. Unsolicited 0x83 announcements (after boot or join) teach it the
counter too. Every packet sent or received is kept in :attr:`log` for the report.

For negative tests, :meth:`RelayController.seal` and :meth:`RelayController.send_packet` put any
bytes on the way to the relay (a replayed frame, a damaged one) without touching the counter, and
:meth:`RelayController.receive` waits for whatever the relay says next.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from hil.clock import Clock, Deadline
from hil.report.steps import rig_step_method
from hil.relay.protocol import RESPONSE, Command, RelayKey, RelayMessage, RelayPacketError, decode, encode

RESPONSE_TIMEOUT_S = 5.0
RETRIES = 2
SYNC_RESPONSE = RESPONSE | Command.SYNC


class NoCommunication(AssertionError):
    """The relay did not answer a command after the retries (its misbehaviour: a test failure)."""


@dataclass(frozen=True)
class LoggedPacket:
    """One relay packet seen by the controller, with its rig time."""

    time: float
    direction: str  # "tx" (controller to relay) or "rx"
    message: RelayMessage | None
    note: str = ""
    wire: bytes = b""  # the packet as sent or received (encrypted: no key material)


class RelayController:
    """Commands the relay over any transport: ``send(payload)`` puts 20 bytes on the way to the
    relay (a LoRaWAN downlink on FPort 10); :meth:`deliver` is called with each packet from it."""

    def __init__(
        self,
        key: RelayKey,
        send: Callable[[bytes], None],
        clock: Clock,
        *,
        counter: int = 0,
        response_timeout_s: float = RESPONSE_TIMEOUT_S,
        retries: int = RETRIES,
    ) -> None:
        self._key = key
        self._send = send
        self.clock = clock
        self.counter = counter
        self.response_timeout_s = response_timeout_s
        self.retries = retries
        self._cond = threading.Condition()
        self._inbox: list[RelayMessage] = []
        self.log: list[LoggedPacket] = []
        self.last_announcement: RelayMessage | None = None

    # -- receiving ---------------------------------------------------------------------------

    def deliver(self, payload: bytes) -> None:
        """A packet from the relay (any thread). Undecodable packets are logged and dropped."""
        now = self.clock.now()
        payload = bytes(payload)
        try:
            message = decode(payload, self._key)
        except RelayPacketError as exc:
            self.log.append(LoggedPacket(now, "rx", None, f"discarded: {exc}", payload))
            return
        with self._cond:
            self.log.append(LoggedPacket(now, "rx", message, "", payload))
            self._inbox.append(message)
            self._cond.notify_all()

    def wait_announcement(self, timeout_s: float = 60.0) -> RelayMessage:
        """Wait for an unsolicited 0x83 (after boot or join) and adopt its counter."""
        message = self._wait_take(lambda m: m.cmd == SYNC_RESPONSE, Deadline.after(self.clock, timeout_s))
        if message is None:
            raise NoCommunication(f"the relay announced no counter (0x83) within {timeout_s:g} rig s")
        self.counter = message.fcnt
        self.last_announcement = message
        return message

    def receive(self, match: Callable[[RelayMessage], bool] | None = None,
                timeout_s: float = RESPONSE_TIMEOUT_S) -> RelayMessage | None:
        """The next packet from the relay (matching ``match`` if given), taken from the inbox;
        None if none came within ``timeout_s`` rig seconds. The counter is not touched."""
        return self._wait_take(match or (lambda m: True), Deadline.after(self.clock, timeout_s))

    def discard_pending(self) -> list[RelayMessage]:
        """Forget the packets received but not taken yet (e.g. before a power cycle, so that only
        what the relay says afterwards counts); returns them."""
        with self._cond:
            pending, self._inbox = self._inbox, []
        return pending

    # -- raw packets (negative tests) --------------------------------------------------------

    def seal(self, cmd: int, fcnt: int, arg: bytes = bytes(6)) -> bytes:
        """The 20-byte wire packet of a command under this controller's key (nothing is sent)."""
        return encode(RelayMessage(cmd, fcnt, 0, arg), self._key)

    def send_packet(self, wire: bytes, note: str = "raw") -> None:
        """Send ``wire`` as it is (a replayed or damaged frame); logged, decoded where it can be.
        The counter does not move and no answer is awaited (see :meth:`receive`)."""
        wire = bytes(wire)
        try:
            message: RelayMessage | None = decode(wire, self._key)
        except RelayPacketError:
            message = None
        self.log.append(LoggedPacket(self.clock.now(), "tx", message, note, wire))
        self._send(wire)

    # -- commands ----------------------------------------------------------------------------

    def set_output(self, on: bool) -> RelayMessage:
        """SET_OUTPUT; returns the 0x81 response (state reached, mains sensed, volts)."""
        return self.command(Command.SET_OUTPUT, bytes((int(on), 0, 0, 0, 0, 0)))

    def get_output(self) -> RelayMessage:
        return self.command(Command.GET_OUTPUT)

    def nop(self) -> RelayMessage:
        return self.command(Command.NOP)

    @rig_step_method("relay: command 0x{cmd:02x}", "arg")
    def command(self, cmd: int, arg: bytes = bytes(6)) -> RelayMessage:
        """Send ``cmd`` with the current counter, retrying and recovering the counter by SYNC."""
        self._absorb_announcements()
        synced = False
        attempts = 0
        while True:
            c = self.counter
            packet = encode(RelayMessage(cmd, c, 0, arg), self._key)
            self.log.append(LoggedPacket(self.clock.now(), "tx", RelayMessage(cmd, c, 0, arg),
                                         "retry" if attempts else ("after SYNC" if synced else ""), packet))
            self._send(packet)
            answer = self._await(cmd, c)
            if answer is None:
                attempts += 1
                if attempts > self.retries:
                    raise NoCommunication(
                        f"relay: no answer to command 0x{cmd:02x} with counter {c} after {self.retries} retries "
                        f"({self.response_timeout_s:g} rig s each)"
                    )
                continue
            if answer.cmd == SYNC_RESPONSE and cmd != Command.SYNC:
                if synced:
                    raise NoCommunication(f"relay: SYNC again after adopting counter {c}: expected {answer.fcnt}")
                self.counter, synced, attempts = answer.fcnt, True, 0
                continue
            self.counter = c + 1
            return answer

    def _await(self, cmd: int, c: int) -> RelayMessage | None:
        """The response to (cmd, c), or a SYNC response, within the response timeout."""
        want = RESPONSE | cmd

        def match(m: RelayMessage) -> bool:
            # A SYNC answering *this* frame carries an expected counter other than c (at c the relay
            # would have executed it); one carrying c is a late answer to an earlier retry: ignore it.
            return (m.cmd == want and m.fcnt == c) or (m.cmd == SYNC_RESPONSE and cmd != Command.SYNC and m.fcnt != c)

        return self._wait_take(match, Deadline.after(self.clock, self.response_timeout_s))

    def _wait_take(self, match: Callable[[RelayMessage], bool], deadline: Deadline) -> RelayMessage | None:
        """Wait until a received message matches, then remove and return it (None at the deadline)."""
        with self._cond:
            self.clock.wait_for(self._cond, lambda: any(match(m) for m in self._inbox), deadline)
            for i, message in enumerate(self._inbox):
                if match(message):
                    return self._inbox.pop(i)
            return None

    def _absorb_announcements(self) -> None:
        """Announcements that arrived before a command teach the counter; they answer nothing."""
        with self._cond:
            for message in [m for m in self._inbox if m.cmd == SYNC_RESPONSE]:
                self._inbox.remove(message)
                self.counter = message.fcnt
                self.last_announcement = message
