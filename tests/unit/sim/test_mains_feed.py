"""The relay's mains feed: the virtual AC source (SCPI over TCP) switching the mains the relay
contact, the DUT's sense and the feedback meter see, driven by drivers.psu on its AC profile."""

from __future__ import annotations

from typing import Iterator

import pytest

from drivers.instruments.profiles import load_psu_profile
from drivers.psu import PowerSupply
from hil.clock import Deadline
from hil.sim.bench import Bench, open_bench, sim_config
from hil.sim.mains import MainsConfig, RelayContact
from hil.sim.scheduler import Scheduler

LOAD_OHMS = 529.0


def test_the_contact_carries_the_feed_and_tells_listeners_when_it_changes(scheduler: Scheduler) -> None:
    contact = RelayContact(scheduler, MainsConfig(bounces=0))
    heard: list[bool] = []
    contact.subscribe(heard.append)
    assert contact.mains_present and contact.feed_voltage_rms == 230.0 and contact.current_at(230.0) == 0.0
    contact.feed(0.0)
    assert not contact.mains_present and heard == [False]  # the feed changed, the contact did not
    contact.mains_present = True  # the old switch still works: back to the configured voltage
    assert contact.feed_voltage_rms == 230.0 and heard == [False, False]
    contact.feed(230.0)
    assert heard == [False, False]  # no change, no news


@pytest.fixture
def bench() -> Iterator[Bench]:
    yield from open_bench(sim_config())


def settle(bench: Bench, check, within_s: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    deadline = Deadline.after(bench.clock, within_s)
    while not check() and not deadline.expired:
        bench.clock.sleep(0.01)
    assert check()


def test_the_ac_source_switches_what_the_contact_dut_and_meter_see(bench: Bench) -> None:
    ep, contact = bench.rig.endpoints, bench.rig.contact
    assert ep is not None and contact is not None and ep.mains_resource is not None
    assert any(line.startswith("mains ") and ep.mains_resource in line for line in ep.lines())
    assert load_psu_profile("keysight-ac6800").channels[0].max_voltage == 310.0
    source = PowerSupply(ep.mains_resource, "keysight-ac6800", bench.clock, name="mains").open()
    try:
        assert source.idn is not None and "AC6801B" in source.idn
        assert source.output_is_on() and source.voltage_setpoint() == 230.0  # on at sim.mains.voltage_rms
        contact.drive_coil(True)  # the DUT's coil, as the relay application drives it
        settle(bench, lambda: contact.closed)
        assert float(bench.dmm.query("MEAS:VOLT:AC?")) == pytest.approx(230.0)
        assert source.measure_current() == pytest.approx(230.0 / LOAD_OHMS)  # the lamp through the contact

        source.output(False)
        assert not contact.mains_present and contact.output_voltage_rms() == 0.0  # what the DUT's sense reads
        assert float(bench.dmm.query("MEAS:VOLT:AC?")) == 0.0 and source.measure_voltage() == 0.0

        source.set_voltage(115.0)
        source.output(True)
        assert float(bench.dmm.query("MEAS:VOLT:AC?")) == pytest.approx(115.0)
        with pytest.raises(ValueError, match="max_voltage 310"):
            source.set_voltage(400.0)
        contact.drive_coil(False)
        settle(bench, lambda: not contact.closed)
        assert source.measure_current() == 0.0 and source.measure_voltage() == pytest.approx(115.0)
    finally:
        source.close()
