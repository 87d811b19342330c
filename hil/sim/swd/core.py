"""The Cortex-M debug registers of the virtual MCU and what they do to the DUT model.

No CPU executes instructions: the DUT's firmware is a Python model (hil/sim/dut/firmware.py). This
core keeps the debug state a debugger sees and turns debug actions into actions on a
:class:`CoreHost` (the firmware model):

==========  ===========  =============================================================================
register    address      behaviour
==========  ===========  =============================================================================
CPUID       0xE000ED00   read-only identity (``mcu.yaml``)
AIRCR       0xE000ED0C   writes with VECTKEY 0x05FA and SYSRESETREQ or VECTRESET reset the system
DFSR        0xE000ED30   why the core halted (HALTED, BKPT, VCATCH); write 1 to clear
DHCSR       0xE000EDF0   writes need DBGKEY 0xA05F. C_DEBUGEN + C_HALT halts (the host pauses),
                         clearing C_HALT resumes (at a flash-algorithm entry point: run it, stay
                         halted), clearing C_DEBUGEN resumes. Reads: S_REGRDY, S_HALT, S_RETIRE_ST
                         (running), S_RESET_ST (sticky, cleared by the read)
DCRSR/DCRDR 0xE000EDF4/8 core-register transfer (R0-R15, xPSR, MSP, PSP, CONTROL...)
DEMCR       0xE000EDFC   VC_CORERESET: halt at the reset vector after a reset
ROM table   0xE00FF000   one entry: the SCS, with CoreSight component and peripheral IDs
==========  ===========  =============================================================================

Every other word of the Private Peripheral Bus (0xE0000000-0xE00FFFFF) reads back what was written
(zero after power-up): VTOR, SysTick, NVIC, CPACR... which is all pyocd's emulated reset needs.

A reset (system, VECTRESET, or the probe's nRST) reloads SP and PC from the vector table in flash
(aliased at 0) and reboots the host keeping NVM; with VC_CORERESET set the core stays halted at the
reset vector and so does the host. :meth:`DebugCore.power_lost` clears the whole debug domain.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

from hil.sim.swd.flash_algo import FlashController, decode_entry
from hil.sim.swd.identity import McuIdentity, component_id_registers

PPB_BASE, PPB_END = 0xE0000000, 0xE0100000

CPUID = 0xE000ED00
AIRCR = 0xE000ED0C
DFSR = 0xE000ED30
DHCSR = 0xE000EDF0
DCRSR = 0xE000EDF4
DCRDR = 0xE000EDF8
DEMCR = 0xE000EDFC

DBGKEY = 0xA05F
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 5
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP, S_RETIRE_ST, S_RESET_ST = 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 24, 1 << 25
DHCSR_CONTROL = C_DEBUGEN | C_HALT | C_STEP | C_MASKINTS | C_SNAPSTALL

VECTKEY = 0x05FA
AIRCR_VECTRESET, AIRCR_SYSRESETREQ = 1 << 0, 1 << 2
DFSR_HALTED, DFSR_BKPT, DFSR_VCATCH = 1 << 0, 1 << 1, 1 << 3
DEMCR_VC_CORERESET = 1 << 0
DCRSR_REGWNR = 1 << 16
REG_SP, REG_LR, REG_PC, REG_XPSR, REG_MSP = 13, 14, 15, 16, 17
XPSR_THUMB = 1 << 24

Reader = Callable[[int, int], bytes]  # (address, size) -> bytes, on the system bus


class CoreHost(Protocol):
    """The model of the software on the core (the DUT firmware), as the debug logic drives it."""

    def halt(self) -> None:
        """The core halted: the firmware stops (no radio, no console) until :meth:`resume`."""

    def resume(self) -> None:
        """The core runs the firmware again."""

    def system_reset(self, *, halt_after: bool) -> None:
        """Reset the system (RAM lost, NVM kept) and reboot; ``halt_after``: stop at the reset vector."""


class NullHost:
    """A core with nothing on it (unit tests of the debug logic); records what happened."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def halt(self) -> None:
        self.calls.append("halt")

    def resume(self) -> None:
        self.calls.append("resume")

    def system_reset(self, *, halt_after: bool) -> None:
        self.calls.append("reset_halt" if halt_after else "reset")


