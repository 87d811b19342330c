"""The virtual DMM reading the relay output, through the real pyvisa + pyvisa-py socket path."""

from __future__ import annotations

from typing import Iterator

import pytest
import pyvisa

from hil.clock import ManualClock
from hil.sim.instruments.dmm import DmmProfile, VirtualDmm
from hil.sim.instruments.scpi import load_profile
from hil.sim.mains import RelayContact
from hil.sim.scheduler import Scheduler

VISA_TIMEOUT_MS = 2000
OVERLOAD = "+9.90000000E+37"


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")  # open resources by name: listing them broadcasts on the LAN
    yield manager
    manager.close()


@pytest.fixture
def rig(rm: pyvisa.ResourceManager):  # type: ignore[no-untyped-def]
    """A relay contact on a manual clock, a DMM across its output, and a pyvisa session to the DMM."""
    scheduler = Scheduler(ManualClock())
    contact = RelayContact(scheduler)
    dmm = VirtualDmm(contact.output_voltage_rms, serial="MY99000001")
    dmm.start()
    inst = rm.open_resource(dmm.resource, read_termination="\n", write_termination="\n")
    inst.timeout = VISA_TIMEOUT_MS
    yield scheduler, contact, dmm, inst
    inst.close()
    dmm.stop()
    assert dmm.server.threads() == []


def test_identity(rig) -> None:  # type: ignore[no-untyped-def]
    _, _, _, inst = rig
    assert inst.query("*IDN?") == "Keysight Technologies,34461A,MY99000001,A.03.01-02.40-03.01-00.52-03-02"


def test_reads_mains_after_the_contact_closes_and_zero_after_it_opens(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, _, inst = rig
    inst.write("CONF:VOLT:AC AUTO")
    inst.write("VOLT:AC:BAND 20")
    assert float(inst.query("READ?")) == 0.0
    contact.drive_coil(True)
    assert inst.query("READ?") == "+0.00000000E+00"  # operate time not over yet
    scheduler.run_for(0.1)
    assert inst.query("READ?") == "+2.30000000E+02"
    assert inst.query("MEAS:VOLT:AC?") == "+2.30000000E+02"
    contact.drive_coil(False)
    scheduler.run_for(0.1)
    assert inst.query("MEAS:VOLT:AC? AUTO") == "+0.00000000E+00"
    contact.drive_coil(True)
    scheduler.run_for(0.1)
    contact.mains_present = False  # mains gone: nothing at the output though the contact is closed
    assert inst.query("READ?") == "+0.00000000E+00"


def test_init_fetch_sample_count_and_configuration(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, _, inst = rig
    contact.drive_coil(True)
    scheduler.run_for(0.1)
    inst.write("CONF:VOLT:AC 750")
    inst.write("SAMP:COUN 3")
    inst.write("INIT")
    assert inst.query("FETC?") == ",".join(["+2.30000000E+02"] * 3)
    assert inst.query("SAMP:COUN?") == "+3"
    assert inst.query("CONF?") == '"VOLT:AC +7.50000000E+02,+7.50000000E-04"'
    assert inst.query("VOLT:AC:BAND?") == "+2.00000000E+01"
    inst.write("VOLT:AC:BAND 200")
    assert inst.query("VOLT:AC:BAND?") == "+2.00000000E+02"
    inst.write("VOLT:AC:BAND 50")  # picks the filter for the band: 20 Hz
    assert inst.query("VOLT:AC:BAND?") == "+2.00000000E+01"
    assert inst.query("FUNC?") == '"VOLT:AC"'


def test_overload_above_the_range(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, _, inst = rig
    contact.drive_coil(True)
    scheduler.run_for(0.1)
    assert inst.query("MEAS:VOLT:AC? 100") == OVERLOAD  # 230 V on the 100 V range (120 V max)
    assert inst.query("MEAS:VOLT:AC? 10") == OVERLOAD
    inst.write("CONF:VOLT:AC 100")
    assert inst.query("READ?") == OVERLOAD
    inst.write("VOLT:AC:RANG:AUTO ON")
    assert inst.query("READ?;VOLT:AC:RANG?") == "+2.30000000E+02;+7.50000000E+02"


def test_overload_in_autorange_beyond_the_top_range(rm: pyvisa.ResourceManager) -> None:
    volts = [800.0]
    with VirtualDmm(lambda: volts[0]) as dmm:
        inst = rm.open_resource(dmm.resource, read_termination="\n", write_termination="\n")
        inst.timeout = VISA_TIMEOUT_MS
        try:
            assert inst.query("MEAS:VOLT:AC?") == OVERLOAD  # 750 V AC is the top (no over-range)
            volts[0] = -0.05
            assert inst.query("MEAS:VOLT:DC?") == "+0.00000000E+00"  # DC of mains: 0 by default
            assert inst.query("MEAS:VOLT:AC?") == "-5.00000000E-02"
        finally:
            inst.close()


def test_dc_and_errors(rig) -> None:  # type: ignore[no-untyped-def]
    _, _, dmm, inst = rig
    assert inst.query("MEAS:VOLT:DC?") == "+0.00000000E+00"
    inst.write("CONF:VOLT:AC 1000")  # above the 750 V top range
    assert inst.query("SYST:ERR?") == '-222,"Data out of range"'
    inst.write("*RST")
    inst.write("FETC?")  # nothing measured since *RST: no reply, an error instead
    assert inst.query("SYST:ERR?") == '-230,"Data corrupt or stale"'
    inst.write("VOLT:AC:BANDWIDTH 1")
    inst.write("CONF:VOLTS:AC")
    inst.write('FUNC "RES"')
    assert [inst.query("SYST:ERR?") for _ in range(4)] == [
        '-222,"Data out of range"', '-113,"Undefined header"', '-224,"Illegal parameter value"', '+0,"No error"']
    assert dmm.function == "VOLT:DC"


def test_profile_validation() -> None:
    profile = load_profile("dmm_keysight_34461a", DmmProfile)
    assert profile.functions["VOLT:AC"].ranges[-1] == 750.0
    data = profile.model_dump()
    data["functions"]["VOLT:AC"]["ranges"] = [750.0, 1.0]
    with pytest.raises(Exception, match="ascending"):
        DmmProfile.model_validate(data)
