"""The record store: allocation, resume without a second identity, duplicate refusal, keys sealed at rest."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from hil.lorawan.types import EUI64
from hil.provision.identity import EuiBlock, generate_root_keys
from hil.provision.kek import KeyEncryptor
from hil.provision.store import AlreadyProvisioned, DuplicateDevEui, RecordStore, StepRecord, StoreError, units
from tests.unit.provision.postgres import data_folder_bytes

BLOCK = EuiBlock("70B3D5", first_serial=0x7ED2000000, last_serial=0x7ED20000FF)
JOIN_EUI = EUI64(0x70B3D57ED00000FF)


def _store(url: str, kek: bytes = bytes(range(32))) -> RecordStore:
    return RecordStore(url, KeyEncryptor(kek), now=lambda: 1_700_000_000.0)


def _claim(store: RecordStore, uid: str, version: str = "1.0.4", **kwargs):  # type: ignore[no-untyped-def]
    args = dict(batch="B1", station_id="st-1", operator="op", lorawan_version=version, join_eui=JOIN_EUI,
                keys_factory=lambda: generate_root_keys(version))
    args.update(kwargs)
    if "dev_eui" not in args:
        args.setdefault("block", BLOCK)
    return store.claim(uid, **args)


def test_new_units_take_consecutive_serials_and_fresh_keys(store_url: str) -> None:
    store = _store(store_url)
    a, b = _claim(store, "swd:aa"), _claim(store, "swd:bb")
    assert a.new and b.new
    assert (a.record.dev_eui, b.record.dev_eui) == ("70b3d57ed2000000", "70b3d57ed2000001")
    assert (a.record.serial, b.record.serial) == (0x7ED2000000, 0x7ED2000001)
    assert a.keys.app_key != b.keys.app_key and a.record.status == "in_progress"


def test_an_interrupted_unit_gets_its_identity_back_not_a_second_one(store_url: str) -> None:
    path = store_url
    first = _claim(_store(path), "swd:aa")
    again = _claim(_store(path), "swd:aa")  # the station restarted: a new process, the same unit
    assert not again.new and again.record.dev_eui == first.record.dev_eui
    assert again.keys.app_key == first.keys.app_key and again.record.attempts == 1
    assert len(_store(path).units()) == 1
    assert _claim(_store(path), "swd:bb").record.serial == first.record.serial + 1  # no gap, no reuse


def test_a_passed_unit_is_refused_unless_rework(store_url: str) -> None:
    store = _store(store_url)
    claim = _claim(store, "swd:aa")
    store.finish(claim.record.id, passed=True)
    resumed = _claim(store, "swd:aa")  # passed but not binned yet: finish sorting it
    assert resumed.finish_sorting and resumed.record.dev_eui == claim.record.dev_eui
    store.mark_sorted(claim.record.id)
    with pytest.raises(AlreadyProvisioned, match="--rework"):
        _claim(store, "swd:aa")
    rework = _claim(store, "swd:aa", rework=True)
    assert rework.record.dev_eui == claim.record.dev_eui and rework.keys.app_key == claim.keys.app_key
    assert rework.record.attempts == 2 and rework.record.status == "in_progress"


def test_a_failed_unit_is_retested_with_its_identity(store_url: str) -> None:
    store = _store(store_url)
    claim = _claim(store, "swd:aa")
    store.finish(claim.record.id, passed=False)
    store.mark_sorted(claim.record.id)
    again = _claim(store, "swd:aa")
    assert again.record.dev_eui == claim.record.dev_eui and again.record.attempts == 2


def test_the_database_enforces_unique_deveuis(store_url: str) -> None:
    store = _store(store_url)
    _claim(store, "label:1", dev_eui=EUI64(0x70B3D57ED2000001))
    with pytest.raises(DuplicateDevEui, match="already recorded for unit label:1"):
        _claim(store, "swd:other", dev_eui=EUI64(0x70B3D57ED2000001))
    row = {c.name: None for c in units.c if c.name != "id"}
    row.update(unit_uid="x", dev_eui="70b3d57ed2000001", join_eui="0", lorawan_version="1.0.4", app_key_enc=b"",
               kek_id="k", status="passed", attempts=1, batch="B", station_id="s", operator="o", created_at="t",
               updated_at="t")
    with pytest.raises(IntegrityError, match="(?i)unique"):  # the constraint itself, not only the station's check
        with store.engine.begin() as conn:
            conn.execute(insert(units).values(**row))


def test_plaintext_keys_are_nowhere_in_the_database_files(store_url: str, tmp_path: Path) -> None:
    store = _store(store_url)
    claims = [_claim(store, f"swd:{i:02x}", version="1.1") for i in range(20)]
    for claim in claims:
        store.record_step(StepRecord(claim.record.id, 1, 0, "identify", "passed", "t", 0.1, 1.0))
        store.finish(claim.record.id, passed=True)
    with store.engine.connect() as conn:  # the columns hold ciphertext of the documented size
        sizes = {len(r[0]) for r in conn.execute(select(units.c.app_key_enc, units.c.nwk_key_enc))}
    store.close()
    assert sizes == {44}
    if store_url.startswith("sqlite"):  # the file and any journal beside it
        blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    else:  # the whole cluster: tables, indexes and write-ahead log
        blob = data_folder_bytes(store_url)
    assert claims[-1].record.dev_eui.encode() in blob  # the scan does see the rows (so it could see a key)
    for claim in claims:
        for key in (claim.keys.app_key, claim.keys.nwk_key):
            assert key is not None
            raw = key.reveal()
            for form in (raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)):
                assert form not in blob
    reopened = _store(store_url)  # round trip through the database
    assert reopened.keys(reopened.units()[0]) == claims[0].keys


def test_another_kek_is_named_not_silently_wrong(store_url: str) -> None:
    _claim(_store(store_url), "swd:aa")
    with pytest.raises(StoreError, match="KEK id"):
        _claim(_store(store_url, kek=bytes(32)), "swd:aa")


def test_steps_and_counts(store_url: str) -> None:
    store = _store(store_url)
    claim = _claim(store, "swd:aa")
    store.record_step(StepRecord(claim.record.id, 1, 5, "sleep_current", "passed", "t", 0.03, 0.6,
                                 "sleep_current", 0.0015, "A", 0.0005, 0.003))
    store.finish(claim.record.id, passed=True)
    assert store.passed_count("B1") == 1 and store.passed_count("other") == 0
    (step,) = store.steps(claim.record.id)
    assert (step.measurement, step.value, step.unit, step.low, step.high) == ("sleep_current", 0.0015, "A", 0.0005,
                                                                               0.003)


def test_two_stations_allocating_at_once_take_distinct_consecutive_serials(store_url: str) -> None:
    """Several stations on one database: the counter row lock (or a retry after a unique-key clash)
    gives every unit its own serial, none skipped."""
    stations = [_store(store_url), _store(store_url)]
    claimed: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def station(index: int) -> None:
        try:
            start.wait(30)
            for n in range(10):
                claim = _claim(stations[index], f"swd:{index}-{n}", station_id=f"st-{index}")
                claimed.append(claim.record.serial)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=station, args=(i,), name=f"station-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for store in stations:
        store.close()
    assert not errors, errors
    assert sorted(claimed) == list(range(BLOCK.first_serial, BLOCK.first_serial + 20))
    assert len({u.dev_eui for u in _store(store_url).units()}) == 20
