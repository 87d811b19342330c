"""The virtual rig's clock: scaled real time that stops while the host stalls.

A virtual rig runs faster than real time (``time_scale`` 20: a 1 s RX1 delay is 50 ms). When the
whole process stops for a moment (a garbage collection, a C call holding the GIL, the runner's
scheduler giving the CPU to another job) a plain scaled clock jumps ahead by the stall times the
scale, and a Class A answer that left the network on time arrives seconds late in rig time. No
real bench behaves like that, so the virtual rig's time simply does not count a stall.

A stall is seen as a gap between two readings of the clock longer than ``max_step_s`` real
seconds. A heartbeat thread reads the clock every ``beat_s`` so that the readings are dense while
the process runs; of a longer gap only ``max_step_s`` counts. Rig time stays monotonic and
continuous. A stall of another process (the MQTT broker) is not seen: it is rare, and the
gateway reports what it causes as a real one does (``TOO_LATE``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from hil.clock import ScaledClock

log = logging.getLogger(__name__)

MAX_STEP_S = 0.02
"""Real seconds of a gap between two clock readings that still count; the rest is a stall."""

LOG_STALL_S = 0.5
"""A stall longer than this (real seconds) is logged as a warning."""

BEAT_S = 0.004
"""Real seconds between the heartbeat's readings (well under MAX_STEP_S, so a running host never
looks stalled)."""


class StallFreeClock(ScaledClock):
    """A :class:`ScaledClock` whose time does not run while the process stalls.

    :meth:`start` the heartbeat with the rig and :meth:`stop` it with the rig; without it, a quiet
    period between readings would be taken for a stall. ``monotonic`` is for tests.
    """

    def __init__(self, time_scale: float = 1.0, *, max_step_s: float = MAX_STEP_S, beat_s: float = BEAT_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 0 < beat_s < max_step_s:
            raise ValueError(f"the heartbeat ({beat_s} s) must be shorter than the longest step ({max_step_s} s)")
        super().__init__(time_scale)
        self.max_step_s = max_step_s
        self.beat_s = beat_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._t0 = self._last = monotonic()
        self.stalled_s = 0.0  # real seconds not counted
        self.stalls = 0  # gaps over max_step_s
        self.longest_stall_s = 0.0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def now(self) -> float:
        stall = 0.0
        with self._lock:
            real = self._monotonic()
            gap = real - self._last
            if gap > self.max_step_s:
                stall = gap - self.max_step_s
                self.stalled_s += stall
                self.stalls += 1
                self.longest_stall_s = max(self.longest_stall_s, stall)
            if gap > 0:
                self._last = real
            now = (real - self._t0 - self.stalled_s) * self.time_scale
        if stall > LOG_STALL_S:  # in the captured log of the test that was running
            log.warning("host stalled %.2f s real: not counted in rig time (rig time %.3f s)", stall, now)
        return now

    def start(self) -> None:
        """Start the heartbeat (a daemon thread); idempotent."""
        if self._beat is not None:
            return
        self._stop.clear()
        self.now()  # a quiet time before start is not a stall
        self._beat = threading.Thread(target=self._heartbeat, name="rig-clock-heartbeat", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        """Stop the heartbeat; the clock still reads, but quiet gaps count as stalls again."""
        self._stop.set()
        if self._beat is not None:
            if self._beat is not threading.current_thread():
                self._beat.join(1.0)
            self._beat = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat_s):
            self.now()

    def describe_stalls(self) -> str:
        """One line for the rig's diagnostics, e.g. ``3 host stalls (0.41 s real, longest 0.25 s) not counted``."""
        return (f"{self.stalls} host stall(s) ({self.stalled_s:.2f} s real, longest {self.longest_stall_s:.2f} s) "
                f"not counted in rig time")
