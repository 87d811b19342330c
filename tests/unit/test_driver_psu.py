"""drivers.psu against the virtual bench supplies (hil.sim) through pyvisa + pyvisa-py, both dialects.

Exact rig timing of the helpers is checked on a ManualClock with an in-process transport into
the same virtual supply; the socket path runs on a ScaledClock(50) with a started scheduler.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import threading
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import pytest

from drivers.instruments import InstrumentError, OperationNotSupported, ProfileError, known_dialects
from drivers.instruments.profiles import load_dmm_profile, load_psu_profile
from drivers.psu import PowerEvent, PowerSupply
from hil.clock import ManualClock, ScaledClock
from hil.sim.instruments.psu import VirtualPsu
from hil.sim.scheduler import Scheduler

TIME_SCALE = 50
SLACK_S = 5.0  # rig seconds (100 ms real at x50): upper bound of thread/socket latency in timing checks

VIRTUAL = {"keysight-e36300": "psu_keysight_e36300", "rigol-dp800": "psu_rigol_dp800"}


class Resistor:
    """A test load with the Load protocol; records every terminal voltage it sees."""

    def __init__(self, ohms: float) -> None:
        self.ohms = ohms
        self.seen: list[float] = []

    def current_at(self, volts: float) -> float:
        return volts / self.ohms

    def on_voltage(self, volts: float) -> None:
        self.seen.append(volts)


class InProcess:
    """A Transport straight into a virtual instrument's line handler: no socket, exact rig timing."""

    def __init__(self, instrument: VirtualPsu) -> None:
        self.instrument = instrument
        self.resource = f"inproc::{instrument.name}"
        self.sent: list[str] = []
        self._replies: deque[str] = deque()

    def write(self, command: str) -> None:
        self.sent.append(command)
        reply = self.instrument.handle_line(command)
        if reply is not None:
            self._replies.append(reply)

    def read(self) -> str:
        if not self._replies:
            raise TimeoutError("no reply")
        return self._replies.popleft()

    def close(self) -> None:
        pass


@pytest.fixture
def scheduler(compressed_clock: Any) -> Iterator[Scheduler]:
    sched = Scheduler(compressed_clock(TIME_SCALE), name="psu-test-scheduler")
    sched.start()
    yield sched
    sched.stop()
    assert not sched.errors


def start_virtual(scheduler: Scheduler | None, profile: str, ohms: float) -> tuple[VirtualPsu, Resistor]:
    psu = VirtualPsu(profile, scheduler=scheduler)
    load = Resistor(ohms)
    psu.channel(1).attach(load, load.on_voltage)
    psu.start()
    return psu, load


@pytest.fixture(params=sorted(VIRTUAL))
def bench(request: pytest.FixtureRequest, scheduler: Scheduler) -> Iterator[tuple[PowerSupply, VirtualPsu, Resistor]]:
    """A driver on channel 1 of a virtual supply (per dialect) with a 10 ohm load."""
    virtual, load = start_virtual(scheduler, VIRTUAL[request.param], 10.0)
    psu = PowerSupply(virtual.resource, request.param, scheduler.clock)
    psu.open()
    yield psu, virtual, load
    psu.close()
    virtual.stop()
    assert virtual.server.threads() == []


def cut_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "-cut@" in t.name]


def sent(psu: PowerSupply) -> list[str]:
    return [line.text for line in psu.session.transcript if line.direction == ">"]


# -- set and measure through both dialects -------------------------------------------------------


def test_set_read_back_and_measure(bench) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, load = bench
    assert psu.idn is not None and psu.identify() == psu.idn
    assert psu.idn.split(",")[0] in ("Keysight Technologies", "RIGOL TECHNOLOGIES")
    psu.set_voltage(5.0)
    psu.set_current_limit(1.0)
    assert psu.voltage_setpoint() == 5.0 and psu.current_limit() == 1.0
    assert not psu.output_is_on() and load.seen == []
    psu.output(True)
    assert psu.output_is_on()
    assert psu.measure_voltage() == pytest.approx(5.0)
    assert psu.measure_current() == pytest.approx(0.5)  # 5 V into 10 ohm
    assert virtual.channel(1).terminal_voltage() == 5.0
    psu.set_current_limit(0.2)  # the load wants 0.5 A: constant current, the voltage sags
    assert psu.measure_current() == pytest.approx(0.2)
    assert psu.measure_voltage() == pytest.approx(2.0)
    psu.output(False)
    assert not psu.output_is_on()
    assert psu.measure_current() == 0.0
    actions = [e.action for e in psu.events]
    assert actions == ["set voltage", "set current limit", "output on", "measure voltage", "measure current",
                       "set current limit", "measure current", "measure voltage", "output off", "measure current"]
    assert psu.events[2] == PowerEvent(psu.events[2].time, "output on", 5.0, 1.0)
    times = [e.time for e in psu.events]
    assert times == sorted(times)


