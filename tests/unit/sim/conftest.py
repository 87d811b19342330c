"""Fixtures shared by the virtual-rig tests: a running scheduler and a fake firmware (console tests)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from hil.sim.scheduler import Scheduler
from tests.unit.sim.fake_firmware import FakeFirmware


@pytest.fixture
def scheduler(compressed_clock: Any) -> Iterator[Scheduler]:
    sched = Scheduler(compressed_clock(100))
    sched.start()
    yield sched
    sched.stop()
    assert not sched.errors


@pytest.fixture
def fw() -> FakeFirmware:
    return FakeFirmware()
