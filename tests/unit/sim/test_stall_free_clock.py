"""The virtual rig's clock does not count host stalls, and late callbacks see their own instant."""

from __future__ import annotations

import threading

import pytest

from hil.clock import ManualClock
from hil.sim.clock import StallFreeClock
from hil.sim.scheduler import Scheduler


class FakeMonotonic:
    """A real-time source the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_gap_longer_than_the_step_is_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    real = FakeMonotonic()
    clock = StallFreeClock(20, max_step_s=0.02, beat_s=0.005, monotonic=real)
    for _ in range(10):  # a running host: readings 5 ms apart
        real.t += 0.005
        clock.now()
    assert clock.now() == pytest.approx(0.05 * 20)
    real.t += 0.3  # the whole process stopped for 300 ms
    assert clock.now() == pytest.approx((0.05 + 0.02) * 20)
    assert not caplog.records  # a short stall is only counted
    assert (clock.stalls, clock.stalled_s) == (1, pytest.approx(0.28))
    assert clock.longest_stall_s == pytest.approx(0.28)
    real.t += 0.01
    assert clock.now() == pytest.approx((0.05 + 0.02 + 0.01) * 20)
    assert "1 host stall(s) (0.28 s real, longest 0.28 s)" in clock.describe_stalls()


def test_a_long_stall_is_logged_where_it_happened(caplog: pytest.LogCaptureFixture) -> None:
    real = FakeMonotonic()
    clock = StallFreeClock(20, monotonic=real)
    real.t += 1.02
    clock.now()
    assert "host stalled 1.00 s real: not counted in rig time" in caplog.text


def test_rig_time_never_goes_back() -> None:
    real = FakeMonotonic()
    clock = StallFreeClock(10, monotonic=real)
    seen = []
    for step in (0.001, 0.5, 0.0, 0.019, 2.0, 0.004):
        real.t += step
        seen.append(clock.now())
    assert seen == sorted(seen)


def test_heartbeat_starts_and_stops_without_leaving_a_thread() -> None:
    clock = StallFreeClock(20)
    clock.start()
    clock.start()  # idempotent
    assert any(t.name == "rig-clock-heartbeat" for t in threading.enumerate())
    ready = threading.Event()
    assert not clock.wait(ready, 0.2)  # 10 ms real
    assert clock.now() > 0
    clock.stop()
    clock.stop()
    assert not any(t.name == "rig-clock-heartbeat" for t in threading.enumerate())


def test_heartbeat_must_beat_faster_than_the_step() -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        StallFreeClock(20, max_step_s=0.01, beat_s=0.01)


def test_a_late_callback_sees_the_instant_it_was_due() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    seen: list[tuple[str, float]] = []

    def slow() -> None:
        clock.advance(2.0)  # the host stalls inside a callback: everything after runs late

    def record(name: str) -> None:
        seen.append((name, sched.now()))
        if name == "a":
            sched.call_later(0.25, record, "a+0.25")  # relative to the instant it was due

    sched.call_at(1.0, slow)
    sched.call_at(1.5, record, "a")
    sched.call_at(1.6, record, "b")
    sched.run_until(5.0)
    assert seen == [("a", 1.5), ("b", 1.6), ("a+0.25", 1.75)]
    assert sched.now() == clock.now() == 5.0  # outside callbacks, the clock's time


def test_event_time_never_goes_back_for_a_timer_set_in_the_past() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    seen: list[float] = []
    sched.call_at(2.0, lambda: sched.call_at(1.0, lambda: seen.append(sched.now())))
    sched.run_until(3.0)
    assert seen == [2.0]


def test_event_time_is_the_scheduler_threads_alone() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    other: list[float] = []

    def look_from_another_thread() -> None:
        clock.advance(0.5)
        t = threading.Thread(target=lambda: other.append(sched.now()))
        t.start()
        t.join(5)
        other.append(sched.now())

    sched.call_at(1.0, look_from_another_thread)
    sched.run_until(2.0)
    assert other == [1.5, 1.0]  # another thread reads the clock; the callback its own instant
