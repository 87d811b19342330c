"""Fixtures shared by the unit tests.

Secrets a unit test records in the process-wide redactor (its own rig files' dummy keys) are
forgotten after it, unless it used the session's rig: otherwise they would be masked in later
tests' names and parameters, and every CI run would report "masked secrets" that are test data.

``compressed_clock`` makes the clocks of tests that run real threads faster than real time. It is
the virtual rig's :class:`~hil.sim.clock.StallFreeClock`: a loaded CI runner that stalls the test
process for a second would otherwise burn 50 to 100 rig seconds of a test's deadlines at once.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from hil.rigfile.redaction import REDACTOR
from hil.sim.clock import StallFreeClock


@pytest.fixture(autouse=True)
def _test_keys_stay_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    if "rig" in request.fixturenames:  # the session rig records the keys every later test must mask
        yield
        return
    before = REDACTOR.snapshot()
    yield
    REDACTOR.restore(before)


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
