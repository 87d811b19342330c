"""The rig clock: scaled real time, manual time, deadlines and waits."""

from __future__ import annotations

import threading

import pytest

from hil.clock import Deadline, ManualClock, ScaledClock, gps_time


def test_scaled_clock_compresses_waits() -> None:
    clock = ScaledClock(time_scale=100)
    event = threading.Event()
    start = clock.now()
    assert clock.wait(event, 2.0) is False  # 2 rig seconds = 20 ms real
    assert clock.now() - start >= 2.0
    assert clock.real_seconds(5.0) == pytest.approx(0.05)


def test_wait_returns_early_when_set() -> None:
    clock = ScaledClock(time_scale=1)
    event = threading.Event()
    threading.Timer(0.01, event.set).start()
    assert clock.wait(event, 30.0) is True


def test_wait_for_condition_with_deadline() -> None:
    clock = ScaledClock(time_scale=50)
    cond = threading.Condition()
    box: list[int] = []

    def produce() -> None:
        with cond:
            box.append(1)
            cond.notify_all()

    threading.Timer(0.01, produce).start()
    with cond:
        assert clock.wait_for(cond, lambda: bool(box), Deadline.after(clock, 60.0))
    with cond:
        assert not clock.wait_for(cond, lambda: len(box) > 1, Deadline.after(clock, 1.0))


def test_manual_clock() -> None:
    clock = ManualClock(start=10.0, unix_start=1_000_000_000.0)
    deadline = Deadline.after(clock, 5)
    assert deadline.remaining == 5 and not deadline.expired
    clock.sleep(5)
    assert deadline.expired and clock.now() == 15.0
    event = threading.Event()
    assert clock.wait(event, 2.0) is False and clock.now() == 17.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert gps_time(clock) == pytest.approx(clock.unix_time() - 315964800 + 18)


def test_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        ScaledClock(0)
