"""The virtual bench supply through the real pyvisa + pyvisa-py socket path (both dialects)."""

from __future__ import annotations

import threading
from typing import Any, Iterator

import pytest
import pyvisa

from hil.sim.instruments.psu import PsuProfile, VirtualPsu
from hil.sim.instruments.scpi import ProfileError, load_profile
from hil.sim.power import SupplyChannel
from hil.sim.scheduler import Scheduler

VISA_TIMEOUT_MS = 2000


class Resistor:
    """A test load: a plain resistance (its value may change, as a DUT's draw does)."""

    def __init__(self, ohms: float) -> None:
        self.ohms = ohms
        self.seen: list[float] = []

    def current_at(self, volts: float) -> float:
        return volts / self.ohms

    def on_voltage(self, volts: float) -> None:
        self.seen.append(volts)


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")  # open resources by name: listing them broadcasts on the LAN
    yield manager
    manager.close()


def sync(inst) -> None:  # type: ignore[no-untyped-def]
    """Wait until the supply has run everything written so far (writes do not wait; a query does)."""
    assert inst.query("*OPC?") == "1"


def open_psu(rm: pyvisa.ResourceManager, psu: VirtualPsu):  # type: ignore[no-untyped-def]
    res = rm.open_resource(psu.resource, read_termination="\n", write_termination="\n")
    res.timeout = VISA_TIMEOUT_MS
    return res


@pytest.fixture
def keysight(rm: pyvisa.ResourceManager):  # type: ignore[no-untyped-def]
    psu = VirtualPsu("psu_keysight_e36300", serial="MY60000042")
    load = Resistor(50.0)
    psu.channel(1).attach(load, load.on_voltage)
    psu.start()
    inst = open_psu(rm, psu)
    yield psu, inst, load
    inst.close()
    psu.stop()
    assert psu.server.threads() == []


@pytest.fixture
def rigol(rm: pyvisa.ResourceManager):  # type: ignore[no-untyped-def]
    psu = VirtualPsu("psu_rigol_dp800")
    load = Resistor(10.0)
    psu.channel("CH1").attach(load, load.on_voltage)
    psu.start()
    inst = open_psu(rm, psu)
    yield psu, inst, load
    inst.close()
    psu.stop()
    assert psu.server.threads() == []


