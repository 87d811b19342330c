"""An ADIv5 SW-DP with one AHB-AP (MEM-AP), at the register level a debug probe drives.

The probe calls :meth:`SwDap.read_dp` / :meth:`SwDap.write_dp` / :meth:`SwDap.read_ap` /
:meth:`SwDap.write_ap` (and the ``_multiple`` forms for blocks) exactly as it would send SWD packets.

DP (DPv1, so no banked registers): DPIDR (read 0x0), ABORT (write 0x0: clears sticky flags),
CTRL/STAT (0x4: CDBGPWRUPREQ/CSYSPWRUPREQ are acknowledged at once, STICKYERR after a fault),
SELECT (write 0x8: APSEL in bits 31:24, APBANKSEL in 7:4), RESEND (read 0x8), RDBUFF (read 0xC).

AP at APSEL 0 (APSEL 1-3 read IDR 0, "no AP"): CSW (0x00: Size 8/16/32 reads back, any other size
reads 32; AddrInc; DeviceEn always 1; HPROT/MasterType writable), TAR (0x04), DRW (0x0C: data on
byte lanes; with AddrInc single the TAR advances by the size and wraps inside its 4 KiB block, as
the Cortex-M4 AHB-AP's), BD0-BD3 (0x10-0x1C), CFG (0xF4 = 0), BASE (0xF8), IDR (0xFC).

Errors, as the wire would show them:

* :class:`NoAck`: the target does not answer at all (no VDD).
* :class:`DapFault`: a FAULT response: the bus faulted (no memory there, read-only) or a sticky
  flag is set (a previous fault not cleared through ABORT), or the debug power domain is not up
  (after a power cycle, until the debugger sets CDBGPWRUPREQ again).
"""

from __future__ import annotations

import struct
import threading
from typing import Callable

from hil.sim.swd.bus import BusFault, SystemBus
from hil.sim.swd.identity import McuIdentity

# DP registers (A[3:2])
DP_IDR_ABORT, DP_CTRL_STAT, DP_SELECT_RESEND, DP_RDBUFF = 0x0, 0x4, 0x8, 0xC
# CTRL/STAT
CSYSPWRUPACK, CSYSPWRUPREQ, CDBGPWRUPACK, CDBGPWRUPREQ = 1 << 31, 1 << 30, 1 << 29, 1 << 28
CDBGRSTACK, CDBGRSTREQ = 1 << 27, 1 << 26
STICKYORUN, STICKYCMP, STICKYERR, WDATAERR = 1 << 1, 1 << 4, 1 << 5, 1 << 7
# and TRNCNT (23:12), MASKLANE (11:8), TRNMODE (3:2), ORUNDETECT (0)
CTRL_WRITABLE = CSYSPWRUPREQ | CDBGPWRUPREQ | CDBGRSTREQ | 0x00FFF000 | 0x00000F0C | 0x1
# ABORT
STKCMPCLR, STKERRCLR, WDERRCLR, ORUNERRCLR = 1 << 1, 1 << 2, 1 << 3, 1 << 4
# MEM-AP registers (APBANKSEL << 4 | A[3:2])
AP_CSW, AP_TAR, AP_DRW, AP_BD0, AP_BD3, AP_CFG, AP_BASE, AP_IDR = 0x00, 0x04, 0x0C, 0x10, 0x1C, 0xF4, 0xF8, 0xFC
CSW_SIZE_MASK, CSW_ADDRINC_SHIFT, CSW_DEVICEEN = 0x7, 4, 1 << 6
CSW_WRITABLE = 0xFF000F37  # Prot/HPROT/MasterType (31:24), Mode (11:8), AddrInc (5:4), Size (2:0)
CSW_RESET = 0x03000042  # 32-bit, no increment, DeviceEn, HPROT data+privileged
SIZES = {0: 1, 1: 2, 2: 4}


class NoAck(Exception):
    """No acknowledge on the wire: the target is not powered (or not connected)."""


class DapFault(Exception):
    """A FAULT acknowledge: the access did not complete."""


