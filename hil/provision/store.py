"""The record store: one row per unit (identity, sealed keys, result) and one per step, in SQL.

WHY SQLALCHEMY CORE. The same code runs on the default SQLite file (one file, no server) and on
PostgreSQL (``postgresql+psycopg://...``) when several stations share a database: SQLAlchemy
gives one dialect-neutral schema, unique constraints, row locks (``SELECT ... FOR UPDATE``) and
transactions on both, without an ORM's session state. Plain DB-API would mean two SQL dialects.

SCHEMA (``SCHEMA_VERSION`` 1; created on first use, checked on every open):

``units``            one row per physical unit
  id                 integer primary key
  unit_uid           text, UNIQUE: what identifies the physical unit: ``swd:<MCU unique ID hex>``
                     or ``label:<DevEUI of its pre-printed label>``; keys the in-progress record, so
                     a resumed unit gets its first identity back, never a second one
  dev_eui            text (16 lower-case hex), UNIQUE: the database refuses a second unit with it
  join_eui           text
  eui_block, serial  the IEEE block range and serial the DevEUI came from (NULL for label DevEUIs);
                     UNIQUE together
  label              the TR005 payload printed or scanned for the unit (no secret in it)
  lorawan_version    text
  app_key_enc        AES-GCM(KEK) of the AppKey: nonce | ciphertext | tag, AAD = unit DevEUI and
                     field name (:mod:`hil.provision.kek`); never the key in clear
  nwk_key_enc        the same for the NwkKey (LoRaWAN 1.1), else NULL
  kek_id             which KEK sealed them (an HMAC of the KEK, not the KEK)
  mcu_uid            the MCU's unique ID (hex), when read through SWD
  firmware_sha256    the image flashed (NULL when the station does not flash)
  status             ``in_progress``, ``passed`` or ``failed``
  attempts           how many times the unit went through the flow
  batch, station_id, operator
  created_at, updated_at, finished_at, sorted_at   ISO-8601 UTC; ``sorted_at``: the handler put the
                     unit in its bin (a passed unit present again after that is a duplicate)
``steps``            one row per step of each attempt
  id, unit_id (-> units.id), attempt, seq, name, status (``passed``/``failed``/``error``/``skipped``),
  started_at, real_s, rig_s, measurement, value, unit, low, high, detail
``eui_counters``     block (primary key) -> next_serial: the serial counter of each EUI range
``meta``             key -> value (``schema_version``)
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from hil.lorawan.types import EUI64
from hil.provision.identity import EuiBlock, RootKeys
from hil.provision.kek import KeyEncryptor

__all__ = [
    "SCHEMA_VERSION",
    "AlreadyProvisioned",
    "Claim",
    "DuplicateDevEui",
    "RecordStore",
    "StepRecord",
    "StoreError",
    "UnitRecord",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
STATUSES = ("in_progress", "passed", "failed")
STEP_STATUSES = ("passed", "failed", "error", "skipped")

metadata = MetaData()

units = Table(
    "units", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_uid", String(80), nullable=False, unique=True),
    Column("dev_eui", String(16), nullable=False, unique=True),
    Column("join_eui", String(16), nullable=False),
    Column("eui_block", String(64)),
    Column("serial", BigInteger),  # a 40-bit serial of an MA-L block: past a 32-bit INTEGER
    Column("label", Text),
    Column("lorawan_version", String(8), nullable=False),
    Column("app_key_enc", LargeBinary(64), nullable=False),
    Column("nwk_key_enc", LargeBinary(64)),
    Column("kek_id", String(32), nullable=False),
    Column("mcu_uid", String(64)),
    Column("firmware_sha256", String(64)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("batch", String(64), nullable=False),
    Column("station_id", String(64), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("sorted_at", String(32)),
    UniqueConstraint("eui_block", "serial", name="uq_units_block_serial"),
    CheckConstraint(f"status IN {STATUSES}", name="ck_units_status"),
)

steps = Table(
    "steps", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("name", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("real_s", Float, nullable=False),
    Column("rig_s", Float, nullable=False),
    Column("measurement", String(32)),
    Column("value", Float),
    Column("unit", String(8)),
    Column("low", Float),
    Column("high", Float),
    Column("detail", Text),
    CheckConstraint(f"status IN {STEP_STATUSES}", name="ck_steps_status"),
)

eui_counters = Table(
    "eui_counters", metadata,
    Column("block", String(64), primary_key=True),
    Column("next_serial", BigInteger, nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", String(32), primary_key=True),
    Column("value", String(64), nullable=False),
)


class StoreError(RuntimeError):
    """The store cannot be used (unreachable, another schema, another KEK)."""


class AlreadyProvisioned(Exception):
    """The unit passed before and was sorted: a second attempt needs ``--rework``."""

    def __init__(self, record: "UnitRecord") -> None:
        super().__init__(f"unit {record.unit_uid} already passed as DevEUI {record.dev_eui.upper()} "
                         f"(batch {record.batch}, {record.finished_at}); refused: use --rework to test it again")
        self.record = record


class DuplicateDevEui(Exception):
    """The DevEUI is recorded for another unit (a label printed twice, or a misread)."""


@dataclass(frozen=True)
class UnitRecord:
    """A unit's row, without its sealed keys."""

    id: int
    unit_uid: str
    dev_eui: str
    join_eui: str
    eui_block: str | None
    serial: int | None
    label: str | None
    lorawan_version: str
    kek_id: str
    mcu_uid: str | None
    firmware_sha256: str | None
    status: str
    attempts: int
    batch: str
    station_id: str
    operator: str
    created_at: str
    updated_at: str
    finished_at: str | None
    sorted_at: str | None


