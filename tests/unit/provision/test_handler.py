"""The unit handler: the virtual instrument through the real driver (pyvisa-py on its socket), and the operator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from drivers.handler import OperatorHandler, ScpiUnitHandler
from drivers.instruments.visa import InstrumentError
from hil.clock import Deadline, ManualClock
from hil.faults import RigFault
from hil.provision.tr005 import parse_label
from hil.sim.config import SimHandler, SimLabels
from hil.sim.instruments.handler import HandledUnit, VirtualHandler, unit_uid


class Fixture:
    def __init__(self, config: SimHandler) -> None:
        self.powered = False
        self.loaded: list[tuple[HandledUnit, bool]] = []
        self.instrument = VirtualHandler(config, seed=7, on_unit=lambda u, fresh: self.loaded.append((u, fresh)),
                                         dut_powered=lambda: self.powered)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def _open(fixture: Fixture, clock: ManualClock) -> ScpiUnitHandler:
    fixture.instrument.start()
    handler = ScpiUnitHandler(fixture.instrument.resource, clock)
    handler.open()
    return handler


def test_load_scan_and_bin_through_the_driver(clock: ManualClock, tmp_path: Path) -> None:
    config = SimHandler(units=2, load_time_s=0, unload_time_s=0,
                        labels=SimLabels(join_eui="70b3d57ed00000ff", dev_eui_start="70b3d57ed2000001"))
    fx = Fixture(config)
    handler = _open(fx, clock)
    try:
        assert handler.idn == "HIL,VirtualHandler,HF-0001,1.0" and not handler.unit_present()
        handler.load_next(Deadline.after(clock, 10))
        assert handler.unit_present() and handler.serial() == 1
        unit, fresh = fx.loaded[-1]
        assert fresh and unit.uid == unit_uid(7, 1) and len(unit.uid) == 12
        assert str(parse_label(handler.scan_label() or "").dev_eui) == "70b3d57ed2000001"
        with pytest.raises(InstrumentError, match="-221"):  # a second unit onto the first
            handler.load_next(Deadline.after(clock, 10))
        fx.powered = True
        with pytest.raises(InstrumentError, match="-221"):  # no move under power
            handler.unload("pass", Deadline.after(clock, 10))
        fx.powered = False
        handler.unload("pass", Deadline.after(clock, 10))
        handler.load_next(Deadline.after(clock, 10))
        handler.unload("fail", Deadline.after(clock, 10))
        with pytest.raises(InstrumentError, match="-200"):  # the tray is empty
            handler.load_next(Deadline.after(clock, 10))
        handler.reload(1, Deadline.after(clock, 10))  # a unit back from the PASS bin
        assert handler.serial() == 1 and fx.loaded[-1] == (fx.instrument.unit(1), False)
        assert fx.instrument.bins() == {"PASS": [], "FAIL": [2], "REJECT": []}
    finally:
        handler.close()
        fx.instrument.stop()


def test_state_file_keeps_the_unit_in_the_fixture_across_restarts(clock: ManualClock, tmp_path: Path) -> None:
    config = SimHandler(load_time_s=0, unload_time_s=0, state_file=tmp_path / "handler.json")
    fx = Fixture(config)
    handler = _open(fx, clock)
    handler.load_next(Deadline.after(clock, 10))
    handler.unload("pass", Deadline.after(clock, 10))
    handler.load_next(Deadline.after(clock, 10))
    handler.close()
    fx.instrument.stop()
    assert json.loads((tmp_path / "handler.json").read_text())["present"] == 2
    again = Fixture(config)  # the process died and came back
    handler = _open(again, clock)
    try:
        assert again.loaded == [(again.instrument.unit(2), False)]  # unit 2, NVM kept
        assert handler.unit_present() and handler.serial() == 2 and handler.scan_label() is None
    finally:
        handler.close()
        again.instrument.stop()


def test_a_bad_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text("{not json")
    with pytest.raises(ValueError, match="h.json is unusable"):
        Fixture(SimHandler(state_file=tmp_path / "h.json"))


def test_the_operator_handler_prompts_and_takes_a_scan(clock: ManualClock) -> None:
    out = io.StringIO()
    op = OperatorHandler(clock, input=io.StringIO("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122\n\nn\n"),
                         output=out, timeout_s=5)
    op.load_next(Deadline.after(clock, 1))
    assert op.scan_label() == "LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122"
    op.unload("fail", Deadline.after(clock, 1))
    assert not op.unit_present()
    assert "Put the next unit" in out.getvalue() and "FAIL bin" in out.getvalue()
    with pytest.raises(RigFault, match="input is closed"):
        op.load_next(Deadline.after(clock, 1))
