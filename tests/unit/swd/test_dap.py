"""The SW-DP and AHB-AP model at the register level (what a probe sends), checked against the
simulator's backing store."""

from __future__ import annotations

import pytest

from hil.sim.swd import DebugUnit
from hil.sim.swd.dap import (
    AP_BASE,
    AP_CFG,
    AP_CSW,
    AP_DRW,
    AP_IDR,
    AP_TAR,
    CDBGPWRUPACK,
    CDBGPWRUPREQ,
    CSYSPWRUPACK,
    CSYSPWRUPREQ,
    STICKYERR,
    STKERRCLR,
    DapFault,
    NoAck,
)

SRAM = 0x20000000
CSW_32_INC, CSW_16_INC, CSW_8_INC = 0x23000052, 0x23000051, 0x23000050


def power_up(unit: DebugUnit) -> None:
    unit.dap.write_dp(0x4, CDBGPWRUPREQ | CSYSPWRUPREQ)


def test_identity_and_power_up_handshake(unit: DebugUnit) -> None:
    dap = unit.dap
    assert dap.read_dp(0x0) == 0x2BA01477
    assert dap.read_dp(0x4) & (CDBGPWRUPACK | CSYSPWRUPACK) == 0
    with pytest.raises(DapFault, match="debug power domain is off"):
        dap.read_ap(AP_IDR)  # no AP access before the debug power domain is up
    assert dap.read_dp(0x4) & STICKYERR
    power_up(unit)
    with pytest.raises(DapFault, match="sticky"):
        dap.read_ap(AP_CSW)  # until ABORT clears the sticky error
    dap.write_dp(0x0, STKERRCLR)  # ABORT clears it
    ctrl = dap.read_dp(0x4)
    assert ctrl & (CDBGPWRUPACK | CSYSPWRUPACK) == CDBGPWRUPACK | CSYSPWRUPACK and not ctrl & STICKYERR
    dap.write_dp(0x8, 0xF0)  # APSEL 0, bank 0xF
    assert (dap.read_ap(AP_IDR), dap.read_ap(AP_BASE), dap.read_ap(AP_CFG)) == (0x24770011, 0xE00FF003, 0)
    dap.write_dp(0x8, 0x010000F0)  # APSEL 1: no AP
    assert dap.read_ap(AP_IDR) == 0


def test_csw_size_reads_back_and_device_enable_is_always_set(unit: DebugUnit) -> None:
    power_up(unit)
    dap = unit.dap
    for size in (0, 1, 2):
        dap.write_ap(AP_CSW, 0x23000010 | size)
        assert dap.read_ap(AP_CSW) & 7 == size and dap.read_ap(AP_CSW) & 0x40
    dap.write_ap(AP_CSW, 0x23000013)  # 64-bit: not supported, reads 32
    assert dap.read_ap(AP_CSW) & 7 == 2
    dap.write_ap(AP_CSW, 0x0F000012)
    assert dap.read_ap(AP_CSW) >> 24 == 0x0F  # HPROT writable


def test_byte_and_halfword_lanes(unit: DebugUnit) -> None:
    power_up(unit)
    dap = unit.dap
    dap.write_ap(AP_CSW, CSW_8_INC)
    dap.write_ap(AP_TAR, SRAM + 0x101)
    for i, byte in enumerate((0x11, 0x22, 0x33)):
        dap.write_ap(AP_DRW, byte << (8 * ((0x101 + i) & 3)))  # each byte on its own lane
    dap.write_ap(AP_CSW, CSW_16_INC)
    dap.write_ap(AP_TAR, SRAM + 0x106)
    dap.write_ap(AP_DRW, 0xBEEF << 16)  # the upper halfword lane
    assert unit.memory.read(SRAM + 0x100, 8) == bytes([0, 0x11, 0x22, 0x33, 0, 0, 0xEF, 0xBE])
    dap.write_ap(AP_CSW, CSW_8_INC)
    dap.write_ap(AP_TAR, SRAM + 0x102)
    assert dap.read_ap(AP_DRW) == 0x22 << 16


def test_tar_wraps_at_4_kib_not_1_kib(unit: DebugUnit) -> None:
    """The AHB-AP of IDR 0x24770011 increments TAR within its 4 KiB block: a block crossing a 1 KiB
    boundary lands in place, one crossing a 4 KiB boundary wraps to the block's start."""
    power_up(unit)
    dap = unit.dap
    dap.write_ap(AP_CSW, CSW_32_INC)
    dap.write_ap(AP_TAR, SRAM + 0x3F8)
    dap.write_ap_multiple(AP_DRW, [0x11111111, 0x22222222, 0x33333333, 0x44444444])
    assert unit.memory.read(SRAM + 0x3F8, 16) == bytes.fromhex("11111111222222223333333344444444")
    assert unit.memory.read(SRAM, 8) == bytes(8)  # nothing aliased to the 1 KiB block's start
    dap.write_ap(AP_TAR, SRAM + 0xFF8)
    dap.write_ap_multiple(AP_DRW, [0xA1A1A1A1, 0xB2B2B2B2, 0xC3C3C3C3, 0xD4D4D4D4])
    assert unit.memory.read(SRAM + 0xFF8, 8) == bytes.fromhex("a1a1a1a1b2b2b2b2")
    assert unit.memory.read(SRAM, 8) == bytes.fromhex("c3c3c3c3d4d4d4d4")  # wrapped
    assert unit.memory.read(SRAM + 0x1000, 8) == bytes(8)
    assert dap.read_ap(AP_TAR) == SRAM + 0x008
    dap.write_ap(AP_TAR, SRAM + 0xFF8)
    assert dap.read_ap_multiple(AP_DRW, 4) == [0xA1A1A1A1, 0xB2B2B2B2, 0xC3C3C3C3, 0xD4D4D4D4]


def test_bus_faults_are_sticky_and_flash_is_read_only(unit: DebugUnit) -> None:
    power_up(unit)
    dap = unit.dap
    dap.write_ap(AP_CSW, CSW_32_INC)
    dap.write_ap(AP_TAR, 0x08000000)
    before = unit.memory.read(0x08000000, 4)
    with pytest.raises(DapFault, match="read-only"):
        dap.write_ap(AP_DRW, 0)
    assert unit.memory.read(0x08000000, 4) == before
    with pytest.raises(DapFault, match="sticky"):
        dap.read_ap(AP_CSW)
    dap.write_dp(0x0, STKERRCLR)
    dap.write_ap(AP_TAR, 0x30000000)
    with pytest.raises(DapFault, match="no memory at 0x30000000"):
        dap.read_ap(AP_DRW)


def test_an_unpowered_target_does_not_answer_and_forgets_its_debug_state(unit: DebugUnit) -> None:
    power_up(unit)
    unit.on_vdd(0.0)
    with pytest.raises(NoAck):
        unit.dap.read_dp(0x0)
    unit.on_vdd(3.3)
    assert unit.dap.read_dp(0x4) & CDBGPWRUPACK == 0  # the debugger has to power the debug domain again
    with pytest.raises(DapFault):
        unit.dap.read_ap(AP_IDR)