class SwDap:
    """The SW-DP and its AHB-AP, in front of ``bus``. ``powered()`` says whether VDD is up. Thread-safe."""

    def __init__(self, identity: McuIdentity, bus: SystemBus, powered: Callable[[], bool]) -> None:
        self.identity = identity
        self.bus = bus
        self._powered = powered
        self._wrap = identity.ap_tar_wrap
        self._lock = threading.RLock()
        self.power_lost()

    def power_lost(self) -> None:
        """VDD gone: DP and AP registers go back to their reset values (debug power down)."""
        with self._lock:
            self.ctrl_stat = 0
            self.select = 0
            self.rdbuff = 0
            self.csw = CSW_RESET
            self.tar = 0

    # -- DP ----------------------------------------------------------------------------------------

    def read_dp(self, address: int) -> int:
        with self._lock:
            self._check_powered()
            reg = address & 0xC
            if reg == DP_IDR_ABORT:
                return self.identity.dpidr
            if reg == DP_CTRL_STAT:
                acks = ((self.ctrl_stat & CSYSPWRUPREQ) << 1) | ((self.ctrl_stat & CDBGPWRUPREQ) << 1) \
                    | ((self.ctrl_stat & CDBGRSTREQ) << 1)
                return self.ctrl_stat | acks
            if reg == DP_SELECT_RESEND:
                return self.rdbuff
            return self.rdbuff

    def write_dp(self, address: int, value: int) -> None:
        value &= 0xFFFFFFFF
        with self._lock:
            self._check_powered()
            reg = address & 0xC
            if reg == DP_IDR_ABORT:
                clear = (STICKYCMP if value & STKCMPCLR else 0) | (STICKYERR if value & STKERRCLR else 0) \
                    | (WDATAERR if value & WDERRCLR else 0) | (STICKYORUN if value & ORUNERRCLR else 0)
                self.ctrl_stat &= ~clear
            elif reg == DP_CTRL_STAT:
                sticky = self.ctrl_stat & (STICKYORUN | STICKYCMP | STICKYERR | WDATAERR)
                self.ctrl_stat = (value & CTRL_WRITABLE) | sticky
            elif reg == DP_SELECT_RESEND:
                self.select = value
            # RDBUFF: writes are ignored

    # -- AP ----------------------------------------------------------------------------------------

    def read_ap(self, address: int) -> int:
        with self._lock:
            reg = self._ap_register(address)
            if self._apsel() != 0:
                value = 0  # no AP here: IDR reads 0
            elif reg == AP_DRW:
                value = self._drw_read()
            else:
                value = self._ap_reg_read(reg)
            self.rdbuff = value
            return value

    def write_ap(self, address: int, value: int) -> None:
        value &= 0xFFFFFFFF
        with self._lock:
            reg = self._ap_register(address)
            if self._apsel() != 0:
                return
            if reg == AP_CSW:
                size = value & CSW_SIZE_MASK
                self.csw = (value & CSW_WRITABLE & ~CSW_SIZE_MASK) | (size if size in SIZES else 2) | CSW_DEVICEEN
            elif reg == AP_TAR:
                self.tar = value
            elif reg == AP_DRW:
                self._drw_write(value)
            elif AP_BD0 <= reg <= AP_BD3:
                self._bus_write((self.tar & ~0xF) | (reg & 0xC), value.to_bytes(4, "little"))

    def read_ap_multiple(self, address: int, count: int) -> list[int]:
        with self._lock:
            reg = self._ap_register(address)
            if reg == AP_DRW and self._apsel() == 0 and self._block_mode():
                return self._drw_read_block(count)
            return [self.read_ap(address) for _ in range(count)]

    def write_ap_multiple(self, address: int, values: list[int]) -> None:
        with self._lock:
            reg = self._ap_register(address)
            if reg == AP_DRW and self._apsel() == 0 and self._block_mode():
                self._drw_write_block([v & 0xFFFFFFFF for v in values])
                return
            for value in values:
                self.write_ap(address, value)

    # -- internals ---------------------------------------------------------------------------------

    def _check_powered(self) -> None:
        if not self._powered():
            raise NoAck("no acknowledge from the target: it is not powered")

    def _ap_register(self, address: int) -> int:
        """Check the AP may be accessed now; the register (APBANKSEL, A[3:2]) from SELECT."""
        self._check_powered()
        if self.ctrl_stat & (STICKYERR | STICKYORUN | WDATAERR):
            raise DapFault("FAULT: a sticky error flag is set in CTRL/STAT (clear it through ABORT)")
        if not self.ctrl_stat & CDBGPWRUPREQ:
            self.ctrl_stat |= STICKYERR
            raise DapFault("FAULT: the debug power domain is off (CDBGPWRUPREQ not set)")
        return (self.select & 0xF0) | (address & 0xC)

    def _apsel(self) -> int:
        return (self.select >> 24) & 0xFF

    def _ap_reg_read(self, reg: int) -> int:
        if reg == AP_CSW:
            return self.csw
        if reg == AP_TAR:
            return self.tar
        if AP_BD0 <= reg <= AP_BD3:
            return int.from_bytes(self._bus_read((self.tar & ~0xF) | (reg & 0xC), 4), "little")
        if reg == AP_CFG:
            return 0
        if reg == AP_BASE:
            return self.identity.ap_base
        if reg == AP_IDR:
            return self.identity.ap_idr
        return 0

    def _size(self) -> int:
        return SIZES.get(self.csw & CSW_SIZE_MASK, 4)

    def _block_mode(self) -> bool:
        """32-bit transfers with single auto-increment: the fast path of block transfers."""
        return self._size() == 4 and (self.csw >> CSW_ADDRINC_SHIFT) & 3 == 1 and self.tar % 4 == 0

    def _advance(self, nbytes: int) -> None:
        increment = (self.csw >> CSW_ADDRINC_SHIFT) & 3
        if increment in (1, 2):  # single (packed transfers are not used by pyocd: treated as single)
            base = self.tar & ~(self._wrap - 1)
            self.tar = base | ((self.tar + nbytes) & (self._wrap - 1))

    def _drw_read(self) -> int:
        size = self._size()
        lane = self.tar & (4 - size)
        data = self._bus_read(self.tar, size)
        self._advance(size)
        return int.from_bytes(data, "little") << (8 * lane)

    def _drw_write(self, value: int) -> None:
        size = self._size()
        lane = self.tar & (4 - size)
        self._bus_write(self.tar, ((value >> (8 * lane)) & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        self._advance(size)

    def _run_words(self, remaining: int) -> int:
        """How many 32-bit transfers fit before the TAR wraps."""
        return min(remaining, (self._wrap - (self.tar & (self._wrap - 1))) // 4)

    def _drw_read_block(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            n = self._run_words(count - len(out))
            try:
                data = self.bus.read(self.tar, 4 * n)
            except BusFault:  # find the word that faults, word by word
                out.extend(self._drw_read() for _ in range(n))
                continue
            out.extend(struct.unpack(f"<{n}I", data))
            self._advance(4 * n)
        return out

    def _drw_write_block(self, values: list[int]) -> None:
        done = 0
        while done < len(values):
            n = self._run_words(len(values) - done)
            chunk = values[done : done + n]
            try:
                self.bus.write(self.tar, struct.pack(f"<{n}I", *chunk))
            except BusFault:  # word by word: the words before the faulting one are written
                for value in chunk:
                    self._drw_write(value)
            else:
                self._advance(4 * n)
            done += n

    def _bus_read(self, address: int, size: int) -> bytes:
        try:
            return self.bus.read(address, size)
        except BusFault as exc:
            self.ctrl_stat |= STICKYERR
            raise DapFault(f"FAULT: bus error reading 0x{address:08X}: {exc}") from None

    def _bus_write(self, address: int, data: bytes) -> None:
        try:
            self.bus.write(address, data)
        except BusFault as exc:
            self.ctrl_stat |= STICKYERR
            raise DapFault(f"FAULT: bus error writing 0x{address:08X}: {exc}") from None