def test_keysight_identity_and_channel_limits(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, _ = keysight
    assert inst.query("*IDN?") == "Keysight Technologies,E36313A,MY60000042,2.1.0-1.0.4-1.12"
    assert [(c.name, c.max_voltage, c.max_current) for c in psu.channels] == [
        ("CH1", 6.0, 5.0), ("CH2", 25.0, 1.0), ("CH3", 25.0, 1.0)]
    inst.write("VOLT MAX,(@1:3)")
    assert inst.query("VOLT? (@1,2,3)") == "+6.00000000E+00,+2.50000000E+01,+2.50000000E+01"
    inst.write("SYST:REM")
    sync(inst)
    assert psu.engine.remote


def test_keysight_output_on_feeds_the_load_and_meas_reads_it(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("VOLT 5,(@1)")
    inst.write("CURR 0.5,(@1)")
    sync(inst)
    assert load.seen == []  # output still off
    inst.write("OUTP 1,(@1)")
    sync(inst)
    assert load.seen == [5.0]
    assert inst.query("OUTP? (@1)") == "1"
    assert inst.query("MEAS:VOLT? (@1)") == "+5.00000000E+00"
    assert inst.query("MEAS:CURR? (@1)") == "+1.00000000E-01"  # 5 V / 50 ohm
    inst.write("OUTP OFF,(@1)")
    sync(inst)
    assert load.seen == [5.0, 0.0]
    assert inst.query("MEAS:CURR? (@1)") == "+0.00000000E+00"


def test_keysight_selected_channel_commands(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("INST:NSEL 1")
    inst.write("VOLT 3.3;CURR 1")
    inst.write("OUTP ON")
    sync(inst)
    assert psu.channel(1).terminal_voltage() == pytest.approx(3.3)
    inst.write("INST CH2")
    assert inst.query("INST?;INST:NSEL?") == "CH2;2"
    inst.write("VOLT 12")
    assert inst.query("VOLT?") == "+1.20000000E+01"
    sync(inst)
    assert psu.channel(2).set_voltage == 12.0 and psu.channel(1).set_voltage == 3.3


def test_keysight_current_limit_below_demand_is_cc_mode(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("VOLT 5,(@1);CURR 0.05,(@1);OUTP ON,(@1)")  # the load wants 100 mA
    assert inst.query("MEAS:VOLT? (@1)") == "+2.50000000E+00"
    assert inst.query("MEAS:CURR? (@1)") == "+5.00000000E-02"
    sync(inst)
    assert load.seen[-1] == pytest.approx(2.5)  # the DUT sees the brown-out


def test_keysight_ocp_trips_clears_and_restores(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("VOLT 5,(@1);CURR 0.05,(@1);CURR:PROT:STAT 1,(@1)")
    inst.write("OUTP ON,(@1)")
    assert inst.query("OUTP? (@1);CURR:PROT:TRIP? (@1);VOLT:PROT:TRIP? (@1)") == "0;1;0"
    assert inst.query("CURR:PROT:STAT? (@1)") == "1"
    inst.write("OUTP:PROT:CLE (@1)")  # cause still there: it trips again at once
    assert inst.query("OUTP? (@1);CURR:PROT:TRIP? (@1)") == "0;1"
    inst.write("CURR 0.2,(@1)")
    inst.write("OUTP:PROT:CLE (@1)")
    assert inst.query("OUTP? (@1);CURR:PROT:TRIP? (@1)") == "1;0"
    assert inst.query("MEAS:CURR? (@1)") == "+1.00000000E-01"


def test_keysight_ovp_trips(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("VOLT:PROT 4,(@1)")
    assert inst.query("VOLT:PROT? (@1)") == "+4.00000000E+00"
    inst.write("VOLT 5,(@1);OUTP ON,(@1)")
    assert inst.query("OUTP? (@1);VOLT:PROT:TRIP? (@1)") == "0;1"
    assert psu.channel(1).tripped
    assert load.seen == []  # the trip happened before the DUT ever saw 5 V
    inst.write("VOLT 3.3,(@1);OUTP ON,(@1)")  # switching on again clears the latch
    assert inst.query("OUTP? (@1);VOLT:PROT:TRIP? (@1)") == "1;0"


def test_keysight_errors_and_the_server_keeps_serving(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, _ = keysight
    inst.write("FROB 1")
    assert inst.query("SYST:ERR?") == '-113,"Undefined header"'
    inst.write("VOLT 7,(@1)")  # CH1 is a 6 V output
    inst.write("CURR 2,(@2)")  # CH2 is a 1 A output
    inst.write("VOLT 1,(@4)")  # no channel 4
    inst.write("VOLT -1,(@2)")
    assert [inst.query("SYST:ERR?") for _ in range(5)] == ['-222,"Data out of range"'] * 4 + ['+0,"No error"']
    assert psu.channel(1).set_voltage == 0.0 and psu.channel(2).current_limit == 1.0
    inst.write("VOLT")
    assert inst.query("SYST:ERR?") == '-109,"Missing parameter"'
    assert inst.query("*OPC?") == "1"


def test_keysight_rst_restores_the_power_on_state(keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = keysight
    inst.write("VOLT 5,(@1);OUTP ON,(@1);INST CH3")
    inst.write("*RST")
    assert inst.query("OUTP? (@1,2,3);VOLT? (@1);INST:NSEL?") == "0,0,0;+0.00000000E+00;1"
    assert load.seen[-1] == 0.0


def test_two_clients_share_the_instrument(rm: pyvisa.ResourceManager, keysight) -> None:  # type: ignore[no-untyped-def]
    psu, inst, _ = keysight
    other = open_psu(rm, psu)
    try:
        other.write("VOLT 2.5,(@1)")
        sync(other)
        assert inst.query("VOLT? (@1)") == "+2.50000000E+00"
        assert psu.server.client_count == 2
    finally:
        other.close()


def test_rigol_dialect(rigol) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = rigol
    assert inst.query("*IDN?").startswith("RIGOL TECHNOLOGIES,DP832,DP8C")
    inst.write(":INST:NSEL 1")
    inst.write(":SOUR:VOLT 5")
    inst.write(":SOUR:CURR 1")
    assert inst.query(":APPL? CH1") == "CH1:30V/3A,5.000,1.000"
    inst.write(":OUTP CH1,ON")
    assert inst.query(":OUTP? CH1") == "ON"
    assert load.seen == [5.0]
    assert inst.query(":MEAS:VOLT? CH1") == "5.0000"
    assert inst.query(":MEAS:CURR? CH1") == "0.5000"
    inst.write(":APPL CH2,12,0.5")
    assert inst.query(":APPL? CH2") == "CH2:30V/3A,12.000,0.500"
    assert inst.query(":SOUR2:VOLT?") == "12.000"
    inst.write(":OUTP CH2,ON")
    sync(inst)
    assert psu.channel(2).terminal_voltage() == 12.0
    inst.write(":APPL CH3,6")  # CH3 is a 5 V output
    assert inst.query("SYST:ERR?") == '-222,"Data out of range"'
    assert inst.query("SYST:ERR?") == '0,"No error"'
    inst.write(":OUTP CH4,ON")
    assert inst.query("SYST:ERR?") == '-224,"Illegal parameter value"'


def test_rigol_cc_mode_and_ocp_at_its_own_level(rigol) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = rigol
    inst.write(":APPL CH1,5,0.3")  # the 10 ohm load wants 0.5 A
    inst.write(":OUTP:OCP:VAL CH1,0.4")
    inst.write(":OUTP:OCP CH1,ON")
    inst.write(":OUTP CH1,ON")
    assert inst.query(":MEAS:VOLT? CH1") == "3.0000"  # CC at 0.3 A: below the OCP level, no trip
    assert inst.query(":OUTP:OCP:QUES? CH1") == "NO"
    inst.write(":SOUR1:CURR 1")  # now 0.5 A flows: above the 0.4 A OCP level
    assert inst.query(":OUTP:OCP:QUES? CH1;:OUTP? CH1") == "YES;OFF"
    inst.write(":OUTP:OCP:CLEAR CH1")  # Rigol: clearing does not switch the output back on
    assert inst.query(":OUTP:OCP:QUES? CH1;:OUTP? CH1") == "NO;OFF"
    inst.write(":OUTP:OCP:VAL CH1,1;:OUTP CH1,ON")
    assert inst.query(":MEAS:CURR? CH1") == "0.5000"
    assert inst.query(":OUTP:OCP:VAL? CH1;:OUTP:OCP? CH1") == "1.000;ON"


def test_rigol_ovp(rigol) -> None:  # type: ignore[no-untyped-def]
    psu, inst, load = rigol
    inst.write(":OUTP:OVP:VAL CH1,4")
    inst.write(":APPL CH1,5,1;:OUTP CH1,ON")
    assert inst.query(":OUTP:OVP:QUES? CH1") == "NO"  # the level is set but OVP is not armed
    assert inst.query(":OUTP:OVP? CH1") == "OFF"
    inst.write(":OUTP:OVP CH1,ON")
    assert inst.query(":OUTP:OVP:QUES? CH1;:OUTP? CH1") == "YES;OFF"
    inst.write(":OUTP:OVP:CLEAR CH1")
    assert inst.query(":OUTP:OVP:QUES? CH1") == "NO"


def test_commands_run_on_the_scheduler_thread_when_it_runs(rm: pyvisa.ResourceManager, compressed_clock: Any) -> None:
    scheduler = Scheduler(compressed_clock(100), name="psu-sched")
    threads: list[str] = []

    class Dut(Resistor):
        def on_voltage(self, volts: float) -> None:
            threads.append(threading.current_thread().name)

    dut = Dut(100.0)
    rail = SupplyChannel("CH1", 6.0, 5.0)
    rail.attach(dut, dut.on_voltage)
    psu = VirtualPsu("psu_keysight_e36300", channels=[rail, SupplyChannel("CH2"), SupplyChannel("CH3")],
                     scheduler=scheduler)
    scheduler.start()
    psu.start()
    inst = open_psu(rm, psu)
    try:
        inst.write("VOLT 5,(@1);OUTP ON,(@1)")
        assert inst.query("MEAS:CURR? (@1)") == "+5.00000000E-02"
        assert threads == ["psu-sched"]  # the DUT model is called on the rig's one thread
    finally:
        inst.close()
        psu.stop()
        scheduler.stop()


def test_profiles_are_validated() -> None:
    profile = load_profile("psu_rigol_dp800", PsuProfile)
    assert [c.rating for c in profile.channels] == ["30V/3A", "30V/3A", "5V/3A"]
    data = profile.model_dump()
    data["channels"][0]["reset_current"] = 9.0
    with pytest.raises(Exception, match="reset values outside"):
        PsuProfile.model_validate(data)
    with pytest.raises(ProfileError, match="3 channels, 1 SupplyChannel"):
        VirtualPsu("psu_rigol_dp800", channels=[SupplyChannel()])
