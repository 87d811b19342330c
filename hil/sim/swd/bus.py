"""The virtual MCU's system bus as the AHB-AP reaches it.

==================  ====================  =====================================================
range               what                  access from the debugger
==================  ====================  =====================================================
0x00000000 +64 KiB  flash, boot alias     read-only
0x08000000 +64 KiB  flash                 read-only: programmed through the flash algorithm
0x08080000 +2 KiB   data EEPROM (NVM)     read/write; a write is committed at once and the
                                          firmware reads it at its next boot
0x1FFF7590 +12      96-bit unique ID      read-only (``mcu.yaml``)
0x20000000 +16 KiB  SRAM                  read/write
0xE0000000 +1 MiB   Private Peripheral    debug registers and ROM table (:mod:`.core`), the
                    Bus                   rest reads back what was written
==================  ====================  =====================================================

Anything else, or an access across two of these, is a bus fault (:class:`BusFault`), which the
AHB-AP reports to the debugger as a transfer fault.
"""

from __future__ import annotations

import threading

from hil.sim.dut.memory import FLASH_BASE, FLASH_SIZE, DutMemory, MemoryAccessError
from hil.sim.swd.core import DebugCore
from hil.sim.swd.identity import UniqueIdLocation


class BusFault(ValueError):
    """An access the bus does not complete (no memory there, or read-only)."""

    def __init__(self, message: str, address: int, size: int) -> None:
        super().__init__(message)
        self.address = address
        self.size = size


class SystemBus:
    """Routes debugger accesses to the DUT's memory, the unique ID and the debug core. Thread-safe."""

    def __init__(self, memory: DutMemory, unique_id: UniqueIdLocation, uid: bytes) -> None:
        self.memory = memory
        self.uid_location = unique_id
        self.core: DebugCore | None = None
        self._lock = threading.Lock()
        self._uid = b""
        self.set_unique_id(uid)

    def attach_core(self, core: DebugCore) -> None:
        self.core = core

    # -- the unique ID ----------------------------------------------------------------------------

    @property
    def unique_id(self) -> bytes:
        with self._lock:
            return self._uid

    def set_unique_id(self, uid: bytes) -> None:
        """Put another MCU behind the probe (a production line's next unit)."""
        uid = bytes(uid)
        if len(uid) != self.uid_location.size:
            raise ValueError(f"the MCU's unique ID is {self.uid_location.size} bytes, got {len(uid)}")
        with self._lock:
            self._uid = uid

    # -- access -----------------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes from ``address``; BusFault if the bus does not answer."""
        if address < FLASH_SIZE and address + size <= FLASH_SIZE:
            return self._memory_read(FLASH_BASE + address, size)  # the boot alias of flash
        uid = self.uid_location
        if uid.address <= address and address + size <= uid.address + uid.size:
            offset = address - uid.address
            return self.unique_id[offset : offset + size]
        if self.core is not None and self.core.contains(address):
            return self._ppb_read(address, size)
        return self._memory_read(address, size)

    def write(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address``; BusFault if the bus does not complete it."""
        size = len(data)
        if self.core is not None and self.core.contains(address):
            self._ppb_write(address, bytes(data))
            return
        try:
            region = None if address < FLASH_SIZE else self.memory.region_at(address, max(size, 1))
        except MemoryAccessError as exc:
            raise BusFault(str(exc), address, size) from None
        if region is None or region.kind == "flash":
            raise BusFault(f"flash at 0x{address:08X} is read-only on the bus: program it through the flash "
                           "algorithm", address, size)
        self.memory.write(address, data)

    def _memory_read(self, address: int, size: int) -> bytes:
        try:
            return self.memory.read(address, size)
        except MemoryAccessError as exc:
            raise BusFault(str(exc), address, size) from None

    def _ppb_read(self, address: int, size: int) -> bytes:
        assert self.core is not None
        out = bytearray()
        for word_address in range(address & ~3, address + size, 4):
            out += self.core.read_word(word_address).to_bytes(4, "little")
        start = address & 3
        return bytes(out[start : start + size])

    def _ppb_write(self, address: int, data: bytes) -> None:
        assert self.core is not None
        end = address + len(data)
        for word_address in range(address & ~3, end, 4):
            lo, hi = max(address, word_address), min(end, word_address + 4)
            if lo == word_address and hi == word_address + 4:
                word = bytearray(data[lo - address : hi - address])
            else:  # a partial word: merge with what is there (without read side effects)
                word = bytearray(self.core.read_word(word_address, peek=True).to_bytes(4, "little"))
                word[lo - word_address : hi - word_address] = data[lo - address : hi - address]
            self.core.write_word(word_address, int.from_bytes(word, "little"))
