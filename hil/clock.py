"""The rig clock: one source of time for every part of a rig.

Times are rig seconds (float) since the clock started. A real bench runs a :class:`SystemClock`;
a virtual rig may run faster than real time; unit tests drive a :class:`ManualClock` by hand.
Deadlines are objects handed down through calls rather than raw floats.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

GPS_EPOCH_UNIX = 315964800.0  # 1980-01-06T00:00:00Z
GPS_LEAP_SECONDS = 18  # GPS - UTC since 2017-01-01


class Clock(Protocol):
    """What every rig part needs from time. All durations are rig seconds."""

    def now(self) -> float:
        """Rig seconds since the clock started."""
        ...

    def unix_time(self) -> float:
        """Wall-clock Unix time matching :meth:`now` (for timestamps in reports and DeviceTimeAns)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of rig time pass. The only sleep in the framework."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for ``event`` at most ``timeout`` rig seconds; True if it is set."""
        ...

    def wait_for(self, cond: threading.Condition, predicate: Callable[[], bool], deadline: "Deadline") -> bool:
        """With ``cond`` held, wait until ``predicate()`` or the deadline; returns the predicate's last value."""
        ...

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds ``seconds`` of rig time take."""
        ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in rig time by which something must happen."""

    clock: Clock
    at: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> "Deadline":
        return cls(clock, clock.now() + seconds)

    @property
    def remaining(self) -> float:
        return max(0.0, self.at - self.clock.now())

    @property
    def expired(self) -> bool:
        return self.clock.now() >= self.at


class ScaledClock:
    """Real time, optionally compressed: rig time runs ``time_scale`` times faster than real time.

    ``time_scale=1`` is a real bench's clock. A virtual rig may run at 20: its 5 s join delay
    then costs 250 ms. Waits are real waits on events and conditions, scaled.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._t0 = time.monotonic()
        self._unix0 = time.time()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.time_scale

    def unix_time(self) -> float:
        return self._unix0 + self.now()

    def real_seconds(self, seconds: float) -> float:
        return max(0.0, seconds) / self.time_scale

    def sleep(self, seconds: float) -> None:
        # loops on rig time: a clock that stops during host stalls takes longer than the real wait
        end = self.now() + seconds
        while (remaining := end - self.now()) > 0:
            time.sleep(self.real_seconds(remaining))

    def wait(self, event: threading.Event, timeout: float) -> bool:
        end = self.now() + timeout
        while not event.is_set():
            remaining = end - self.now()
            if remaining <= 0:
                return False
            event.wait(self.real_seconds(remaining))
        return True

    def wait_for(self, cond: threading.Condition, predicate: Callable[[], bool], deadline: Deadline) -> bool:
        while not predicate():
            remaining = deadline.at - self.now()
            if remaining <= 0:
                return predicate()
            cond.wait(self.real_seconds(remaining))
        return True


class SystemClock(ScaledClock):
    """Real time: a monotonic clock anchored to the wall clock at start (a real bench)."""

    def __init__(self) -> None:
        super().__init__(1.0)


class ManualClock:
    """A clock that moves only when told: for unit tests of timing rules."""

    def __init__(self, start: float = 0.0, unix_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._unix0 = unix_start - start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def unix_time(self) -> float:
        return self._unix0 + self.now()

    def advance(self, seconds: float) -> float:
        """Move time forward; returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += seconds
            return self._now

    def real_seconds(self, seconds: float) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        """Sleeping on a manual clock moves it (single-threaded tests)."""
        if seconds > 0:
            self.advance(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if not event.is_set() and timeout > 0:
            self.advance(timeout)
        return event.is_set()

    def wait_for(self, cond: threading.Condition, predicate: Callable[[], bool], deadline: Deadline) -> bool:
        if predicate():
            return True
        if deadline.at > self.now():
            self.advance(deadline.at - self.now())
        return predicate()


def gps_time(clock: Clock) -> float:
    """Seconds since the GPS epoch for the clock's current instant."""
    return clock.unix_time() - GPS_EPOCH_UNIX + GPS_LEAP_SECONDS
