"""The Cortex-M debug registers, ROM table and flash-algorithm entry points of the virtual MCU,
through the bus (as the AHB-AP reaches them)."""

from __future__ import annotations

import struct

from hil.sim.swd import DebugUnit
from hil.sim.swd.core import (
    AIRCR,
    C_DEBUGEN,
    C_HALT,
    CPUID,
    DCRDR,
    DCRSR,
    DEMCR,
    DFSR,
    DHCSR,
    S_HALT,
    S_REGRDY,
    S_RESET_ST,
    S_RETIRE_ST,
    NullHost,
)
from hil.sim.swd.flash_algo import flash_algo

KEY = 0xA05F << 16


def word(unit: DebugUnit, address: int) -> int:
    return int.from_bytes(unit.bus.read(address, 4), "little")


def put(unit: DebugUnit, address: int, value: int) -> None:
    unit.bus.write(address, value.to_bytes(4, "little"))


def set_reg(unit: DebugUnit, number: int, value: int) -> None:
    put(unit, DCRDR, value)
    put(unit, DCRSR, 0x10000 | number)


def get_reg(unit: DebugUnit, number: int) -> int:
    put(unit, DCRSR, number)
    return word(unit, DCRDR)


def test_ids_and_rom_table(unit: DebugUnit) -> None:
    assert word(unit, CPUID) == 0x410FC241
    assert word(unit, 0xE00FF000) == 0xFFF0F003 and word(unit, 0xE00FF004) == 0  # SCS, then the end
    assert [word(unit, 0xE00FFFF0 + 4 * i) for i in range(4)] == [0x0D, 0x10, 0x05, 0xB1]  # class 1: ROM table
    assert [word(unit, 0xE00FFFE0 + 4 * i) for i in range(3)] == [0xC4, 0xB4, 0x0B]  # ARM part 0x4C4
    assert word(unit, 0xE000EFF4) == 0xE0 and word(unit, 0xE000EFE0) == 0x0C  # SCS: class 0xE, part 0x00C
    put(unit, 0xE000ED08, 0x08000000)  # VTOR: plain PPB storage
    assert word(unit, 0xE000ED08) == 0x08000000


def test_dhcsr_halt_resume_and_sticky_bits(unit: DebugUnit, host: NullHost) -> None:
    first = word(unit, DHCSR)
    assert first & S_RESET_ST and first & S_REGRDY and not first & S_HALT  # out of power-on reset, running
    assert not word(unit, DHCSR) & S_RESET_ST  # cleared by the read
    put(unit, DHCSR, C_DEBUGEN | C_HALT)  # no key: ignored
    assert not word(unit, DHCSR) & S_HALT and host.calls == []
    put(unit, DHCSR, KEY | C_DEBUGEN | C_HALT)
    halted = word(unit, DHCSR)
    assert halted & S_HALT and not word(unit, DHCSR) & S_RETIRE_ST and word(unit, DFSR) & 1
    put(unit, DHCSR, KEY | C_DEBUGEN)
    assert word(unit, DHCSR) & S_RETIRE_ST and not word(unit, DHCSR) & S_HALT
    assert host.calls == ["halt", "resume"]


def test_sysresetreq_reloads_sp_and_pc_and_vector_catch_halts(unit: DebugUnit, host: NullHost) -> None:
    sp, pc = struct.unpack("<II", unit.memory.read(0x08000000, 8))
    put(unit, AIRCR, 0x1234_0004)  # wrong VECTKEY: nothing
    assert host.calls == []
    put(unit, AIRCR, 0x05FA_0004)
    assert host.calls == ["reset"] and word(unit, DHCSR) & S_RESET_ST
    put(unit, DHCSR, KEY | C_DEBUGEN)
    put(unit, DEMCR, 1)  # VC_CORERESET
    put(unit, AIRCR, 0x05FA_0004)
    assert host.calls == ["reset", "reset_halt"] and word(unit, DHCSR) & S_HALT and word(unit, DFSR) & 0x8
    assert (get_reg(unit, 13), get_reg(unit, 15)) == (sp, pc & ~1)


def test_resuming_at_a_flash_algorithm_entry_runs_it_and_halts_again(unit: DebugUnit, host: NullHost) -> None:
    algo = flash_algo()
    unit.bus.write(algo["load_address"], b"".join(w.to_bytes(4, "little") for w in algo["instructions"]))
    put(unit, DHCSR, KEY | C_DEBUGEN | C_HALT)
    page = bytes(range(128))
    unit.bus.write(algo["page_buffers"][0], page)
    lr = algo["load_address"] + 1
    for pc, args in ((algo["pc_erase_sector"], (0x08000080,)), (algo["pc_program_page"], (0x08000080, 128,
                                                                                          algo["page_buffers"][0]))):
        for i, value in enumerate(args):
            set_reg(unit, i, value)
        set_reg(unit, 14, lr)
        set_reg(unit, 15, pc)
        put(unit, DHCSR, KEY | C_DEBUGEN)  # resume: the routine runs, the core halts on the BKPT
        assert word(unit, DHCSR) & S_HALT
        assert get_reg(unit, 0) == 0 and get_reg(unit, 15) == algo["load_address"]
    assert unit.memory.read(0x08000080, 128) == page
    assert unit.flash.log.erased == [0x08000080] and unit.flash.log.programmed == [(0x08000080, 128)]
    set_reg(unit, 0, 0x08000080)
    set_reg(unit, 1, 128)
    set_reg(unit, 2, algo["page_buffers"][0])
    unit.bus.write(algo["page_buffers"][0], bytes([0xFF]) * 128)  # setting bits without an erase: NOR says no
    set_reg(unit, 15, algo["pc_program_page"])
    put(unit, DHCSR, KEY | C_DEBUGEN)
    assert get_reg(unit, 0) == 1 and unit.memory.read(0x08000080, 128) == page
    assert host.calls == ["halt"]  # the firmware never ran meanwhile
    set_reg(unit, 15, 0x08000100)  # anywhere else: the firmware runs again
    put(unit, DHCSR, KEY | C_DEBUGEN)
    assert host.calls == ["halt", "resume"] and not word(unit, DHCSR) & S_HALT
