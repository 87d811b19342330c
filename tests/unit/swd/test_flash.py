"""Flashing through the driver and the real pyocd: .bin, .hex and .elf images land in the
simulator's flash (checked in its backing store, not only by pyocd's read-back), with NOR rules and
smart sector erase."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from drivers.swd import FlashResult, ImageError, SwdError, SwdProbe
from hil.sim.swd import DebugUnit
from hil.sim.swd.core import NullHost
from tests.unit.swd.images import FLASH, SRAM, VERSION, firmware, write_bin, write_elf, write_hex

SECTOR = 128


def flash_bytes(unit: DebugUnit, address: int, size: int) -> bytes:
    return unit.memory.read(address, size)


@pytest.mark.parametrize("kind", ["bin", "hex", "elf"])
def test_images_land_in_flash(kind: str, probe: SwdProbe, unit: DebugUnit, host: NullHost, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, data = firmware(3000), firmware(200, seed=9)  # code at the start of flash, data further up
    data_at = FLASH + 0x2000
    if kind == "bin":
        image = write_bin(tmp_path / "fw.bin", code)
        expected = [(FLASH, code)]
    elif kind == "hex":
        image = write_hex(tmp_path / "fw.hex", [(FLASH, code), (data_at, data)])
        expected = [(FLASH, code), (data_at, data)]
    else:  # .data: loaded at its LMA in flash (p_paddr), run from RAM (p_vaddr); .bss: no file bytes
        image = write_elf(tmp_path / "fw.elf", [(FLASH, FLASH, code, len(code)), (data_at, SRAM, data, len(data)),
                                                 (SRAM + 0x100, SRAM + 0x100, b"", 64)])
        expected = [(FLASH, code), (data_at, data)]
    before = flash_bytes(unit, FLASH, 0x3000)
    progress: list[float] = []
    result = probe.flash(image, progress=progress.append)
    for address, content in expected:
        assert flash_bytes(unit, address, len(content)) == content
    tail = slice(len(code), (len(code) // SECTOR + 1) * SECTOR)
    assert flash_bytes(unit, FLASH, 0x3000)[tail] == before[tail]  # the rest of the last sector was kept
    assert result == FlashResult(path=image, sha256=hashlib.sha256(image.read_bytes()).hexdigest(),
                                 bytes=sum(len(c) for _, c in expected), skipped=False, seconds=result.seconds,
                                 erased_sectors=result.erased_sectors, version=VERSION.split()[-1])
    assert result.erased_sectors == len(unit.flash.log.erased) > 0 and not unit.flash.log.failures
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 10
    assert host.calls[-1] == "reset"  # the DUT restarted on its new firmware
    assert capsys.readouterr().out == ""  # no progress bar


def test_reflash_skips_an_identical_image_and_erases_only_a_changed_sector(probe: SwdProbe, unit: DebugUnit,
                                                                           tmp_path: Path) -> None:
    code = firmware(4096)
    image = write_bin(tmp_path / "fw.bin", code)
    probe.flash(image)
    unit.flash.clear_log()
    again = probe.flash(image)
    assert again.skipped and unit.flash.clear_log().erased == []
    changed = bytearray(code)
    changed[1000] ^= 0x5A
    image.write_bytes(bytes(changed))
    result = probe.flash(image)
    log = unit.flash.clear_log()
    sector = FLASH + 1000 // SECTOR * SECTOR
    assert log.erased == [sector] and log.programmed == [(sector, SECTOR)] and result.erased_sectors == 1
    assert flash_bytes(unit, FLASH, len(changed)) == bytes(changed)
    forced = probe.flash(image, skip_if_same=False)
    assert not forced.skipped and unit.flash.clear_log().erased == []  # pyocd's smart flash: nothing differs


def test_bin_at_a_base_address_and_bad_images(probe: SwdProbe, unit: DebugUnit, tmp_path: Path) -> None:
    blob = bytes(range(256))
    probe.flash(write_bin(tmp_path / "blob.bin", blob), base_address=FLASH + 0x4000)
    assert flash_bytes(unit, FLASH + 0x4000, 256) == blob
    with pytest.raises(ImageError, match=r"fw\.srec.*unknown firmware image format"):
        probe.flash(write_bin(tmp_path / "fw.srec", blob))
    (tmp_path / "bad.hex").write_text(":10000000ZZ\n")
    with pytest.raises(ImageError, match=r"bad\.hex: not a valid Intel HEX"):
        probe.flash(tmp_path / "bad.hex")
    with pytest.raises(ImageError, match=r"outside\.hex: segment 0x30000000\.\.0x300000FF is not inside"):
        probe.flash(write_hex(tmp_path / "outside.hex", [(0x30000000, blob)]))
    with pytest.raises(ImageError, match="no such|cannot read"):
        probe.flash(tmp_path / "missing.elf")


def test_a_flash_that_does_not_take_the_data_fails_verification(probe: SwdProbe, unit: DebugUnit, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unit.flash, "program_page", lambda address, size, buffer, _=0: 0)  # "OK", writes nothing
    with pytest.raises(SwdError, match=r"verify of fw\.bin failed at 0x08000000: the chip holds 0xFF"):
        probe.flash(write_bin(tmp_path / "fw.bin", firmware(512)))


def test_a_field_in_flash_is_written_through_the_flash_algorithm(probe: SwdProbe, unit: DebugUnit,
                                                                 tmp_path: Path) -> None:
    code = firmware(1024)
    probe.flash(write_bin(tmp_path / "fw.bin", code))
    unit.flash.clear_log()
    probe.write_memory(FLASH + 0x204, b"\x01\x02\x03\x04")  # e.g. a calibration word kept in flash
    expected = bytearray(code)
    expected[0x204:0x208] = b"\x01\x02\x03\x04"
    assert flash_bytes(unit, FLASH, len(code)) == bytes(expected)  # the rest of the sector was kept
    assert unit.flash.clear_log().erased == [FLASH + 0x200]
