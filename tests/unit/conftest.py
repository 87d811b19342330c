"""Fixtures shared by the unit tests.

``compressed_clock`` makes the clocks of tests that run real threads faster than real time. It is
the virtual rig's :class:`~hil.sim.clock.StallFreeClock`: a loaded CI runner that stalls the test
process for a second would otherwise burn 50 to 100 rig seconds of a test's deadlines at once.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from hil.sim.clock import StallFreeClock


@pytest.fixture
def compressed_clock() -> Iterator[Callable[[float], StallFreeClock]]:
    """A factory: ``compressed_clock(50)`` is a started clock at time scale 50, stopped after the test."""
    made: list[StallFreeClock] = []

    def make(time_scale: float) -> StallFreeClock:
        clock = StallFreeClock(time_scale)
        clock.start()
        made.append(clock)
        return clock

    yield make
    for clock in made:
        clock.stop()
