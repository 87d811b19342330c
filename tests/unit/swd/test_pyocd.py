"""The real pyocd on the simulated probe: session open (attach), discovery, memory access, halt,
reset, checked against the simulator's backing store."""

from __future__ import annotations

from typing import Iterator

import pytest
from pyocd.core import exceptions
from pyocd.core.helpers import ConnectHelper
from pyocd.core.session import Session
from pyocd.core.target import Target

from hil.sim.swd import DebugUnit
from hil.sim.swd.core import NullHost


@pytest.fixture
def session(unit: DebugUnit) -> Iterator[Session]:
    s = ConnectHelper.session_with_chosen_probe(unique_id=unit.probe_uid, target_override=unit.target,
                                                connect_mode="attach", blocking=False, return_first=True,
                                                options={"no_config": True})
    assert s is not None
    s.open()
    yield s
    s.close()


def test_open_attaches_without_halting(session: Session, unit: DebugUnit, host: NullHost) -> None:
    target = session.target
    assert type(target).__name__ == "HilRelayNode" and target.selected_core.name == "Cortex-M4"
    assert session.probe.unique_id == unit.name and "simulated SWD probe" in session.probe.description
    assert target.get_state() == Target.State.RUNNING
    assert host.calls == []  # attach: the DUT was neither halted nor reset
    assert target.read32(0xE000ED00) == 0x410FC241


def test_block_memory_access_lands_in_the_backing_store(session: Session, unit: DebugUnit) -> None:
    target = session.target
    data = bytes((i * 13 + 5) & 0xFF for i in range(12 * 1024 + 3))
    target.write_memory_block8(0x20000001, data)  # unaligned, across 1 KiB and 4 KiB boundaries
    assert unit.memory.read(0x20000001, len(data)) == data
    assert bytes(target.read_memory_block8(0x20000001, len(data))) == data
    target.write_memory_block8(0x08080080, b"\x2a\x00\x00\x00")  # the data EEPROM: NVM at once
    assert unit.memory.nvm.read_committed(0x80, 4) == b"\x2a\x00\x00\x00"
    assert target.read16(0x08080080) == 42 and target.read8(0x08080080) == 42
    assert bytes(target.read_memory_block8(0x1FFF7590, 12)) == unit.unique_id
    with pytest.raises(exceptions.TransferFaultError):
        target.read32(0x30000000)
    assert target.read32(0x20000000) == int.from_bytes(b"\x00" + data[:3], "little")  # recovered


def test_halt_resume_reset_and_core_registers(session: Session, unit: DebugUnit, host: NullHost) -> None:
    target = session.target
    target.halt()
    assert target.get_state() == Target.State.HALTED
    target.write_core_register("r0", 0x12345678)
    assert target.read_core_register("r0") == 0x12345678
    target.resume()
    assert target.get_state() == Target.State.RUNNING
    target.reset_and_halt()
    sp, pc = (int.from_bytes(unit.memory.read(0x08000000 + offset, 4), "little") for offset in (0, 4))
    assert target.get_state() == Target.State.HALTED
    assert (target.read_core_register("sp"), target.read_core_register("pc")) == (sp, pc & ~1)
    target.reset(Target.ResetType.HARDWARE)
    assert target.get_state() == Target.State.RUNNING
    assert host.calls == ["halt", "resume", "halt", "reset_halt", "reset"]


def test_a_second_session_finds_the_probe_busy(session: Session, unit: DebugUnit) -> None:
    other = ConnectHelper.session_with_chosen_probe(unique_id=unit.probe_uid, target_override=unit.target,
                                                    connect_mode="attach", blocking=False, return_first=True,
                                                    options={"no_config": True})
    with pytest.raises(exceptions.ProbeError, match="busy"):
        other.open()
    other.close()
    assert session.target.read32(0xE000ED00) == 0x410FC241  # the first session is untouched
