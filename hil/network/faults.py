"""Per-device, per-frame fault switches for negative tests of an end device.

Modelled on the tampering proxy of Semtech's conformance test bench, but built into the
server: ``server.faults.inject(dev_eui, Fault.CORRUPT_MIC)`` spoils the device's next
downlink, ``count=None`` keeps spoiling until ``clear``. Where each fault applies:

=====================  ==================================================================
``DROP_JOIN_ACCEPT``   next join-accept: built and committed (JoinNonce, new session), not sent
``CORRUPT_MIC``        next join-accept (MIC flipped before encryption) or data downlink
``RX2_ONLY``           next Class A answer (join-accept or data): only the RX2 item is sent
``TOO_LATE``           next Class A answer: every item ``late_by_s`` (default 1 s) later
``REPLAY_DOWNLINK``    next downlink opportunity: the exact bytes of the previous downlink
                       to this device are sent *instead of* a new frame (see server docs)
``JUMP_FCNT_DOWN``     next data downlink: its counter first advances by ``by`` (default 1000)
=====================  ==================================================================

A fault is consumed only by a frame it applies to; a fault that cannot apply (e.g. a replay
before any downlink was sent) stays armed. ``on="join_accept"`` (or ``"data"``) narrows a fault
to that kind of frame: ``inject(eui, Fault.RX2_ONLY, on="join_accept")`` leaves the answers to data
uplinks alone, whatever the device sends before its next join-request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal

FrameKind = Literal["any", "join_accept", "data"]

from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64
from hil.network.errors import FaultError

DEFAULT_LATE_BY_S = 1.0
DEFAULT_JUMP_BY = 1000


class Fault(str, Enum):
    """What to do wrong to a device's next frame(s)."""

    DROP_JOIN_ACCEPT = "drop_join_accept"
    CORRUPT_MIC = "corrupt_mic"
    RX2_ONLY = "rx2_only"
    TOO_LATE = "too_late"
    REPLAY_DOWNLINK = "replay_downlink"
    JUMP_FCNT_DOWN = "jump_fcnt_down"


@dataclass(frozen=True, slots=True)
class ArmedFault:
    """An injected fault: ``remaining`` frames to spoil (None: until cleared) and its parameters."""

    fault: Fault
    remaining: int | None
    late_by_s: float = DEFAULT_LATE_BY_S
    by: int = DEFAULT_JUMP_BY
    on: FrameKind = "any"


def _eui(dev_eui: EUI64 | int | str) -> EUI64:
    try:
        return EUI64(dev_eui)
    except FrameError as exc:
        raise FaultError(f"not a DevEUI: {exc}") from None


class FaultInjector:
    """The armed faults of every device; thread-safe."""

    def __init__(self) -> None:
        self._armed: dict[tuple[EUI64, Fault], ArmedFault] = {}
        self._lock = threading.Lock()

    def inject(
        self,
        dev_eui: EUI64 | int | str,
        fault: Fault | str,
        count: int | None = 1,
        *,
        late_by_s: float | None = None,
        by: int | None = None,
        on: FrameKind = "any",
    ) -> None:
        """Spoil the device's next ``count`` applicable frames (None: until :meth:`clear`).

        ``late_by_s`` goes with TOO_LATE, ``by`` with JUMP_FCNT_DOWN; ``on`` limits the fault to
        join-accepts or data downlinks. Injecting a fault that is already armed replaces it.
        """
        fault = Fault(fault)
        if on not in ("any", "join_accept", "data"):
            raise FaultError(f"on must be 'any', 'join_accept' or 'data', got {on!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise FaultError(f"count must be an int >= 1 or None (until cleared), got {count!r}")
        if late_by_s is not None and fault is not Fault.TOO_LATE:
            raise FaultError(f"late_by_s goes with Fault.TOO_LATE, not {fault.name}")
        if by is not None and fault is not Fault.JUMP_FCNT_DOWN:
            raise FaultError(f"by goes with Fault.JUMP_FCNT_DOWN, not {fault.name}")
        if late_by_s is not None and not late_by_s > 0:
            raise FaultError(f"late_by_s must be > 0 s, got {late_by_s!r}")
        if by is not None and (isinstance(by, bool) or not isinstance(by, int) or by < 1):
            raise FaultError(f"by must be an int >= 1, got {by!r}")
        armed = ArmedFault(
            fault,
            count,
            DEFAULT_LATE_BY_S if late_by_s is None else float(late_by_s),
            DEFAULT_JUMP_BY if by is None else by,
            on,
        )
        with self._lock:
            self._armed[(_eui(dev_eui), fault)] = armed

    def clear(self, dev_eui: EUI64 | int | str | None = None, fault: Fault | str | None = None) -> None:
        """Disarm faults: of one device (and one fault), or all of them with no arguments."""
        eui = None if dev_eui is None else _eui(dev_eui)
        kind = None if fault is None else Fault(fault)
        with self._lock:
            for key in list(self._armed):
                if (eui is None or key[0] == eui) and (kind is None or key[1] is kind):
                    del self._armed[key]

    def armed(self, dev_eui: EUI64 | int | str) -> list[ArmedFault]:
        """The faults armed for a device."""
        eui = _eui(dev_eui)
        with self._lock:
            return [a for (e, _), a in self._armed.items() if e == eui]

    def peek(self, dev_eui: EUI64 | int | str, fault: Fault) -> ArmedFault | None:
        """The armed fault, without consuming it."""
        with self._lock:
            return self._armed.get((_eui(dev_eui), Fault(fault)))

    def take(self, dev_eui: EUI64 | int | str, fault: Fault, frame: FrameKind = "any") -> ArmedFault | None:
        """Consume one use of an armed fault by a ``frame`` (join_accept/data); None if none applies."""
        key = (_eui(dev_eui), Fault(fault))
        with self._lock:
            armed = self._armed.get(key)
            if armed is None or (armed.on != "any" and frame != "any" and armed.on != frame):
                return None
            if armed.remaining is not None:
                if armed.remaining <= 1:
                    del self._armed[key]
                else:
                    self._armed[key] = replace(armed, remaining=armed.remaining - 1)
            return armed

    def __repr__(self) -> str:
        with self._lock:
            armed = ", ".join(f"{e}:{f.name}" for e, f in self._armed)
        return f"FaultInjector({armed})"