class DebugCore:
    """The SCS debug registers, core registers, ROM table and the PPB of one Cortex-M. Thread-safe."""

    def __init__(self, identity: McuIdentity, read_bus: Reader, flash: FlashController,
                 host: CoreHost | None = None) -> None:
        self.identity = identity
        self._read_bus = read_bus
        self.flash = flash
        self.host: CoreHost = host or NullHost()
        self._lock = threading.RLock()
        self._ids: dict[int, int] = {}
        rom, scs = identity.rom_table, identity.scs
        for offset, value in component_id_registers(rom.part, 0x1).items():
            self._ids[rom.address + offset] = value
        for i, entry in enumerate(rom.entries):
            self._ids[rom.address + 4 * i] = entry
        self._ids[rom.address + 4 * len(rom.entries)] = 0  # end of the table
        for offset, value in component_id_registers(scs.part, 0xE).items():
            self._ids[scs.address + offset] = value
        self._ids[CPUID] = identity.cpuid
        self._power_on_state()

    def _power_on_state(self) -> None:
        self._ppb: dict[int, int] = {}
        self.regs: dict[int, int] = {}
        self.dhcsr_control = 0
        self.halted = False
        self.reset_sticky = True  # S_RESET_ST: the core came out of a power-on reset
        self.retired = False
        self.dfsr = 0
        self.demcr = 0
        self.dcrdr = 0

    # -- bus access (32-bit words; the DAP merges byte lanes) ------------------------------------

    @staticmethod
    def contains(address: int) -> bool:
        return PPB_BASE <= address < PPB_END

    def read_word(self, address: int, *, peek: bool = False) -> int:
        """The word at ``address``; ``peek`` reads without side effects (no sticky bit cleared)."""
        address &= ~3
        with self._lock:
            if address in self._ids:
                return self._ids[address]
            if address == DHCSR:
                return self.dhcsr_control if peek else self._read_dhcsr()
            if address == DFSR:
                return self.dfsr
            if address == DEMCR:
                return self.demcr
            if address == DCRDR:
                return self.dcrdr
            if address == DCRSR:
                return 0
            if address == AIRCR:
                return (0xFA05 << 16) | (self._ppb.get(AIRCR, 0) & 0x0700)  # VECTKEYSTAT, PRIGROUP
            return self._ppb.get(address, 0)

    def write_word(self, address: int, value: int) -> None:
        address &= ~3
        value &= 0xFFFFFFFF
        with self._lock:
            if address in self._ids:
                return  # read-only identification
            if address == DHCSR:
                self._write_dhcsr(value)
            elif address == DFSR:
                self.dfsr &= ~value
            elif address == DEMCR:
                self.demcr = value
            elif address == DCRDR:
                self.dcrdr = value
            elif address == DCRSR:
                self._write_dcrsr(value)
            elif address == AIRCR:
                self._write_aircr(value)
            else:
                self._ppb[address] = value

    # -- DHCSR -------------------------------------------------------------------------------------

    def _read_dhcsr(self) -> int:
        value = self.dhcsr_control | S_REGRDY
        if self.halted:
            value |= S_HALT
        if self.retired or not self.halted:  # a running core retires instructions all the time
            value |= S_RETIRE_ST
        if self.reset_sticky:
            value |= S_RESET_ST
        self.reset_sticky = self.retired = False  # the sticky bits clear on read
        return value

    def _write_dhcsr(self, value: int) -> None:
        if value >> 16 != DBGKEY:
            return  # writes without the key are ignored
        control = value & DHCSR_CONTROL
        self.dhcsr_control = control
        if not control & C_DEBUGEN:
            if self.halted:
                self._resume()
            return
        if control & C_HALT:
            if not self.halted:
                self._halt(DFSR_HALTED)
        elif control & C_STEP:
            if self.halted:
                self.dfsr |= DFSR_HALTED  # a step of no instruction: still halted
        elif self.halted:
            self._resume()

    def _halt(self, reason: int) -> None:
        if REG_PC not in self.regs:  # first halt since power-up: the registers the reset loaded
            self._load_reset_registers()
        self.halted = True
        self.dfsr |= reason
        self.host.halt()

    def _resume(self) -> None:
        """Leave debug state; a PC at a flash-algorithm entry point runs that routine and halts again."""
        pc = self.regs.get(REG_PC, 0) & ~1
        code = self._entry_at(pc)
        if code is not None:
            args = [self.regs.get(i, 0) for i in range(4)]
            self.regs[0] = self.flash.run(code, *args) & 0xFFFFFFFF
            self.regs[REG_PC] = self.regs.get(REG_LR, 0) & ~1  # returned to the BKPT LR points at
            self.dfsr |= DFSR_BKPT
            self.retired = True
            return  # halted again on the breakpoint: the host stays paused
        self.halted = False
        self.dhcsr_control &= ~C_HALT
        self.host.resume()

    def _entry_at(self, pc: int) -> int | None:
        try:
            word = int.from_bytes(self._read_bus(pc, 4), "little")
        except ValueError:  # PC outside memory (no flash algorithm there)
            return None
        return decode_entry(word)

    # -- core registers ---------------------------------------------------------------------------

    def _write_dcrsr(self, value: int) -> None:
        selector = value & 0x7F
        if selector == REG_SP:
            selector = REG_MSP  # SP is the main stack pointer (CONTROL.SPSEL = 0)
        if value & DCRSR_REGWNR:
            self.regs[selector] = self.dcrdr
        else:
            self.dcrdr = self.regs.get(selector, 0)

    # -- resets -----------------------------------------------------------------------------------

    def _write_aircr(self, value: int) -> None:
        if value >> 16 != VECTKEY:
            return
        self._ppb[AIRCR] = value & 0x0700
        if value & (AIRCR_SYSRESETREQ | AIRCR_VECTRESET):
            self.system_reset()

    def system_reset(self) -> None:
        """A reset of the system (SYSRESETREQ, VECTRESET or nRST): the debug domain keeps its state."""
        with self._lock:
            self.reset_sticky = True
            self._load_reset_registers()
            catch = bool(self.demcr & DEMCR_VC_CORERESET and self.dhcsr_control & C_DEBUGEN)
            self.halted = catch
            if catch:
                self.dfsr |= DFSR_VCATCH
                self.dhcsr_control |= C_HALT
            else:
                self.dhcsr_control &= ~C_HALT
            self.host.system_reset(halt_after=catch)

    def _load_reset_registers(self) -> None:
        """SP and PC from the vector table (flash, aliased at 0), as a reset loads them."""
        sp, pc = self._vector(0), self._vector(4)
        self.regs = {REG_MSP: sp, REG_PC: pc & ~1, REG_XPSR: XPSR_THUMB, REG_LR: 0xFFFFFFFF}

    def _vector(self, offset: int) -> int:
        try:
            return int.from_bytes(self._read_bus(offset, 4), "little")
        except ValueError:
            return 0

    def power_lost(self) -> None:
        """VDD gone: the whole debug domain resets (registers, halt, vector catch, PPB contents)."""
        with self._lock:
            self._power_on_state()
