"""Timers on the rig clock: the virtual rig's event loop.

Every timed behaviour of the virtual rig (a DUT's RX window, a relay's operate time, a gateway's
scheduled transmission) is a callback run at a rig time. One thread runs them in time order, so
the models need no locks among themselves for what happens inside callbacks. On a
:class:`~hil.clock.ManualClock` nothing runs by itself: :meth:`Scheduler.run_until` advances the
clock from one due callback to the next, which makes unit tests of timing exact.

Inside a callback, :meth:`Scheduler.now` is the time the callback was due, not the clock's: a
callback the host ran late (a stalled process, a loaded CI runner) sees the world as it was at its
own instant, so a late RX window still hears the frame that was on air then. Callbacks run in time
order whatever their lateness, so a stall delays the virtual rig but cannot reorder it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from hil.clock import Clock, ManualClock

log = logging.getLogger(__name__)


@dataclass(order=True)
class Timer:
    """A scheduled callback; :meth:`cancel` stops it if it has not run yet."""

    at: float
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())
    name: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.cancelled = True


LATE_S = 0.5
"""A callback run more than this after its time (rig seconds) is late: real I/O may race rig time
there, the tightest being a Class A RX1 answer over MQTT within RECEIVE_DELAY1 (1 s)."""


class Scheduler:
    """Runs callbacks at rig times, in order, on one thread (or by hand on a manual clock)."""

    def __init__(self, clock: Clock, name: str = "rig-scheduler") -> None:
        self.clock = clock
        self.name = name
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.errors: list[BaseException] = []
        self.max_lag_s = 0.0  # the latest a callback ran after its time (rig seconds): a host too slow for the scale
        self.callbacks = 0  # callbacks run
        self.late_callbacks = 0  # of them, run more than LATE_S after their time
        self._event_time: float | None = None  # the due time of the callback running now (scheduler thread)
        self._runner: int | None = None  # the thread running callbacks
        self._last_event = float("-inf")

    def now(self) -> float:
        """Rig time as the models see it: inside a callback, the time it was due; elsewhere the clock's."""
        if self._event_time is not None and threading.get_ident() == self._runner:
            return self._event_time
        return self.clock.now()

    # -- scheduling ----------------------------------------------------------------------------

    def call_at(self, at: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        """Run ``fn(*args)`` at rig time ``at`` (at once if that has passed)."""
        timer = Timer(at, next(self._seq), fn, args, name or getattr(fn, "__name__", "callback"))
        with self._cond:
            heapq.heappush(self._heap, timer)
            self._cond.notify()
        return timer

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        """Run ``fn(*args)`` after ``delay`` rig seconds."""
        return self.call_at(self.now() + max(0.0, delay), fn, *args, name=name)

    def call_soon(self, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        """Run ``fn(*args)`` on the scheduler thread as soon as possible (hand work over from I/O threads)."""
        return self.call_at(self.now(), fn, *args, name=name)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for t in self._heap if not t.cancelled)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run callbacks on a daemon thread (real or scaled clocks)."""
        if isinstance(self.clock, ManualClock):
            raise RuntimeError("a scheduler on a ManualClock is driven by run_until(), not a thread")
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; callbacks still pending are dropped. ``timeout`` is real seconds."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_until(self, at: float) -> None:
        """Manual clock: run every callback due up to ``at``, moving the clock to each one's time."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise RuntimeError("run_until() drives a ManualClock; a real clock runs start()")
        while True:
            with self._cond:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap or self._heap[0].at > at:
                    break
                timer = heapq.heappop(self._heap)
            if timer.at > clock.now():
                clock.advance(timer.at - clock.now())
            self._run(timer)
        if at > clock.now():
            clock.advance(at - clock.now())

    def run_for(self, seconds: float) -> None:
        """Manual clock: :meth:`run_until` ``now + seconds``."""
        self.run_until(self.clock.now() + seconds)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    while self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                    if self._heap:
                        wait = self._heap[0].at - self.clock.now()
                        if wait <= 0:
                            break
                        self._cond.wait(self.clock.real_seconds(wait))
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
                timer = heapq.heappop(self._heap)
            self._run(timer)

    def _run(self, timer: Timer) -> None:
        lag = self.clock.now() - timer.at
        # event time never goes back, even for a timer set for an instant already past
        self._last_event = max(self._last_event, timer.at)
        self._event_time = self._last_event
        self._runner = threading.get_ident()
        self.callbacks += 1
        if lag > LATE_S:
            self.late_callbacks += 1
        if lag > self.max_lag_s:
            self.max_lag_s = lag
        try:
            timer.fn(*timer.args)
        except Exception as exc:  # a model's bug must not stop the rig; tests look at .errors
            log.exception("rig callback %s failed", timer.name)
            self.errors.append(exc)
        finally:
            self._event_time = None