def test_ovp_trip_is_reported(bench) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, load = bench
    psu.set_voltage(5.0)
    psu.output(True)
    assert psu.protection_tripped() is None
    psu.set_ovp(4.0)  # below the set voltage: trips at once
    assert psu.protection_tripped() == "ovp"
    assert not psu.output_is_on()
    assert virtual.channel(1).tripped
    assert [e.action for e in psu.events][-2:] == ["set ovp", "ovp tripped"]


def test_ocp_trips_at_the_current_limit(bench) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, load = bench
    psu.set_voltage(5.0)
    psu.set_current_limit(0.3)  # the 10 ohm load wants 0.5 A
    psu.output(True)
    assert psu.output_is_on()
    psu.enable_ocp(True)  # Keysight: trips above the limit; Rigol: its own OCP level, set to the limit
    assert psu.protection_tripped() == "ocp"
    assert not psu.output_is_on()
    psu.clear_protection()
    psu.enable_ocp(False)
    psu.set_current_limit(1.0)
    psu.output(True)
    assert psu.protection_tripped() is None and psu.output_is_on()


def test_values_outside_the_limits_are_refused_before_sending(bench) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, _ = bench
    limits = psu.limits
    before = list(psu.session.transcript)
    assert limits.max_voltage is not None and limits.max_current is not None and limits.max_ovp is not None
    with pytest.raises(ValueError, match=rf"max_voltage {limits.max_voltage:g} V .*{psu.profile.name}"):
        psu.set_voltage(limits.max_voltage + 0.5)
    with pytest.raises(ValueError, match=rf"max_current {limits.max_current:g} A"):
        psu.set_current_limit(limits.max_current * 2)
    with pytest.raises(ValueError, match=rf"max_ovp {limits.max_ovp:g} V"):
        psu.set_ovp(limits.max_ovp + 1)
    with pytest.raises(ValueError, match="minimum 0 V"):
        psu.set_voltage(-1.0)
    with pytest.raises(ValueError, match="finite"):
        psu.set_voltage(math.nan)
    with pytest.raises(ValueError, match="above 0 V"):
        psu.set_ovp(0.0)
    with pytest.raises(ValueError, match="max_voltage"):
        psu.brown_out(limits.max_voltage + 1, 1.0)
    assert list(psu.session.transcript) == before  # nothing went out
    assert virtual.channel(1).set_voltage == 0.0 and not virtual.engine.errors
    with pytest.raises(ValueError, match=r"channels 1\.\.3"):
        PowerSupply(virtual.resource, psu.profile.name, psu.clock, channel=4)


def test_an_instrument_error_names_command_code_and_resource(bench) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, _ = bench
    with pytest.raises(InstrumentError) as err:
        psu.write_checked("VOLT:BOGUS 1")
    e = err.value
    assert (e.code, e.error_message, e.command, e.resource) == (-113, "Undefined header", "VOLT:BOGUS 1",
                                                                virtual.resource)
    assert "'VOLT:BOGUS 1'" in str(e) and "-113" in str(e) and virtual.resource in str(e)
    assert isinstance(e, RuntimeError)
    psu.set_voltage(1.0)  # the queue was emptied: the next command is clean


def test_rigol_channel_3_has_its_own_limits(scheduler: Scheduler) -> None:
    virtual = VirtualPsu("psu_rigol_dp800", scheduler=scheduler)
    virtual.start()
    try:
        with PowerSupply(virtual.resource, "rigol-dp800", scheduler.clock, channel=3) as psu:
            psu.set_voltage(5.0)
            assert psu.voltage_setpoint() == 5.0 and virtual.channel(3).set_voltage == 5.0
            with pytest.raises(ValueError, match="max_voltage 5.3 V"):
                psu.set_voltage(6.0)
            assert sent(psu)[-3:] == [":SOUR3:VOLT 5.0000", ":SYST:ERR?", ":SOUR3:VOLT?"]
    finally:
        virtual.stop()


