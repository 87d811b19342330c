"""The rig clock: one source of time for every part of a rig.

Times are rig seconds (float) since the clock started. A real bench runs a :class:`SystemClock`;
a virtual rig may run faster than real time; unit tests drive a :class:`ManualClock` by hand.
Deadlines are objects handed down through calls rather than raw floats.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

GPS_EPOCH_UNIX = 315964800.0  # 1980-01-06T00:00:00Z
GPS_LEAP_SECONDS = 18  # GPS - UTC since 2017-01-01


class Clock(Protocol):
    """What every rig part needs from time."""

    def now(self) -> float:
        """Rig seconds since the clock started."""
        ...

    def unix_time(self) -> float:
        """Wall-clock Unix time matching :meth:`now` (for timestamps in reports and DeviceTimeAns)."""
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


class SystemClock:
    """Real time: a monotonic clock anchored to the wall clock at start."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._unix0 = time.time()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def unix_time(self) -> float:
        return self._unix0 + self.now()


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


def gps_time(clock: Clock) -> float:
    """Seconds since the GPS epoch for the clock's current instant."""
    return clock.unix_time() - GPS_EPOCH_UNIX + GPS_LEAP_SECONDS
