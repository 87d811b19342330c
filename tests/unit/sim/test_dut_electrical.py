"""The virtual DUT as an electrical load: the model, and the supply current of the running firmware."""

from __future__ import annotations

import pytest

from hil.sim.dut.electrical import BoardLoad, ElectricalSpec, ElectricalSpecError, Supervisor
from hil.sim.dut.interfaces import Booted
from hil.sim.power import SupplyChannel
from tests.unit.sim.fake_mac import DutBench

SPEC = ElectricalSpec.default()


def test_the_shipped_spec() -> None:
    assert (SPEC.nominal_v, SPEC.operating_min_v, SPEC.operating_max_v) == (5.0, 4.5, 5.5)
    assert (SPEC.brown_out_v, SPEC.release_v, SPEC.damage_v) == (4.2, 4.4, 6.0)
    c = SPEC.currents_a
    assert (c.off, c.booting, c.sleep, c.rx, c.tx_at_reference, c.relay_coil) == (0, 0.020, 0.0015, 0.012, 0.045, 0.075)
    assert SPEC.tx_current(14) == pytest.approx(0.045)
    assert SPEC.tx_current(16) > 0.045 > SPEC.tx_current(2) > c.tx_base


def test_thresholds_must_be_ordered() -> None:
    text = ElectricalSpec.default().model_dump()
    text["brown_out_v"] = 4.6
    import yaml

    with pytest.raises(ElectricalSpecError, match=r"brown_out_v \(4.6 V\) must be below release_v"):
        ElectricalSpec.from_yaml(yaml.safe_dump(text))


def test_board_current_per_state_and_load_changed() -> None:
    channel = SupplyChannel()
    channel.configure(voltage=5.0, current_limit=1.0)
    channel.set_output(True)
    board = BoardLoad(SPEC)
    board.attach(channel)
    expected = {"off": 0.0, "reset": 0.0005, "booting": 0.020, "sleep": 0.0015, "rx": 0.012, "tx": 0.045}
    for state, amps in expected.items():
        board.set_state(state)  # type: ignore[arg-type]
        assert channel.measured_current() == pytest.approx(amps), state
    board.set_tx_power_dbm(2)
    assert channel.measured_current() == pytest.approx(SPEC.tx_current(2))
    board.set_state("rx")
    board.set_coil(True)
    assert channel.measured_current() == pytest.approx(0.012 + 0.075)
    board.set_state("reset")  # the coil driver loses its supply
    assert not board.coil and channel.measured_current() == pytest.approx(0.0005)
    assert board.current_at(0.0) == 0.0
    with pytest.raises(ValueError, match="unknown board power state 'dead'"):
        board.set_state("dead")  # type: ignore[arg-type]


def test_load_changed_pulls_a_current_limited_rail_down() -> None:
    channel = SupplyChannel()
    channel.configure(voltage=5.0, current_limit=0.03)
    channel.set_output(True)
    seen: list[float] = []
    board = BoardLoad(SPEC)
    board.attach(channel, seen.append)
    board.set_state("sleep")
    assert channel.terminal_voltage() == pytest.approx(5.0)
    board.set_state("tx")  # 45 mA into a 30 mA limit
    assert channel.terminal_voltage() == pytest.approx(5.0 * 0.03 / 0.045)
    assert seen[-1] == pytest.approx(5.0 * 0.03 / 0.045)


def test_supervisor_hysteresis_causes_and_damage() -> None:
    sup = Supervisor(SPEC)
    assert sup.assess(4.3) == "reset"  # rising: not yet at the release threshold
    assert sup.assess(4.4) == "run"
    assert sup.reset_cause() == "power_on"
    assert sup.assess(4.25) == "run"  # falling: runs down to the brown-out threshold
    assert sup.assess(4.1) == "reset"
    assert sup.assess(4.3) == "reset"
    assert sup.assess(5.0) == "run"
    assert sup.reset_cause() == "brown_out"  # never below the power-on-reset level
    assert sup.assess(0.0) == "reset" and sup.assess(5.0) == "run"
    assert sup.reset_cause() == "power_on"
    assert sup.assess(6.1) == "damaged"
    assert sup.assess(5.0) == "damaged"  # for good


# --- the firmware on the supply ------------------------------------------------------------------


def test_supply_current_follows_the_firmware_state() -> None:
    bench = DutBench(device_class="A")
    bench.run(0.0025)  # released after the 2 ms reset hold: booting
    assert bench.fw.phase == "booting"
    assert bench.supply.measured_current() == pytest.approx(0.020)
    bench.boot()
    assert bench.supply.measured_current() == pytest.approx(0.0015)  # Class A, radio asleep
    bench.join()
    assert bench.mac.sent  # the unsolicited SYNC response after the join is on air...
    bench.run(0.1)
    assert bench.supply.measured_current() == pytest.approx(0.0015)
    assert bench.fw.send(1, b"x", False) is None
    bench.run(0.001)
    assert bench.supply.measured_current() == pytest.approx(0.045)  # TX at 14 dBm
    bench.run(0.1)
    assert bench.supply.measured_current() == pytest.approx(0.0015)
    bench.fw.device_class = "C"
    bench.run(0.01)
    assert bench.mac.device_class == "C"


def test_class_c_receives_and_the_coil_adds_its_current() -> None:
    bench = DutBench()
    bench.boot()
    bench.join()
    assert bench.supply.measured_current() == pytest.approx(0.012)
    bench.fw._drive_coil(True)
    assert bench.supply.measured_current() == pytest.approx(0.012 + 0.075)
    bench.supply.set_output(False)
    bench.run(0.01)
    assert bench.supply.measured_current() == 0.0 and not bench.contact.coil_energised


def test_no_boot_below_the_release_threshold() -> None:
    bench = DutBench(power_on=False)
    bench.supply.configure(voltage=4.3)
    bench.supply.set_output(True)
    bench.run(1.0)
    assert bench.fw.phase == "off" and bench.events == []
    assert bench.supply.measured_current() == pytest.approx(0.0005)  # held in reset
    bench.supply.configure(voltage=4.5)
    bench.run(0.5)
    assert bench.fw.running and bench.of(Booted) == [Booted("power_on")]


def test_overvoltage_damages_the_board_for_good() -> None:
    bench = DutBench()
    bench.boot()
    bench.supply.configure(voltage=6.5)
    bench.run(0.01)
    assert bench.fw.phase == "damaged" and bench.supply.measured_current() == 0.0
    bench.supply.configure(voltage=5.0)
    bench.run(1.0)
    assert bench.fw.phase == "damaged" and not bench.fw.running
    assert bench.supply.measured_current() == 0.0
    assert len(bench.of(Booted)) == 1