# -- timed helpers --------------------------------------------------------------------------------


@pytest.fixture
def manual() -> Iterator[tuple[PowerSupply, VirtualPsu, Resistor, ManualClock]]:
    """Keysight virtual supply in process on a ManualClock: the helpers' timing is exact."""
    clock = ManualClock(start=100.0)
    virtual = VirtualPsu("psu_keysight_e36300")
    load = Resistor(50.0)
    virtual.channel(1).attach(load, load.on_voltage)
    psu = PowerSupply("inproc", "keysight-e36300", clock, transport=InProcess(virtual))
    psu.open()
    psu.set_voltage(5.0)
    psu.set_current_limit(0.5)
    psu.output(True)
    yield psu, virtual, load, clock
    psu.close()


def test_power_cycle_and_brown_out_in_exact_rig_time(manual, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    psu, virtual, load, clock = manual
    caplog.set_level(logging.INFO, logger="hil.steps")
    psu.events.clear()
    psu.power_cycle(2.5)
    assert [(e.time, e.action, e.volts) for e in psu.events] == [(100.0, "output off", 0.0), (102.5, "output on", 5.0)]
    psu.brown_out(3.0, 0.25)
    assert [(e.time, e.action, e.volts) for e in psu.events[2:]] == [(102.5, "brown-out", 3.0),
                                                                     (102.75, "brown-out restore", 5.0)]
    assert load.seen == [5.0, 0.0, 5.0, 3.0, 5.0]  # what the DUT saw, in order
    assert psu.voltage_setpoint() == 5.0 and psu.output_is_on()
    messages = [r.getMessage() for r in caplog.records if r.name == "hil.steps"]
    assert "psu: output off at 100.000 rig s" in messages
    assert "psu: output on at 102.500 rig s" in messages
    assert any(re.fullmatch(r"psu: brown-out 3\.000 V at 102\.500 rig s", m) for m in messages)


def test_an_unanswered_query_reports_the_error_queue(manual) -> None:  # type: ignore[no-untyped-def]
    psu, _, _, _ = manual
    with pytest.raises(InstrumentError, match=r"no reply to 'FROB\?'.*error queue: -113,\"Undefined header\"") as err:
        psu.query("FROB?")
    assert (err.value.code, err.value.command) == (-113, "FROB?")
    assert psu.measure_voltage() == 5.0  # the session goes on


def test_power_cycle_over_visa_and_a_cut_in_rig_time(scheduler: Scheduler) -> None:
    virtual, load = start_virtual(scheduler, "psu_keysight_e36300", 50.0)
    clock = scheduler.clock
    try:
        with PowerSupply(virtual.resource, "keysight-e36300", clock) as psu:
            psu.set_voltage(3.3)
            psu.output(True)
            psu.power_cycle(1.0)
            off, on = psu.events[-2:]
            assert (off.action, on.action) == ("output off", "output on")
            assert 1.0 <= on.time - off.time < 1.0 + SLACK_S
            assert load.seen == [3.3, 0.0, 3.3]
            asked = clock.now()
            handle = psu.cut_after(2.0)
            assert handle.wait(2.0 + 20 * SLACK_S)
            assert handle.done and not handle.cancelled
            cut = psu.events[-1]
            assert cut.action == "cut" and cut.time == handle.cut_time
            assert asked + 2.0 <= cut.time < asked + 2.0 + SLACK_S
            assert not psu.output_is_on() and load.seen[-1] == 0.0
            late = psu.cut_at(clock.now() - 10.0)  # a time already past: at once
            assert late.wait(20 * SLACK_S)
        assert cut_threads() == []
    finally:
        virtual.stop()


def test_a_cancelled_cut_does_nothing_and_close_leaves_no_thread(scheduler: Scheduler) -> None:
    virtual, load = start_virtual(scheduler, "psu_rigol_dp800", 50.0)
    try:
        psu = PowerSupply(virtual.resource, "rigol-dp800", scheduler.clock).open()
        psu.set_voltage(5.0)
        psu.output(True)
        first = psu.cut_after(1000.0)
        assert first.alive and len(cut_threads()) == 1
        assert first.cancel() and first.cancelled and not first.alive
        pending = psu.cut_after(1000.0)
        psu.close()  # cancels and joins what is still pending
        assert pending.cancelled and cut_threads() == []
        assert [e.action for e in psu.events].count("cut") == 0
        assert virtual.channel(1).output_on
        with pytest.raises(InstrumentError, match="not open"):
            psu.cut_after(1.0)
    finally:
        virtual.stop()


# -- other dialects -------------------------------------------------------------------------------


def test_generic_dialect_against_the_keysight_virtual_supply(scheduler: Scheduler) -> None:
    virtual, load = start_virtual(scheduler, "psu_keysight_e36300", 10.0)
    try:
        with PowerSupply(virtual.resource, "generic", scheduler.clock) as psu:
            psu.set_voltage(4.0)
            psu.set_current_limit(1.0)
            psu.output(True)
            assert psu.output_is_on() and psu.measure_current() == pytest.approx(0.4)
            assert sent(psu)[-3:] == ["INST:NSEL 1", "SYST:ERR?", "MEAS:CURR?"]  # every operation selects
            assert "VOLT 4" in sent(psu)
            psu.set_ovp(3.0)
            assert psu.protection_tripped() == "ovp"
            with pytest.raises(OperationNotSupported, match="no ocp_on command"):
                psu.enable_ocp(True)
            psu.write_checked("VOLT:PROT 6.6")
            # no client-side limits in the generic profile: the instrument's own check answers
            with pytest.raises(InstrumentError) as err:
                psu.set_voltage(30.0)
            assert err.value.code == -222 and err.value.command == "VOLT 30"
    finally:
        virtual.stop()


class FakeSiglent:
    """Just enough of an SPD3303X: records each write and read with its rig time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.resource = "TCPIP0::192.0.2.7::5025::SOCKET"
        self.log: list[tuple[float, str, str]] = []
        self.volts = {1: 0.0, 2: 0.0}
        self.on = {1: False, 2: False}
        self.errors: deque[str] = deque()
        self._reply: str | None = None

    def write(self, command: str) -> None:
        self.log.append((self.clock.now(), "w", command))
        m = re.fullmatch(r"CH(\d):VOLT (\S+)", command)
        if m:
            self.volts[int(m.group(1))] = float(m.group(2))
        elif (m := re.fullmatch(r"OUTP CH(\d),(ON|OFF)", command)) is not None:
            self.on[int(m.group(1))] = m.group(2) == "ON"
        elif command == "*IDN?":
            self._reply = "Siglent Technologies,SPD3303X,SPD3XIDD4R0001,1.01.01.02.05,V3.0"
        elif command == "SYST:ERR?":
            self._reply = self.errors.popleft() if self.errors else "0  No Error"
        elif (m := re.fullmatch(r"CH(\d):VOLT\?", command)) is not None:
            self._reply = f"{self.volts[int(m.group(1))]:.3f}"
        elif command == "SYST:STAT?":
            self._reply = hex(0x0200 | self.on[1] << 4 | self.on[2] << 5)
        else:
            self.errors.append("-113  Undefined header")

    def read(self) -> str:
        self.log.append((self.clock.now(), "r", self._reply or ""))
        reply, self._reply = self._reply, None
        if reply is None:
            raise TimeoutError("no reply")
        return reply

    def close(self) -> None:
        pass


def test_siglent_pacing_is_waited_on_the_rig_clock() -> None:
    clock = ManualClock()
    fake = FakeSiglent(clock)
    psu = PowerSupply(fake.resource, "siglent-spd3303x", clock, channel=2, transport=fake)
    psu.open()
    assert psu.idn is not None and psu.idn.startswith("Siglent Technologies,SPD3303X")
    fake.log.clear()
    start = clock.now()
    psu.set_voltage(5.0)
    delay = 0.02 + len("CH2:VOLT 5.000") / 6000
    assert fake.log == [(start, "w", "CH2:VOLT 5.000"), (pytest.approx(start + delay), "w", "SYST:ERR?"),
                        (pytest.approx(start + delay + 0.1), "r", "0  No Error")]
    assert psu.voltage_setpoint() == 5.0
    psu.output(True)
    assert psu.output_is_on() and fake.on == {1: False, 2: True}  # bit 5 of SYST:STAT?
    with pytest.raises(InstrumentError) as err:
        psu.write_checked("CH2:FROB")
    assert (err.value.code, err.value.error_message) == (-113, "Undefined header")
    for missing in (lambda: psu.set_ovp(5.0), lambda: psu.enable_ocp(True), psu.protection_tripped):
        with pytest.raises(OperationNotSupported, match=r"siglent-spd3303x .*siglent-spd3303x\.yaml"):
            missing()
    psu.close()


# -- reaching the instrument ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_supply_is_an_instrument_error_naming_it() -> None:
    clock = ScaledClock(TIME_SCALE)
    resource = f"TCPIP0::127.0.0.1::{free_port()}::SOCKET"
    psu = PowerSupply(resource, "keysight-e36300", clock)
    with pytest.raises(InstrumentError, match=re.escape(resource)) as err:
        psu.open()
    assert err.value.resource == resource
    with pytest.raises(InstrumentError, match="not open"):
        psu.set_voltage(1.0)
    with pytest.raises(InstrumentError, match="BOGUS::x"):
        PowerSupply("BOGUS::x", "keysight-e36300", clock).open()


# -- profiles -------------------------------------------------------------------------------------


def test_every_shipped_profile_loads() -> None:
    assert known_dialects("psu") == ["generic", "keysight-ac6800", "keysight-e36300", "rigol-dp800",
                                     "siglent-spd3303x"]
    assert known_dialects("dmm") == ["keysight-34461a", "rigol-dm3058"]
    siglent = load_psu_profile("siglent-spd3303x")
    assert siglent.connection.delay_after_write("x" * 60) == pytest.approx(0.03)
    assert siglent.connection.query_delay_s == 0.1 and len(siglent.channels) == 2
    assert load_psu_profile("generic").commands.select_channel == ["INST:NSEL {channel}"]
    assert load_dmm_profile("rigol-dm3058").range_token(230.0) == "4"


def write_profile(tmp_path: Path, text: str, name: str = "bench-x") -> Path:
    folder = tmp_path / "scpi"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = load_psu_profile("generic").model_dump(mode="json")


@pytest.mark.parametrize("change, message", [
    ({"comands": {}}, r"comands: Extra inputs are not permitted"),
    ({"commands": {**GOOD["commands"], "set_voltage": "VOLT 5"}}, r"commands: .*set_voltage: no command carries"),
    ({"commands": {**GOOD["commands"], "get_voltage": "VOLT"}}, r"commands\.get_voltage: .*not a query"),
    ({"commands": {**GOOD["commands"], "output_on": "OUTP {state}"}}, r"commands\.output_on: .*unknown field \{state\}"),
    ({"commands": {**GOOD["commands"], "output_on": "OUTP {value}"}}, r"commands: output_on: takes no \{value\}"),
    ({"channels": [{"max_voltage": -1}]}, r"channels\[0\]\.max_voltage: .*greater than 0"),
    ({"errors": {"pattern": "(?P<code>x)"}}, r"errors\.pattern: .*named groups"),
    ({"kind": "dmm"}, r"kind: expected 'psu', got 'dmm'"),
    ({"name": "other"}, r"name: expected 'bench-x'"),
])
def test_a_bad_profile_names_file_and_key(tmp_path: Path, change: dict, message: str) -> None:  # type: ignore[type-arg]
    import yaml

    path = write_profile(tmp_path, yaml.safe_dump({**GOOD, "name": "bench-x", **change}))
    with pytest.raises(ProfileError, match=message) as err:
        load_psu_profile("bench-x", tmp_path)
    assert str(err.value).startswith(str(path))


def test_an_unknown_dialect_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"no psu profile 'keysight-e99'.*'rigol-dp800'"):
        PowerSupply("x", "keysight-e99", ManualClock())
    write_profile(tmp_path, "name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"bench-x\.yaml: not valid YAML"):
        load_psu_profile("bench-x", tmp_path)
