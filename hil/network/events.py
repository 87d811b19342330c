"""The network server's event log: every frame in or out, with what the server made of it.

A :class:`FrameEvent` is flat on purpose: identifiers are display strings, payloads are clear
bytes, MAC commands are names. ``EventLog.to_rows()`` turns events into dicts for CSV/HTML
report tables. No key ever enters an event. The log is thread-safe: gateway transports call
the server from their own threads.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Literal

from hil.clock import Clock, Deadline
from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64, DevAddr

log = logging.getLogger(__name__)

Direction = Literal["up", "down"]

# Outcomes the server writes (free text is allowed, these are the ones it uses).
ACCEPTED = "accepted"
RETRANSMISSION = "retransmission"
DUPLICATE = "duplicate"
REJECTED = "rejected"
IGNORED = "ignored"
ERROR = "error"
JOIN_ACCEPTED = "join_accepted"
DENIED = "denied"
SENT = "sent"
DROPPED = "dropped"
REPLAYED = "replayed"
SEND_FAILED = "send_failed"


@dataclass(frozen=True, slots=True)
class FrameEvent:
    """One frame received or sent by the network server.

    ``time`` is rig seconds (end of reception for uplinks, scheduling time for downlinks).
    ``fcnt`` is the full 32-bit counter where known. For a downlink, ``frequency_hz``, ``dr``
    and ``delay_s`` describe its first item and ``windows`` names all of them.
    """

    time: float
    direction: Direction
    mtype: str
    outcome: str
    reason: str = ""
    dev_eui: str | None = None
    dev_addr: str | None = None
    fcnt: int | None = None
    dev_nonce: int | None = None
    join_nonce: int | None = None
    fport: int | None = None
    payload: bytes | None = None
    mac_commands: tuple[str, ...] = ()
    confirmed: bool | None = None
    ack: bool | None = None
    mic_valid: bool | None = None
    frequency_hz: int | None = None
    dr: int | None = None
    rssi: float | None = None
    snr: float | None = None
    delay_s: float | None = None
    windows: tuple[str, ...] = ()
    gateway_id: str | None = None
    uplink_id: int | None = None
    downlink_id: int | None = None
    queue_id: int | None = None
    faults: tuple[str, ...] = ()
    phy_payload: bytes = b""

    def to_row(self) -> dict[str, Any]:
        """A flat dict: bytes as hex strings, tuples joined with commas, None kept."""
        row: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).hex()
            elif isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            row[f.name] = value
        return row


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FrameEvent))

EventCallback = Callable[[FrameEvent], None]


def _normalise(name: str, value: Any) -> Any:
    """Let filters name devices in any accepted form (EUI64, int, "70-B3-D5-...")."""
    try:
        if name == "dev_eui" and isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(EUI64(value))
        if name == "dev_addr" and isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(DevAddr(value))
    except FrameError:
        return value
    return value


class EventLog:
    """A thread-safe, append-only list of :class:`FrameEvent` with filters and subscribers.

    ``maxlen`` bounds memory for long campaigns (oldest events dropped); None keeps all.
    """

    def __init__(self, maxlen: int | None = None) -> None:
        self._events: deque[FrameEvent] = deque(maxlen=maxlen)
        self._subscribers: list[EventCallback] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition()

    def append(self, event: FrameEvent) -> None:
        """Record ``event`` and pass it to every subscriber (a failing subscriber is logged, not raised)."""
        with self._lock:
            self._events.append(event)
            subscribers = list(self._subscribers)
        with self._arrived:
            self._arrived.notify_all()
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a report hook must not break the server
                log.exception("event subscriber %r failed", callback)

    def events(self) -> list[FrameEvent]:
        """A snapshot of all events, oldest first."""
        with self._lock:
            return list(self._events)

    def filter(self, **fields: Any) -> list[FrameEvent]:
        """Events whose fields equal the given values (a callable value is used as a predicate).

        ``log.filter(direction="up", outcome="rejected")``; ``log.filter(fcnt=lambda n: n > 5)``.
        ``dev_eui``/``dev_addr`` may be given as EUI64/DevAddr, int or any display string.
        """
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise TypeError(f"FrameEvent has no field {', '.join(unknown)}; fields are {', '.join(FIELDS)}")
        wanted = {name: _normalise(name, value) for name, value in fields.items()}

        def keep(event: FrameEvent) -> bool:
            for name, value in wanted.items():
                actual = getattr(event, name)
                if callable(value):
                    if not value(actual):
                        return False
                elif actual != value:
                    return False
            return True

        return [e for e in self.events() if keep(e)]

    def last(self, **fields: Any) -> FrameEvent | None:
        """The newest event matching :meth:`filter`, or None."""
        found = self.filter(**fields)
        return found[-1] if found else None

    def wait_for(self, clock: Clock, deadline: Deadline, **fields: Any) -> list[FrameEvent]:
        """Wait (rig time) until :meth:`filter` with ``fields`` finds events; returns them, [] at the deadline."""
        found: list[FrameEvent] = []

        def ready() -> bool:
            found[:] = self.filter(**fields)
            return bool(found)

        with self._arrived:
            clock.wait_for(self._arrived, ready, deadline)
        return found

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback`` with each new event; returns a function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def to_rows(self) -> list[dict[str, Any]]:
        """All events as flat dicts for CSV/HTML tables (see :meth:`FrameEvent.to_row`)."""
        return [e.to_row() for e in self.events()]

    def clear(self) -> None:
        """Forget all events (subscribers stay)."""
        with self._lock:
            self._events.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __repr__(self) -> str:
        return f"EventLog({len(self)} events)"