@dataclass(frozen=True)
class StepRecord:
    """One step's row."""

    unit_id: int
    attempt: int
    seq: int
    name: str
    status: str
    started_at: str
    real_s: float
    rig_s: float
    measurement: str | None = None
    value: float | None = None
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Claim:
    """What the store decided for a unit: its record, its keys, and how it came to be."""

    record: UnitRecord
    keys: RootKeys
    new: bool  # a fresh identity was allocated now
    finish_sorting: bool = False  # it passed, but the run stopped before the handler binned it


_UNIT_COLUMNS = [c for c in units.c if c.name not in ("app_key_enc", "nwk_key_enc")]


def _record(row: Any) -> UnitRecord:
    return UnitRecord(**{c.name: row._mapping[c.name] for c in _UNIT_COLUMNS})


class RecordStore:
    """The provisioning records at ``url`` (``sqlite:///path`` or any SQLAlchemy URL), keys sealed by ``encryptor``."""

    def __init__(self, url: str, encryptor: KeyEncryptor, *, now: Callable[[], float] | None = None) -> None:
        self.url = url
        self.encryptor = encryptor
        self._now = now
        try:
            self.engine = self._engine(url)
            with self.engine.begin() as conn:
                metadata.create_all(conn)
                found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
                if found is None:
                    conn.execute(insert(meta).values(key="schema_version", value=SCHEMA_VERSION))
                elif found != SCHEMA_VERSION:
                    raise StoreError(f"record store {self.where}: schema version {found}, this station writes "
                                     f"{SCHEMA_VERSION}")
        except OperationalError as exc:
            raise StoreError(f"record store {self.where}: {exc.orig}") from None

    @property
    def where(self) -> str:
        """The URL without a password."""
        try:
            return self.engine.url.render_as_string(hide_password=True)
        except AttributeError:
            return self.url.split("@")[-1]

    @staticmethod
    def _engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            from pathlib import Path

            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})

            @event.listens_for(engine, "connect")
            def _connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, begins transactions
                dbapi_conn.execute("PRAGMA foreign_keys = ON")

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock first: no upgrade deadlocks
            return engine
        return create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"RecordStore({self.where!r})"

    def timestamp(self) -> str:
        """Now (the station clock's Unix time), ISO-8601 UTC."""
        import time

        seconds = self._now() if self._now is not None else time.time()
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds")

    # -- claiming a unit -------------------------------------------------------------------------

    def claim(
        self,
        unit_uid: str,
        *,
        batch: str,
        station_id: str,
        operator: str,
        lorawan_version: str,
        join_eui: EUI64,
        keys_factory: Callable[[], RootKeys],
        block: EuiBlock | None = None,
        dev_eui: EUI64 | None = None,
        label: Callable[[EUI64], str | None] | str | None = None,
        mcu_uid: str | None = None,
        rework: bool = False,
    ) -> Claim:
        """The unit's record: its existing identity (an interrupted or failed unit, or a rework), or a new one.

        A new identity takes ``dev_eui`` (from a label) or the next serial of ``block``; the keys
        from ``keys_factory`` are sealed and stored in the same transaction, before anything is
        written to the unit. A unit that passed and was sorted raises :class:`AlreadyProvisioned`
        unless ``rework``. A DevEUI recorded for another unit raises :class:`DuplicateDevEui`.
        """
        if (block is None) == (dev_eui is None):
            raise ValueError("claim needs exactly one of block (allocate) or dev_eui (from a label)")
        for attempt in range(8):
            try:
                with self.engine.begin() as conn:
                    return self._claim(conn, unit_uid, batch, station_id, operator, lorawan_version, join_eui,
                                       keys_factory, block, dev_eui, label, mcu_uid, rework)
            except IntegrityError as exc:
                if dev_eui is not None and "dev_eui" in str(exc.orig):
                    with self.engine.connect() as conn:
                        other = conn.execute(select(units.c.unit_uid).where(units.c.dev_eui == str(dev_eui))).scalar()
                    raise DuplicateDevEui(f"DevEUI {str(dev_eui).upper()} is already recorded for unit {other}; "
                                          f"unit {unit_uid} cannot take it (a label printed twice, or misread)") from None
                log.info("record store: another station took the same serial; allocating again (%d)", attempt + 1)
        raise StoreError(f"record store {self.where}: could not allocate a DevEUI after 8 attempts")

    def _claim(self, conn: Connection, unit_uid: str, batch: str, station_id: str, operator: str, version: str,
               join_eui: EUI64, keys_factory: Callable[[], RootKeys], block: EuiBlock | None, dev_eui: EUI64 | None,
               label: Callable[[EUI64], str | None] | str | None, mcu_uid: str | None, rework: bool) -> Claim:
        now = self.timestamp()
        row = conn.execute(select(units).where(units.c.unit_uid == unit_uid).with_for_update()).first()
        if row is not None:
            record = _record(row)
            keys = self._open_keys(row)
            if record.status == "passed" and record.sorted_at is None:
                return Claim(record, keys, new=False, finish_sorting=True)
            if record.status == "passed" and not rework:
                raise AlreadyProvisioned(record)
            if dev_eui is not None and str(dev_eui) != record.dev_eui:
                raise DuplicateDevEui(f"unit {unit_uid} is recorded as DevEUI {record.dev_eui.upper()}, its label "
                                      f"now reads {str(dev_eui).upper()}: check the label")
            conn.execute(update(units).where(units.c.id == record.id).values(
                status="in_progress", attempts=units.c.attempts + (0 if record.status == "in_progress" else 1),
                updated_at=now, finished_at=None, sorted_at=None, batch=batch, station_id=station_id,
                operator=operator, mcu_uid=mcu_uid or record.mcu_uid))
            fresh = conn.execute(select(units).where(units.c.id == record.id)).first()
            return Claim(_record(fresh), keys, new=False)
        serial = None
        if block is not None:
            counter = conn.execute(select(eui_counters.c.next_serial).where(eui_counters.c.block == block.name)
                                   .with_for_update()).scalar()
            if counter is None:
                used = conn.execute(select(func.max(units.c.serial)).where(units.c.eui_block == block.name)).scalar()
                counter = block.first_serial if used is None else used + 1
                conn.execute(insert(eui_counters).values(block=block.name, next_serial=counter + 1))
            else:
                conn.execute(update(eui_counters).where(eui_counters.c.block == block.name)
                             .values(next_serial=counter + 1))
            serial = counter
            dev_eui = block.dev_eui(serial)  # EuiBlockExhausted past the range
        assert dev_eui is not None
        keys = keys_factory()
        enc = self.encryptor
        text = label(dev_eui) if callable(label) else label
        values = dict(
            unit_uid=unit_uid, dev_eui=str(dev_eui), join_eui=str(join_eui), eui_block=block.name if block else None,
            serial=serial, label=text, lorawan_version=version,
            app_key_enc=enc.seal(keys.app_key, dev_eui, "app_key"),
            nwk_key_enc=enc.seal(keys.nwk_key, dev_eui, "nwk_key") if keys.nwk_key is not None else None,
            kek_id=enc.kek_id, mcu_uid=mcu_uid, status="in_progress", attempts=1, batch=batch, station_id=station_id,
            operator=operator, created_at=now, updated_at=now,
        )
        new_id = conn.execute(insert(units).values(**values)).inserted_primary_key[0]
        row = conn.execute(select(units).where(units.c.id == new_id)).first()
        return Claim(_record(row), keys, new=True)

    def _open_keys(self, row: Any) -> RootKeys:
        m = row._mapping
        if m["kek_id"] != self.encryptor.kek_id:
            raise StoreError(f"unit {m['unit_uid']}: its keys were sealed with KEK id {m['kek_id']}, this station "
                             f"has KEK id {self.encryptor.kek_id}: start it with the KEK of that store")
        dev_eui = EUI64.parse(m["dev_eui"])
        app_key = self.encryptor.open(m["app_key_enc"], dev_eui, "app_key", "AppKey")
        nwk_key = self.encryptor.open(m["nwk_key_enc"], dev_eui, "nwk_key", "NwkKey") if m["nwk_key_enc"] else None
        return RootKeys(app_key, nwk_key)

    # -- results -----------------------------------------------------------------------------------

    def record_step(self, step: StepRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(steps).values(**step.__dict__))

    def set_fields(self, unit_id: int, **fields: Any) -> None:
        """Update plain columns of a unit (``firmware_sha256``, ``mcu_uid``, ``label``)."""
        allowed = {"firmware_sha256", "mcu_uid", "label"}
        if not set(fields) <= allowed:
            raise ValueError(f"set_fields: only {sorted(allowed)}")
        with self.engine.begin() as conn:
            conn.execute(update(units).where(units.c.id == unit_id).values(**fields, updated_at=self.timestamp()))

    def finish(self, unit_id: int, passed: bool) -> None:
        """The unit's result: passed or failed."""
        now = self.timestamp()
        with self.engine.begin() as conn:
            conn.execute(update(units).where(units.c.id == unit_id).values(
                status="passed" if passed else "failed", finished_at=now, updated_at=now))

    def mark_sorted(self, unit_id: int) -> None:
        """The handler put the unit in its bin."""
        now = self.timestamp()
        with self.engine.begin() as conn:
            conn.execute(update(units).where(units.c.id == unit_id).values(sorted_at=now, updated_at=now))

    # -- reading -------------------------------------------------------------------------------------

    def unit(self, unit_uid: str) -> UnitRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_UNIT_COLUMNS).where(units.c.unit_uid == unit_uid)).first()
        return _record(row) if row is not None else None

    def units(self, batch: str | None = None, status: str | None = None) -> list[UnitRecord]:
        query = select(*_UNIT_COLUMNS).order_by(units.c.id)
        if batch is not None:
            query = query.where(units.c.batch == batch)
        if status is not None:
            query = query.where(units.c.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def passed_count(self, batch: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(units).where(
                units.c.batch == batch, units.c.status == "passed")).scalar() or 0)

    def steps(self, unit_id: int) -> list[StepRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(steps).where(steps.c.unit_id == unit_id).order_by(steps.c.id))
            return [StepRecord(**{k: v for k, v in r._mapping.items() if k != "id"}) for r in rows]

    def all_steps(self) -> Iterator[StepRecord]:
        with self.engine.connect() as conn:
            for r in conn.execute(select(steps).order_by(steps.c.id)):
                yield StepRecord(**{k: v for k, v in r._mapping.items() if k != "id"})

    def keys(self, record: UnitRecord) -> RootKeys:
        """The unit's keys, opened with the KEK (for exports; never logged)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(units).where(units.c.id == record.id)).first()
        if row is None:
            raise StoreError(f"unit {record.unit_uid} is not in the store")
        return self._open_keys(row)
