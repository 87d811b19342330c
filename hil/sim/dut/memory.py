"""The virtual relay node's memory map, as SWD sees it.

===========  ===========  ========  ==================================================================
region       start        size      what it holds
===========  ===========  ========  ==================================================================
flash        0x08000000   64 KiB    a deterministic fake firmware image (Cortex-M vector table first);
                                    NOR rules: erased = 0xFF, programming can only clear bits, erase
                                    works on 128-byte pages
eeprom       0x08080000   2 KiB     the data EEPROM = :class:`~hil.sim.dut.nvm.Nvm`; an SWD write
                                    changes it at once, and the firmware reads it at its next boot
sram         0x20000000   16 KiB    RAM (zeros after power-up; the firmware model keeps its state in
                                    Python, so SRAM holds only what the probe writes)
===========  ===========  ========  ==================================================================

An access must lie inside one region; anything else raises :class:`MemoryAccessError` naming the
address and the regions.

Data EEPROM fields (generated from ``nvm_layout.yaml`` by ``NvmLayout.default().table()``; a unit
test keeps this copy equal to the YAML):

NVM_TABLE_START
| address | offset | size | type | field | meaning |
|---|---|---|---|---|---|
| 0x08080000 | 0x000 | 4 | u32le | magic | 0x524C4948 once provisioned (written last) |
| 0x08080004 | 0x004 | 2 | u16le | layout_version | layout of this table (1) |
| 0x08080006 | 0x006 | 1 | bool | provisioned | factory defaults written |
| 0x08080008 | 0x008 | 1 | u8 enum(1.0.2/1.0.3/1.0.4/1.1) | lorawan_version | LoRaWAN L2 version |
| 0x08080009 | 0x009 | 1 | u8 enum(otaa/abp) | activation | activation mode |
| 0x0808000A | 0x00A | 1 | u8 enum(A/C) | device_class | LoRaWAN device class |
| 0x0808000B | 0x00B | 1 | u8 | data_rate | uplink data rate index |
| 0x0808000C | 0x00C | 1 | u8 | tx_power | TXPower index of the region (0 = max EIRP) |
| 0x0808000D | 0x00D | 1 | bool | adr | adaptive data rate enabled |
| 0x0808000E | 0x00E | 1 | bool | app_key_set | app_key holds a key |
| 0x0808000F | 0x00F | 1 | bool | nwk_key_set | nwk_key holds a key |
| 0x08080010 | 0x010 | 8 | eui64 | dev_eui | DevEUI |
| 0x08080018 | 0x018 | 8 | eui64 | join_eui | JoinEUI (AppEUI) |
| 0x08080020 | 0x020 | 16 | key128 | app_key | AppKey (secret) |
| 0x08080030 | 0x030 | 16 | key128 | nwk_key | NwkKey, LoRaWAN 1.1 (secret) |
| 0x08080040 | 0x040 | 4 | u32le | abp_dev_addr | ABP DevAddr |
| 0x08080044 | 0x044 | 1 | bool | abp_keys_set | ABP session keys present |
| 0x08080050 | 0x050 | 16 | key128 | abp_nwk_s_key | ABP NwkSKey (secret) |
| 0x08080060 | 0x060 | 16 | key128 | abp_app_s_key | ABP AppSKey (secret) |
| 0x08080080 | 0x080 | 4 | u32le | dev_nonce | next DevNonce (1.0.4/1.1 counter; 65536 = exhausted) |
| 0x08080084 | 0x084 | 4 | u32le | join_nonce | last accepted JoinNonce (1.1) |
| 0x08080088 | 0x088 | 1 | bool | join_nonce_valid | join_nonce holds a value |
| 0x08080089 | 0x089 | 1 | bool | joined_before | joined at least once: rejoin after every boot |
| 0x0808008C | 0x08C | 2 | u16le | used_dev_nonces_head | next slot of the used-DevNonce ring |
| 0x0808008E | 0x08E | 2 | u16le | used_dev_nonces_count | entries in the ring (max 64) |
| 0x08080090 | 0x090 | 128 | u16le x64 | used_dev_nonces | ring of random DevNonces used (1.0.2/1.0.3) |
| 0x08080110 | 0x110 | 4 | u32le | dev_addr | session DevAddr |
| 0x08080114 | 0x114 | 4 | u32le | fcnt_up | next FCntUp |
| 0x08080118 | 0x118 | 4 | u32le | n_fcnt_down | last NFCntDown (FCntDown in 1.0.x) |
| 0x0808011C | 0x11C | 4 | u32le | a_fcnt_down | last AFCntDown (1.1) |
| 0x08080120 | 0x120 | 16 | key128 | f_nwk_s_int_key | FNwkSIntKey / NwkSKey (secret) |
| 0x08080130 | 0x130 | 16 | key128 | s_nwk_s_int_key | SNwkSIntKey (secret) |
| 0x08080140 | 0x140 | 16 | key128 | nwk_s_enc_key | NwkSEncKey (secret) |
| 0x08080150 | 0x150 | 16 | key128 | app_s_key | AppSKey (secret) |
| 0x08080160 | 0x160 | 1 | u8 | rx1_dr_offset | RX1DROffset |
| 0x08080161 | 0x161 | 1 | u8 | rx2_dr | RX2 data rate (when rx2_dr_valid) |
| 0x08080162 | 0x162 | 1 | u8 | rx_delay_s | RX1 delay, seconds |
| 0x08080163 | 0x163 | 1 | u8 | extra_channel_count | entries used in extra_channels |
| 0x08080164 | 0x164 | 20 | u32le x5 | extra_channels | CFList/NewChannelReq channels, Hz |
| 0x08080178 | 0x178 | 1 | bool | session_valid | a session is stored (MacState.joined) |
| 0x08080179 | 0x179 | 1 | bool | session_keys_valid | the four session keys hold keys |
| 0x0808017A | 0x17A | 1 | bool | session_lorawan_1_1 | the session uses 1.1 keys |
| 0x0808017B | 0x17B | 1 | bool | rx2_dr_valid | rx2_dr holds a value |
| 0x0808017C | 0x17C | 1 | bool | n_fcnt_down_valid | n_fcnt_down holds a value |
| 0x0808017D | 0x17D | 1 | bool | a_fcnt_down_valid | a_fcnt_down holds a value |
| 0x08080180 | 0x180 | 32 | key256 | relay_key | K = SHA-256(passphrase) (secret) |
| 0x080801A0 | 0x1A0 | 4 | u32le | relay_expected | next relay command counter expected |
| 0x080801A4 | 0x1A4 | 1 | bool | relay_state | last commanded relay output (boot starts off) |
| 0x080801A5 | 0x1A5 | 1 | bool | relay_key_set | relay_key holds a key |
| 0x080801A6 | 0x1A6 | 1 | u8 | relay_sf | relay P2P spreading factor 7..12 |
| 0x080801A7 | 0x1A7 | 1 | u8 | relay_tx_power_dbm | relay P2P TX power 2..15 dBm |
NVM_TABLE_END
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Literal

from hil.sim.dut.nvm import Nvm

FLASH_BASE = 0x08000000
FLASH_SIZE = 64 * 1024
FLASH_PAGE = 128
FLASH_ERASED = 0xFF
SRAM_BASE = 0x20000000
SRAM_SIZE = 16 * 1024
EEPROM_BASE = 0x08080000

VECTOR_COUNT = 48  # Cortex-M0+: 16 system exceptions + 32 interrupts
IMAGE_CODE_SIZE = 12 * 1024
FACTORY_VERSION = "1.0.0"
"""The version of the image a unit leaves PCB assembly with (a fresh unit in the handler has it)."""
IMAGE_VERSION_AREA = 1024
"""The firmware reports the first ``fw x.y.z`` in this many bytes from the start of flash."""
_VERSION_TAG = re.compile(rb"fw (\d+\.\d+\.\d+)")


class MemoryAccessError(ValueError):
    """A read or write outside every region (or across two)."""

    def __init__(self, message: str, address: int, size: int) -> None:
        super().__init__(message)
        self.address = address
        self.size = size


class FlashProgramError(ValueError):
    """Programming flash would set a bit that only an erase can set."""


class FlashEraseError(ValueError):
    """An erase that is not whole flash pages."""


@dataclass(frozen=True, slots=True)
class MemoryRegion:
    name: str
    start: int
    size: int
    kind: Literal["flash", "eeprom", "ram"]

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.start + self.size

    def contains(self, address: int, size: int = 1) -> bool:
        return self.start <= address and address + size <= self.end


def fake_firmware_image(size: int = FLASH_SIZE, version: str = FACTORY_VERSION) -> bytes:
    """A deterministic flash image: a Cortex-M0+ vector table (initial SP = top of SRAM, Thumb
    handler addresses), the version string ``HIL-RELAY-L0 fw <version>``, pseudo-random "code"
    (the same for every version) and erased flash after it, to ``size`` bytes."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ValueError(f"an image version is x.y.z, got {version!r}")
    vectors = [0] * VECTOR_COUNT
    table_end = FLASH_BASE + 4 * VECTOR_COUNT
    reset_handler = table_end | 1
    default_handler = (table_end + 0x40) | 1
    vectors[0] = SRAM_BASE + SRAM_SIZE  # initial stack pointer
    vectors[1] = reset_handler
    for n in (2, 3, 11, 14, 15):  # NMI, HardFault, SVCall, PendSV, SysTick
        vectors[n] = default_handler
    for n in range(16, VECTOR_COUNT):
        vectors[n] = default_handler
    head = b"".join(v.to_bytes(4, "little") for v in vectors) + f"HIL-RELAY-L0 fw {version}".encode() + b"\x00"
    code = bytearray()
    counter = 0
    while len(head) + len(code) < IMAGE_CODE_SIZE:
        code += hashlib.sha256(b"hil-relay-fw" + counter.to_bytes(4, "little")).digest()
        counter += 1
    image = (head + bytes(code))[:IMAGE_CODE_SIZE]
    return (image + bytes([FLASH_ERASED]) * max(0, size - len(image)))[:size]


