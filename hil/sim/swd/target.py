"""The pyocd target of the virtual MCU (``hil_relay_node``): its memory map and flash algorithm.

Registered into ``pyocd.target.TARGET`` when pyocd loads the probe plugin (:mod:`.probe`), so
``target_override="hil_relay_node"`` (or ``-t hil_relay_node`` on the pyocd command line) works in
any process where this package is installed.
"""

from __future__ import annotations

from pyocd.core.memory_map import FlashRegion, MemoryMap, RamRegion
from pyocd.coresight.coresight_target import CoreSightTarget

from hil.sim.dut.memory import EEPROM_BASE, FLASH_BASE, FLASH_PAGE, FLASH_SIZE, SRAM_BASE, SRAM_SIZE
from hil.sim.dut.nvm import SIZE as EEPROM_SIZE
from hil.sim.swd.flash_algo import flash_algo
from hil.sim.swd.identity import mcu_identity


class HilRelayNode(CoreSightTarget):
    """The virtual relay node's MCU: 64 KiB NOR flash (128-byte sectors), 2 KiB data EEPROM, 16 KiB SRAM."""

    VENDOR = "HIL virtual rig"

    # Where the 96-bit unique ID is: drivers.swd reads it from here (real targets: its own table).
    UNIQUE_ID = ((mcu_identity().unique_id.address, mcu_identity().unique_id.size),)

    MEMORY_MAP = MemoryMap(
        FlashRegion(name="flash", start=FLASH_BASE, length=FLASH_SIZE, blocksize=FLASH_PAGE, page_size=FLASH_PAGE,
                    is_boot_memory=True, erased_byte_value=0xFF, algo=flash_algo()),
        RamRegion(name="eeprom", start=EEPROM_BASE, length=EEPROM_SIZE, is_testable=False),
        RamRegion(name="sram", start=SRAM_BASE, length=SRAM_SIZE),
    )

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session, self.MEMORY_MAP)


def register_target() -> None:
    """Add the virtual MCU to pyocd's built-in targets (idempotent)."""
    from pyocd.target import TARGET

    TARGET.setdefault(mcu_identity().target, HilRelayNode)
