"""Fixtures of the SWD tests: a virtual MCU behind the simulated probe (no firmware on it), and the
driver opened on it through the real pyocd."""

from __future__ import annotations

from typing import Iterator

import pytest

from drivers.swd import SwdProbe
from hil.rigfile.model import NvmField
from hil.sim.dut.memory import DutMemory
from hil.sim.dut.nvm import Nvm
from hil.sim.scheduler import Scheduler
from hil.sim.swd import DebugUnit, new_unit_name, register
from hil.sim.swd.core import NullHost
from tests.unit.sim.conftest import scheduler  # noqa: F401  (the virtual-rig tests' running scheduler)

LAYOUT = {
    "magic": NvmField(addr=0x08080000, type="u32le"),
    "layout_version": NvmField(addr=0x08080004, type="u16le"),
    "data_rate": NvmField(addr=0x0808000B, type="u8"),
    "dev_eui": NvmField(addr=0x08080010, type="eui64"),
    "dev_nonce": NvmField(addr=0x08080080, type="u32le"),
    "app_key": NvmField(addr=0x08080020, type="bytes", size=16),
}


@pytest.fixture
def unit(scheduler: Scheduler) -> Iterator[DebugUnit]:
    """A powered virtual MCU with the DUT's memory map, registered as ``hilsim:<name>``."""
    u = DebugUnit(new_unit_name("test"), DutMemory(Nvm(scheduler)), host=NullHost())
    u.on_vdd(3.3)
    unregister = register(u)
    yield u
    unregister()


@pytest.fixture
def host(unit: DebugUnit) -> NullHost:
    assert isinstance(unit.core.host, NullHost)
    return unit.core.host


@pytest.fixture
def probe(unit: DebugUnit, scheduler: Scheduler) -> Iterator[SwdProbe]:
    p = SwdProbe(unit.probe_uid, unit.target, scheduler.clock, LAYOUT).open()
    yield p
    p.close()