def flashed_version(flash: bytes) -> str | None:
    """The version the firmware in ``flash`` reports: the first ``fw x.y.z`` near its start, else None."""
    match = _VERSION_TAG.search(flash[:IMAGE_VERSION_AREA])
    return match.group(1).decode("ascii") if match else None


class DutMemory:
    """Flash, data EEPROM (the NVM) and SRAM of the virtual relay node. Thread-safe."""

    def __init__(self, nvm: Nvm, flash_image: bytes | None = None) -> None:
        self.nvm = nvm
        image = fake_firmware_image() if flash_image is None else bytes(flash_image)
        if len(image) > FLASH_SIZE:
            raise ValueError(f"flash image is {len(image)} bytes; the flash holds {FLASH_SIZE}")
        self._flash = bytearray(image + bytes([FLASH_ERASED]) * (FLASH_SIZE - len(image)))
        self._sram = bytearray(SRAM_SIZE)
        self._lock = threading.Lock()
        self._regions = (
            MemoryRegion("flash", FLASH_BASE, FLASH_SIZE, "flash"),
            MemoryRegion("eeprom", nvm.base_address, nvm.size, "eeprom"),
            MemoryRegion("sram", SRAM_BASE, SRAM_SIZE, "ram"),
        )

    def regions(self) -> tuple[MemoryRegion, ...]:
        """The mapped regions, lowest address first."""
        return self._regions

    def region_at(self, address: int, size: int = 1) -> MemoryRegion:
        """The region holding ``[address, address + size)``; MemoryAccessError if none does."""
        for region in self._regions:
            if region.contains(address, size):
                return region
        known = ", ".join(f"{r.name} 0x{r.start:08X}..0x{r.end - 1:08X}" for r in self._regions)
        raise MemoryAccessError(
            f"no memory at 0x{address:08X} (+{size} bytes): an access must lie inside one region ({known})",
            address, size,
        )

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes from ``address``."""
        if size < 0:
            raise MemoryAccessError(f"negative read size {size} at 0x{address:08X}", address, size)
        region = self.region_at(address, max(size, 1))
        offset = address - region.start
        if region.kind == "eeprom":
            return self.nvm.read(offset, size)
        with self._lock:
            store = self._flash if region.kind == "flash" else self._sram
            return bytes(store[offset : offset + size])

    def write(self, address: int, data: bytes) -> None:
        """Write ``data``: SRAM as is, EEPROM at once (next boot reads it), flash by NOR rules."""
        data = bytes(data)
        if not data:
            return
        region = self.region_at(address, len(data))
        offset = address - region.start
        if region.kind == "eeprom":
            self.nvm.poke(offset, data)
            return
        with self._lock:
            if region.kind == "ram":
                self._sram[offset : offset + len(data)] = data
                return
            for i, new in enumerate(data):
                old = self._flash[offset + i]
                if old & new != new:
                    raise FlashProgramError(
                        f"flash at 0x{address + i:08X} holds 0x{old:02X}; programming 0x{new:02X} would set bits "
                        f"0x{new & ~old & 0xFF:02X}: erase the page first (NOR programming only clears bits)"
                    )
            self._flash[offset : offset + len(data)] = data

    def erase(self, address: int, size: int) -> None:
        """Erase whole flash pages (``FLASH_PAGE`` bytes) to 0xFF."""
        region = self.region_at(address, max(size, 1))
        if region.kind != "flash":
            raise FlashEraseError(f"0x{address:08X} is in {region.name}, not flash: only flash is erased by pages")
        offset = address - region.start
        if offset % FLASH_PAGE or size % FLASH_PAGE or size <= 0:
            raise FlashEraseError(
                f"flash erase at 0x{address:08X} size {size} is not whole {FLASH_PAGE}-byte pages"
            )
        with self._lock:
            self._flash[offset : offset + size] = bytes([FLASH_ERASED]) * size

    def image_version(self) -> str | None:
        """The version of the image in flash (see :func:`flashed_version`); None for an image without one."""
        with self._lock:
            return flashed_version(bytes(self._flash[:IMAGE_VERSION_AREA]))

    def restore_factory_image(self) -> None:
        """Flash as a unit leaves PCB assembly: the factory image, erased after it (a fresh unit)."""
        with self._lock:
            self._flash[:] = fake_firmware_image(FLASH_SIZE)

    def mass_erase(self) -> None:
        """Erase the whole flash."""
        with self._lock:
            self._flash[:] = bytes([FLASH_ERASED]) * FLASH_SIZE

    def power_lost(self) -> None:
        """SRAM does not survive a power cut (it reads zeros at the next power-up)."""
        with self._lock:
            self._sram[:] = bytes(SRAM_SIZE)


def nvm_address_table() -> str:
    """The data-EEPROM field table with absolute addresses (Markdown), from ``nvm_layout.yaml``."""
    from hil.sim.dut.nvm import NvmLayout

    return NvmLayout.default().table()
