"""drivers.swd.SwdProbe on the simulated probe: NVM fields, unique ID, NVM erase, reset/halt, and
the rig faults of a missing, busy or unpowered probe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drivers.swd import FieldError, SwdError, SwdProbe
from hil.clock import Deadline
from hil.faults import RigFault
from hil.lorawan.types import EUI64
from hil.sim.scheduler import Scheduler
from hil.sim.swd import DebugUnit
from hil.sim.swd.core import NullHost
from tests.unit.swd.conftest import LAYOUT


def test_fields_read_and_write_through_the_backing_store(probe: SwdProbe, unit: DebugUnit) -> None:
    nvm = unit.memory.nvm
    probe.write_field("dev_nonce", 0x01020304)
    probe.write_field("layout_version", 7)
    probe.write_field("data_rate", 5)
    probe.write_field("dev_eui", "70b3d57ed0000042")
    probe.write_field("app_key", bytes(range(16)))
    assert nvm.read_committed(0x80, 4) == bytes([4, 3, 2, 1])
    assert nvm.read_committed(0x04, 2) == b"\x07\x00" and nvm.read_committed(0x0B, 1) == b"\x05"
    assert nvm.read_committed(0x10, 8) == EUI64.parse("70b3d57ed0000042").wire  # LoRaWAN wire order
    assert probe.read_field("dev_nonce") == 0x01020304 and probe.read_field("layout_version") == 7
    eui = probe.read_field("dev_eui")
    assert isinstance(eui, EUI64) and str(eui) == "70b3d57ed0000042"
    assert probe.read_field("app_key") == bytes(range(16))
    nvm.poke(0x80, (77).to_bytes(4, "little"))  # the firmware wrote it
    assert probe.read_field("dev_nonce") == 77


def test_bad_field_names_and_values_are_clear(probe: SwdProbe) -> None:
    with pytest.raises(FieldError, match=r"no NVM field 'devnonce' .*known: app_key, data_rate, dev_eui, dev_nonce"):
        probe.read_field("devnonce")
    with pytest.raises(ValueError, match=r"dev_nonce \(u32le at 0x08080080\): 4294967296 does not fit"):
        probe.write_field("dev_nonce", 1 << 32)
    with pytest.raises(ValueError, match=r"data_rate \(u8 .*\) takes an int, not str"):
        probe.write_field("data_rate", "5")
    with pytest.raises(ValueError, match=r"app_key \(bytes .*\) is 16 bytes, got 3"):
        probe.write_field("app_key", b"abc")
    with pytest.raises(ValueError, match="dev_eui .* not an EUI-64"):
        probe.write_field("dev_eui", "nope")
    with pytest.raises(ValueError, match="address must be"):
        probe.read_memory(-1, 4)


def test_unique_id_erase_nvm_reset_halt(probe: SwdProbe, unit: DebugUnit, host: NullHost) -> None:
    assert probe.unique_id() == unit.unique_id and len(unit.unique_id) == 12
    unit.set_unique_id(bytes(range(12)))  # the next unit on the production line
    assert probe.unique_id() == bytes(range(12))
    probe.write_field("dev_nonce", 9)
    assert probe.erase_nvm() == (0x08080000, 2048)
    assert unit.memory.nvm.read_committed() == bytes(2048) and host.calls[-2:] == ["halt", "reset"]
    probe.halt()
    assert probe.is_halted() and host.calls[-1] == "halt"
    probe.resume()
    assert not probe.is_halted() and host.calls[-1] == "resume"
    probe.reset("hardware", halt=True)
    assert probe.is_halted() and host.calls[-1] == "reset_halt"
    probe.reset("sysresetreq")
    assert not probe.is_halted() and host.calls[-1] == "reset"
    with pytest.raises(ValueError, match="reset kind must be one of hardware, sysresetreq"):
        probe.reset("cold")  # type: ignore[arg-type]
    assert probe.info() == {"probe": f"HIL virtual rig simulated SWD probe ({unit.probe_uid})",
                            "target": "hil_relay_node", "core": "Cortex-M4", "state": "running"}


def test_missing_busy_and_unpowered_probes_are_rig_faults(probe: SwdProbe, unit: DebugUnit,
                                                         scheduler: Scheduler) -> None:
    clock = scheduler.clock
    with pytest.raises(RigFault, match=r"SWD probe hilsim:nope not found.*probes seen: .*" + unit.name):
        SwdProbe("hilsim:nope", unit.target, clock).open()
    with pytest.raises(RigFault, match=f"SWD probe {unit.probe_uid} is busy.*in use by"):
        SwdProbe(unit.probe_uid, unit.target, clock).open()  # the fixture's probe holds it
    probe.close()
    with pytest.raises(RigFault, match="does not know target type 'stm32zz99'"):
        SwdProbe(unit.probe_uid, "stm32zz99", clock).open()
    unit.on_vdd(0.0)
    with pytest.raises(SwdError, match="does not answer on SWD.*not powered"):
        SwdProbe(unit.probe_uid, unit.target, clock).open(Deadline.after(clock, 0.5))
    assert unit.owner is None  # every failed attempt let the probe go


def test_a_power_cycle_between_accesses_is_reconnected(probe: SwdProbe, unit: DebugUnit) -> None:
    probe.write_field("dev_nonce", 5)
    unit.on_vdd(0.0)  # the supply is switched off after a test...
    unit.on_vdd(3.3)  # ...and on again for the next: the debug port forgot everything
    assert unit.dap.ctrl_stat == 0
    assert probe.read_field("dev_nonce") == 5
    unit.on_vdd(0.0)
    with pytest.raises(SwdError, match=r"read 4 bytes at 0x08080080 failed|does not answer"):
        probe.read_field("dev_nonce")


def test_opening_the_layout_without_fields_and_import_cost(unit: DebugUnit, scheduler: Scheduler) -> None:
    with SwdProbe(unit.probe_uid, unit.target, scheduler.clock) as bare:
        with pytest.raises(FieldError, match="none: the rig file's dut.swd has no nvm_layout"):
            bare.read_field("dev_nonce")
    assert set(LAYOUT) >= {"dev_nonce", "dev_eui"}
    code = "import sys, drivers.swd, hil.sim.swd.server; print('pyocd' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"  # neither the driver nor the simulated probe's server imports pyocd up front
