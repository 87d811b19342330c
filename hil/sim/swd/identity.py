"""The virtual MCU's debug identity (``mcu.yaml``): ID registers, ROM table, unique-ID location."""

from __future__ import annotations

import functools
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

ARM_JEP106 = 0x43B  # JEP106 code of ARM: continuation 4, identity 0x3B


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RomTable(_Model):
    address: int = Field(ge=0, le=0xFFFFFFFF)
    part: int = Field(ge=0, le=0xFFF)
    entries: tuple[int, ...]


class Component(_Model):
    address: int = Field(ge=0, le=0xFFFFFFFF)
    part: int = Field(ge=0, le=0xFFF)


class UniqueIdLocation(_Model):
    address: int = Field(ge=0, le=0xFFFFFFFF)
    size: int = Field(gt=0, le=64)


class McuIdentity(_Model):
    """What ``mcu.yaml`` holds."""

    target: str = Field(min_length=1)
    dpidr: int
    ap_idr: int
    ap_tar_wrap: int = Field(gt=0)
    ap_base: int
    cpuid: int
    rom_table: RomTable
    scs: Component
    unique_id: UniqueIdLocation


@functools.cache
def mcu_identity() -> McuIdentity:
    """The identity of the virtual MCU, read once from ``mcu.yaml``."""
    text = resources.files(__package__).joinpath("mcu.yaml").read_text(encoding="utf-8")
    return McuIdentity.model_validate(yaml.safe_load(text))


def component_id_registers(part: int, component_class: int) -> dict[int, int]:
    """The CoreSight PIDR/CIDR words of an ARM component, by offset in its 4 KiB block.

    ``component_class`` is 0x1 for a ROM table, 0xE for generic IP such as the SCS (CIDR1 bits 7:4).
    """
    jep_id, jep_cont = ARM_JEP106 & 0x7F, ARM_JEP106 >> 8
    pidr = {
        0xFD0: jep_cont & 0xF,  # PIDR4: JEP106 continuation code, 4 KiB block
        0xFE0: part & 0xFF,  # PIDR0: part[7:0]
        0xFE4: ((jep_id & 0xF) << 4) | ((part >> 8) & 0xF),  # PIDR1: JEP106 id[3:0], part[11:8]
        0xFE8: 0x08 | ((jep_id >> 4) & 0x7),  # PIDR2: revision 0, JEDEC used, JEP106 id[6:4]
        0xFEC: 0x00,  # PIDR3
    }
    cidr = {0xFF0: 0x0D, 0xFF4: (component_class & 0xF) << 4, 0xFF8: 0x05, 0xFFC: 0xB1}
    return {**pidr, **cidr}
