"""The virtual DUT's data EEPROM (timed word commits, torn writes, file image), its layout, the
MAC's storage on it, and the SWD memory map."""

from __future__ import annotations

import os

import pytest

from hil.clock import ManualClock
from hil.lorawan.crypto import AESKey
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr
from hil.sim.dut import memory
from hil.sim.dut.interfaces import MacState
from hil.sim.dut.memory import (
    EEPROM_BASE,
    FLASH_BASE,
    FLASH_PAGE,
    SRAM_BASE,
    DutMemory,
    FlashEraseError,
    FlashProgramError,
    MemoryAccessError,
)
from hil.sim.dut.nvm import (
    Key256,
    Nvm,
    NvmFileError,
    NvmLayout,
    NvmLayoutError,
    NvmMacStorage,
    NvmRangeError,
    NvmView,
)
from hil.sim.scheduler import Scheduler

W = 0.0035  # word write time


@pytest.fixture
def sched() -> Scheduler:
    return Scheduler(ManualClock())


def words(data: bytes) -> list[bytes]:
    return [data[i : i + 4] for i in range(0, len(data), 4)]


# --- raw region: timing and torn writes -------------------------------------------------------


def test_words_commit_one_at_a_time_and_on_done_after_the_last(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    done: list[float] = []
    nvm.write(0x10, bytes(range(1, 9)), on_done=lambda: done.append(sched.clock.now()))
    assert nvm.read(0x10, 8) == bytes(range(1, 9))  # the CPU reads its queued writes
    assert nvm.read_committed(0x10, 8) == bytes(8)
    sched.run_until(W * 1.5)
    assert nvm.read_committed(0x10, 8) == bytes([1, 2, 3, 4, 0, 0, 0, 0])
    assert done == []
    sched.run_until(W * 3)
    assert nvm.read_committed(0x10, 8) == bytes(range(1, 9))
    assert done == [pytest.approx(2 * W)]
    assert not nvm.busy and nvm.words_committed == 2


@pytest.mark.parametrize("field,size", [("app_key", 16), ("relay_key", 32), ("used_dev_nonces", 128)])
def test_torn_write_at_every_word_boundary(sched: Scheduler, field: str, size: int) -> None:
    layout = NvmLayout.default()
    offset = layout.field(field).offset
    old, new = bytes([0xA5]) * size, bytes(range(1, size + 1))
    n_words = size // 4
    for k in range(n_words + 1):  # cut after k committed words
        s = Scheduler(ManualClock())
        nvm = Nvm(s)
        nvm.poke(offset, old)
        done: list[bool] = []
        nvm.write(offset, new, on_done=lambda: done.append(True))
        s.run_until(k * W + W / 2)
        dropped = nvm.power_lost()
        assert dropped == n_words - k
        got = nvm.read_committed(offset, size)
        assert words(got) == words(new)[:k] + words(old)[k:], f"cut after {k} words"
        assert nvm.read(offset, size) == got  # queued words are gone from the firmware's view too
        assert done == ([True] if k == n_words else [])
        s.run_for(1.0)
        assert nvm.read_committed(offset, size) == got  # nothing comes back later


def test_a_cut_drops_the_batches_queued_behind(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    calls: list[str] = []
    nvm.write(0, b"\x01" * 8, on_done=lambda: calls.append("a"))
    nvm.write(8, b"\x02" * 4, on_done=lambda: calls.append("b"))
    nvm.when_idle(lambda: calls.append("idle"))
    sched.run_until(W * 2.5)
    assert calls == ["a"]
    assert nvm.power_lost() == 1
    sched.run_for(1)
    assert calls == ["a"] and nvm.read_committed(0, 12) == b"\x01" * 8 + b"\x00" * 4


def test_partial_words_merge_with_their_neighbours(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    nvm.poke(0, b"\x11\x22\x33\x44\x55\x66\x77\x88")
    nvm.write(3, b"\xAA\xBB")  # straddles two words: both rewritten around the two bytes
    nvm.write(2, b"\xCC")  # same word again, queued behind: keeps the first write's byte
    sched.run_for(1)
    assert nvm.read_committed(0, 8) == b"\x11\x22\xCC\xAA\xBB\x66\x77\x88"
    assert nvm.words_committed == 3


def test_erase_all_and_when_idle(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    nvm.poke(0, b"\x01\x02")
    nvm.poke(0x400, b"\x03")
    idle: list[float] = []
    nvm.erase_all()
    nvm.when_idle(lambda: idle.append(sched.clock.now()))
    sched.run_for(1)
    assert nvm.image() == bytes(2048)
    assert idle == [pytest.approx(2 * W)]  # only the two words that were not erased
    nvm.when_idle(lambda: idle.append(sched.clock.now()))
    sched.run_for(0.001)
    assert len(idle) == 2  # idle: at once


def test_out_of_range_access_is_refused(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    with pytest.raises(NvmRangeError, match="0x08080000..0x080807ff"):
        nvm.write(2047, b"\x00\x00")
    with pytest.raises(NvmRangeError):
        nvm.read(-1, 1)


# --- the image file ------------------------------------------------------------------------------


def test_file_persists_across_instances(sched: Scheduler, tmp_path) -> None:
    path = tmp_path / "dut" / "nvm.bin"
    nvm = Nvm(sched, path)
    assert not path.exists()  # missing = factory-fresh, nothing written yet
    assert nvm.image() == bytes(2048)
    nvm.write(0x80, b"\x07\x00\x00\x00")
    sched.run_for(0.01)
    assert path.read_bytes()[0x80] == 7
    again = Nvm(Scheduler(ManualClock()), path)
    assert again.read(0x80, 4) == b"\x07\x00\x00\x00"
    assert sorted(p.name for p in path.parent.iterdir()) == ["nvm.bin"]  # no temp files left


def test_a_torn_write_is_saved_at_power_loss(sched: Scheduler, tmp_path) -> None:
    path = tmp_path / "nvm.bin"
    nvm = Nvm(sched, path)
    nvm.write(0, b"\xFF" * 12)
    sched.run_until(W * 1.5)
    nvm.power_lost()
    assert Nvm(Scheduler(ManualClock()), path).read(0, 12) == b"\xFF" * 4 + bytes(8)


def test_a_file_of_the_wrong_size_is_an_error_naming_it(sched: Scheduler, tmp_path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"\x01" * 100)
    with pytest.raises(NvmFileError, match=r"short\.bin is 100 bytes; expected a 2048-byte"):
        Nvm(sched, path)
    assert path.read_bytes() == b"\x01" * 100  # never overwritten


# --- layout and typed fields ----------------------------------------------------------------------


def test_layout_addresses_and_the_documented_table() -> None:
    layout = NvmLayout.default()
    assert layout.base_address == 0x08080000 and layout.size == 2048
    assert layout.field("magic").address == 0x08080000
    assert layout.field("dev_nonce").address == 0x08080080
    assert layout.field("relay_expected").address == 0x080801A0
    assert layout.field("used_dev_nonces").count == 64
    table = memory.__doc__.split("NVM_TABLE_START\n")[1].split("\nNVM_TABLE_END")[0]
    assert table == layout.table() == memory.nvm_address_table()


@pytest.mark.parametrize(
    "text,match",
    [
        ("a: {offset: 0, size: 4, type: u32le}\n  b: {offset: 2, size: 2, type: u16le}", "overlap"),
        ("a: {offset: 0, size: 3, type: u32le}", "size says 3"),
        ("a: {offset: 2046, size: 4, type: u32le}", "ends beyond"),
        ("a: {offset: 0, size: 4, type: u32le, enum: [x]}", "enums are u8"),
        ("a: {offset: 0, size: 4, type: u33}", "invalid NVM layout"),
    ],
)
def test_bad_layouts_are_rejected(text: str, match: str) -> None:
    head = "base_address: 0\nsize: 2048\nword_size: 4\nerased_byte: 0\nlayout_version: 1\nmagic: 1\nfields:\n  "
    with pytest.raises(NvmLayoutError, match=match):
        NvmLayout.from_yaml(head + text)


def test_typed_fields_round_trip(sched: Scheduler) -> None:
    view = NvmView(Nvm(sched))
    key = AESKey("000102030405060708090a0b0c0d0e0f", "x")
    view.set(lorawan_version="1.1", activation="abp", data_rate=3, adr=True, dev_eui=EUI64("70b3d57ed0000001"),
             app_key=key, relay_key=bytes(range(32)), relay_expected=0xDEADBEEF, extra_channels=(867_100_000,))
    sched.run_for(1)
    assert view.get_committed("lorawan_version") == "1.1"
    assert view.get("activation") == "abp" and view.get("data_rate") == 3 and view.get("adr") is True
    assert view.get("dev_eui") == EUI64("70b3d57ed0000001")
    # EUIs are stored in on-air (little-endian) order
    assert view.nvm.read(0x10, 8) == bytes.fromhex("010000d07ed5b370")
    assert view.get("app_key") == key and "0001020304" not in repr(view.get("app_key"))
    relay = view.get("relay_key")
    assert isinstance(relay, Key256) and relay.reveal() == bytes(range(32)) and "****" in repr(relay)
    assert view.get("relay_expected") == 0xDEADBEEF
    assert view.get("extra_channels") == (867_100_000, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "name,value,match",
    [
        ("nope", 1, "no NVM field 'nope'; known fields: magic"),
        ("data_rate", 256, r"0\.\.255"),
        ("lorawan_version", "2.0", "must be one of 1.0.2"),
        ("app_key", b"\x00" * 16, "needs an AESKey"),
        ("extra_channels", (1, 2, 3, 4, 5, 6), "holds 5 entries"),
    ],
)
def test_bad_field_values_are_refused(sched: Scheduler, name: str, value: object, match: str) -> None:
    with pytest.raises(NvmLayoutError, match=match):
        NvmView(Nvm(sched)).set(**{name: value})


# --- the MAC's storage -------------------------------------------------------------------------


def keys() -> SessionKeys:
    return SessionKeys(AESKey(bytes([1]) * 16), AESKey(bytes([2]) * 16), AESKey(bytes([3]) * 16),
                       AESKey(bytes([4]) * 16), lorawan_1_1=True)


def test_erased_nvm_loads_the_default_mac_state(sched: Scheduler) -> None:
    assert NvmMacStorage(NvmView(Nvm(sched))).load() == MacState()


def test_mac_state_round_trips(sched: Scheduler) -> None:
    storage = NvmMacStorage(NvmView(Nvm(sched)))
    state = MacState(dev_nonce=513, used_dev_nonces=(7, 9), join_nonce=0, joined=True, dev_addr=DevAddr(0x26011234),
                     session_keys=keys(), fcnt_up=70000, n_fcnt_down=0, a_fcnt_down=5, rx1_dr_offset=2, rx2_dr=3,
                     rx_delay_s=5, extra_channels=(867_100_000, 867_300_000))
    done: list[bool] = []
    storage.persist(lambda: done.append(True), **{k: getattr(state, k) for k in state.__dataclass_fields__})
    sched.run_for(1)
    assert done == [True]
    loaded = storage.load()
    assert loaded == state
    storage.persist(None, join_nonce=None, n_fcnt_down=None, session_keys=None, rx2_dr=None, joined=False)
    sched.run_for(1)
    loaded = storage.load()
    assert (loaded.join_nonce, loaded.n_fcnt_down, loaded.session_keys, loaded.rx2_dr, loaded.joined) == (
        None, None, None, None, False)


def test_persist_writes_only_the_words_of_the_given_fields(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    storage = NvmMacStorage(NvmView(nvm))
    storage.persist(None, fcnt_up=1)
    assert nvm.pending_words == 1
    sched.run_for(1)
    storage.persist(None, n_fcnt_down=9)  # value word + the flags word
    assert nvm.pending_words == 2
    sched.run_for(1)
    storage.persist(None, session_keys=keys())  # 16 key words + flags word
    assert nvm.pending_words == 17


def test_validity_flags_are_written_after_their_values(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    storage = NvmMacStorage(NvmView(nvm))
    storage.persist(None, session_keys=keys(), joined=True, dev_addr=DevAddr(1))
    sched.run_until(17 * W + W / 2)  # everything but the flags word
    nvm.power_lost()
    loaded = storage.load()
    assert loaded.session_keys is None and loaded.joined is False


def test_used_dev_nonce_ring_appends_one_slot_at_a_time_and_wraps(sched: Scheduler) -> None:
    nvm = Nvm(sched)
    storage = NvmMacStorage(NvmView(nvm))
    nonces: tuple[int, ...] = ()
    for n in range(70):
        nonces += (1000 + n,)
        storage.persist(None, used_dev_nonces=nonces)
        assert nvm.pending_words == 2  # the slot's word + the head/count word
        sched.run_for(0.01)
    assert storage.load().used_dev_nonces == nonces[-64:]
    storage.persist(None, used_dev_nonces=(5, 6))  # not an append: the ring is rewritten
    sched.run_for(1)
    assert storage.load().used_dev_nonces == (5, 6)


def test_persist_rejects_unknown_fields_and_guards_on_done(sched: Scheduler) -> None:
    guarded: list[str] = []

    def guard(fn):
        def wrapped() -> None:
            guarded.append("via guard")
            fn()
        return wrapped

    storage = NvmMacStorage(NvmView(Nvm(sched)), guard=guard)
    with pytest.raises(TypeError, match="no field.*dev_nonces.*fields: dev_nonce"):
        storage.persist(None, dev_nonces=1)
    done: list[bool] = []
    storage.persist(lambda: done.append(True), dev_nonce=3)
    sched.run_for(1)
    assert guarded == ["via guard"] and done == [True]


# --- the SWD memory map --------------------------------------------------------------------------


def test_memory_regions_and_vector_table(sched: Scheduler) -> None:
    mem = DutMemory(Nvm(sched))
    assert [(r.name, r.start, r.size) for r in mem.regions()] == [
        ("flash", 0x08000000, 64 * 1024), ("eeprom", 0x08080000, 2048), ("sram", 0x20000000, 16 * 1024)]
    vt = mem.read(FLASH_BASE, 8)
    sp, reset = int.from_bytes(vt[:4], "little"), int.from_bytes(vt[4:], "little")
    assert sp == 0x20004000
    assert reset & 1 and FLASH_BASE <= reset < FLASH_BASE + 64 * 1024
    assert mem.read(FLASH_BASE + 0xF000, 4) == b"\xFF" * 4  # erased flash behind the image
    assert DutMemory(Nvm(sched)).read(FLASH_BASE, 1024) == mem.read(FLASH_BASE, 1024)  # deterministic


@pytest.mark.parametrize("addr,size", [(0x00000000, 4), (0x08010000, 1), (0x0807FFFE, 4), (0x20004000, 1),
                                       (0x080807FE, 4)])
def test_reads_outside_every_region_raise(sched: Scheduler, addr: int, size: int) -> None:
    with pytest.raises(MemoryAccessError, match=f"no memory at 0x{addr:08X}.*flash 0x08000000..0x0800FFFF") as info:
        DutMemory(Nvm(sched)).read(addr, size)
    assert info.value.address == addr


def test_flash_is_nor(sched: Scheduler) -> None:
    mem = DutMemory(Nvm(sched))
    page = FLASH_BASE + 0x8000  # erased
    mem.write(page, b"\x0F\xF0")
    mem.write(page, b"\x0E\x00")  # clearing more bits is fine
    assert mem.read(page, 2) == b"\x0E\x00"
    with pytest.raises(FlashProgramError, match=r"0x08008000 holds 0x0E; programming 0x0F would set bits 0x01"):
        mem.write(page, b"\x0F")
    with pytest.raises(FlashEraseError, match="whole 128-byte pages"):
        mem.erase(page + 4, FLASH_PAGE)
    with pytest.raises(FlashEraseError, match="not flash"):
        mem.erase(SRAM_BASE, FLASH_PAGE)
    mem.erase(page, FLASH_PAGE)
    assert mem.read(page, FLASH_PAGE) == b"\xFF" * FLASH_PAGE
    mem.write(page, b"\x12")
    mem.mass_erase()
    assert mem.read(FLASH_BASE, 4) == b"\xFF" * 4


def test_swd_writes_reach_nvm_at_once_and_sram_is_plain(sched: Scheduler, tmp_path) -> None:
    path = tmp_path / "nvm.bin"
    nvm = Nvm(sched, path)
    mem = DutMemory(nvm)
    view = NvmView(nvm)
    mem.write(view.layout.field("relay_expected").address, (42).to_bytes(4, "little"))
    assert view.get_committed("relay_expected") == 42  # no write latency through SWD
    assert Nvm(Scheduler(ManualClock()), path).read(0x1A0, 4) == (42).to_bytes(4, "little")
    assert mem.read(EEPROM_BASE + 0x1A0, 4) == (42).to_bytes(4, "little")
    mem.write(SRAM_BASE + 16, b"\xAA\x55")
    assert mem.read(SRAM_BASE + 16, 2) == b"\xAA\x55"
    mem.power_lost()
    assert mem.read(SRAM_BASE + 16, 2) == b"\x00\x00"
    assert os.listdir(tmp_path) == ["nvm.bin"]


def test_the_flash_image_names_the_version_the_firmware_reports(sched: Scheduler) -> None:
    mem = DutMemory(Nvm(sched))
    assert mem.image_version() == "1.0.0"  # the factory image
    mem.erase(FLASH_BASE, 2 * FLASH_PAGE)  # the vector table and the version tag after it
    assert mem.image_version() is None  # no tag: the firmware reports the factory defaults' version
    mem.write(FLASH_BASE, memory.fake_firmware_image(2 * FLASH_PAGE, "2.7.1"))
    assert mem.image_version() == "2.7.1"
    mem.restore_factory_image()
    assert mem.image_version() == "1.0.0" and mem.read(FLASH_BASE, 1024) == DutMemory(Nvm(sched)).read(FLASH_BASE, 1024)
    with pytest.raises(ValueError, match="x.y.z"):
        memory.fake_firmware_image(1024, "1.1")


def test_the_virtual_production_image_is_the_generators() -> None:
    """rigs/firmware/relay-node-sim-1.1.0.hex is fake_firmware_image(IMAGE_CODE_SIZE, "1.1.0") at the flash base."""
    from pathlib import Path

    from intelhex import IntelHex

    path = Path(__file__).resolve().parents[3] / "rigs" / "firmware" / "relay-node-sim-1.1.0.hex"
    ih = IntelHex(str(path))
    assert ih.minaddr() == FLASH_BASE
    assert ih.tobinstr() == memory.fake_firmware_image(memory.IMAGE_CODE_SIZE, "1.1.0")
