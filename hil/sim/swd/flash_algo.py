"""The virtual MCU's flash programming: a CMSIS flash algorithm whose code the simulator runs.

pyocd programs flash as on any Cortex-M: it loads a flash algorithm into SRAM, sets PC, R0-R3, SP
and LR, resumes the core and waits for it to halt on the breakpoint LR points to. The algorithm's
code here is a table of entry points, each a ``BKPT #code`` whose upper halfword is the signature
``0x4C48`` ("HL"); when the core resumes at one of them (the word at PC in SRAM holds it), the
simulated core runs :class:`FlashController`'s function of that code instead of instructions,
puts its result in R0 and halts at the algorithm's base address, as the real routine returning to
its BKPT would.

:class:`FlashController` is the flash interface of the virtual relay node with NOR rules (erase
before program): EraseSector erases one 128-byte page (the STM32L0 erase unit), ProgramPage can
only clear bits, EraseChip erases all of it. It counts what it did (:attr:`FlashController.log`)
so a test can see that a reflash after a one-byte change erased one sector.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from hil.sim.dut.memory import (
    FLASH_BASE,
    FLASH_PAGE,
    FLASH_SIZE,
    SRAM_BASE,
    DutMemory,
    FlashEraseError,
    FlashProgramError,
    MemoryAccessError,
)

log = logging.getLogger(__name__)

SIGNATURE = 0x4C48  # "HL": upper halfword of every entry-point word
BKPT = 0xBE00  # Thumb BKPT #imm8
LOAD_ADDRESS = SRAM_BASE
BEGIN_STACK = SRAM_BASE + 0x800  # stack grows down from here
END_STACK = SRAM_BASE + 0x600  # pyocd writes a canary here and checks it after every call
PAGE_BUFFERS = (SRAM_BASE + 0x800, SRAM_BASE + 0x800 + FLASH_PAGE)  # two: pyocd double-buffers

# entry-point codes (the BKPT immediate) in the order of the instruction table after word 0
INIT, UNINIT, ERASE_CHIP, ERASE_SECTOR, PROGRAM_PAGE = 0xA1, 0xA2, 0xA3, 0xA4, 0xA5
_ENTRIES = (("pc_init", INIT), ("pc_unInit", UNINIT), ("pc_eraseAll", ERASE_CHIP),
            ("pc_erase_sector", ERASE_SECTOR), ("pc_program_page", PROGRAM_PAGE))
_FUNCTIONS = {INIT: "init", UNINIT: "uninit", ERASE_CHIP: "erase_chip", ERASE_SECTOR: "erase_sector",
              PROGRAM_PAGE: "program_page"}
RESULT_OK, RESULT_FAIL = 0, 1


def entry_word(code: int) -> int:
    """The instruction word at an entry point: ``BKPT #code`` then the signature halfword."""
    return (SIGNATURE << 16) | BKPT | code


def decode_entry(word: int) -> int | None:
    """The function code of an entry-point word, or None if ``word`` is not one."""
    if word >> 16 != SIGNATURE or (word & 0xFF00) != BKPT:
        return None
    code = word & 0xFF
    return code if code in {c for _, c in _ENTRIES} else None


def flash_algo() -> dict[str, Any]:
    """The algorithm as pyocd's ``FlashRegion(algo=...)`` takes it (load address, code, entry points)."""
    instructions = [0xE00ABE00]  # word 0: BKPT #0, where LR points: the routines "return" here
    algo: dict[str, Any] = {"load_address": LOAD_ADDRESS}
    for name, code in _ENTRIES:
        algo[name] = LOAD_ADDRESS + 4 * len(instructions) + 1  # Thumb
        instructions.append(entry_word(code))
    algo.update(
        instructions=instructions,
        static_base=LOAD_ADDRESS + 4 * len(instructions),
        begin_stack=BEGIN_STACK,
        end_stack=END_STACK,
        begin_data=PAGE_BUFFERS[0],
        page_buffers=list(PAGE_BUFFERS),
        page_size=FLASH_PAGE,
        min_program_length=FLASH_PAGE,
        analyzer_supported=False,
        analyzer_address=0,
        flash_start=FLASH_BASE,
        flash_size=FLASH_SIZE,
        sector_sizes=((0, FLASH_PAGE),),
    )
    return algo


@dataclass
class FlashLog:
    """What the flash interface did since the last :meth:`FlashController.clear_log`."""

    erased: list[int] = field(default_factory=list)  # sector addresses, in order
    programmed: list[tuple[int, int]] = field(default_factory=list)  # (address, size) per ProgramPage
    chip_erases: int = 0
    inits: int = 0
    failures: list[str] = field(default_factory=list)


class FlashController:
    """The flash algorithm's functions, run by the simulated core on ``memory``. Thread-safe."""

    def __init__(self, memory: DutMemory) -> None:
        self.memory = memory
        self.log = FlashLog()
        self._lock = threading.Lock()

    def run(self, code: int, r0: int, r1: int, r2: int, r3: int) -> int:
        """Run the function of entry code ``code`` with the argument registers; its R0 result."""
        function: Callable[..., int] = getattr(self, _FUNCTIONS[code])
        return function(r0, r1, r2, r3)

    def clear_log(self) -> FlashLog:
        """The log so far, and a fresh one from now on."""
        with self._lock:
            old, self.log = self.log, FlashLog()
        return old

    # -- the CMSIS flash algorithm API (Init, UnInit, EraseChip, EraseSector, ProgramPage) ---------

    def init(self, address: int, clock: int, function: int, _: int = 0) -> int:
        with self._lock:
            self.log.inits += 1
        return RESULT_OK

    def uninit(self, function: int, *_: int) -> int:
        return RESULT_OK

    def erase_chip(self, *_: int) -> int:
        self.memory.mass_erase()
        with self._lock:
            self.log.chip_erases += 1
        return RESULT_OK

    def erase_sector(self, address: int, *_: int) -> int:
        try:
            self.memory.erase(address, FLASH_PAGE)
        except (FlashEraseError, MemoryAccessError) as exc:
            return self._fail(f"EraseSector(0x{address:08X}): {exc}")
        with self._lock:
            self.log.erased.append(address)
        return RESULT_OK

    def program_page(self, address: int, size: int, buffer: int, _: int = 0) -> int:
        try:
            data = self.memory.read(buffer, size)
            if self.memory.region_at(address, max(size, 1)).kind != "flash":
                raise FlashProgramError(f"0x{address:08X} is not in flash")
            self.memory.write(address, data)
        except (FlashProgramError, MemoryAccessError) as exc:
            return self._fail(f"ProgramPage(0x{address:08X}, {size}): {exc}")
        with self._lock:
            self.log.programmed.append((address, size))
        return RESULT_OK

    def _fail(self, what: str) -> int:
        log.warning("virtual flash: %s", what)
        with self._lock:
            self.log.failures.append(what)
        return RESULT_FAIL
