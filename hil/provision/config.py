"""The station config: what a provisioning station does, as YAML data (``rigs/stations/*.yaml``).

::

    station_id: line-1-station-3
    operator: alice                   # default; --operator overrides
    batch: PO-4711                    # default; --batch overrides
    lorawan: {version: "1.0.4", device_class: C, join_eui: 70b3d57ed00000ff}
    identity:
      unit_id: swd                    # what keys the in-progress record: the MCU unique ID (swd) or the label
      dev_eui: eui_block              # where the DevEUI comes from: eui_block (+ serial counter) or label
      eui_block: {prefix: 70B3D5, first_serial: 0x7ED10000, last_serial: 0x7ED1FFFF}
    write: {method: swd}              # identity into NVM through SWD, or console (the AT dialect)
    limits:                           # with units; checked as measurements
      sleep_current: {min: 0.5 mA, max: 3 mA}
      tx_current: {min: 20 mA, max: 80 mA}
      mains_on: {min: 207 V, max: 253 V}
      mains_off: {max: 10 V}
    kek: ${env:HIL_PROVISION_KEK}     # or {file: keys/station.kek}
    store: {path: station.sqlite}     # or {url: postgresql+psycopg://...}

Paths are relative to the station file. Unknown keys are errors; every error names the file and
the key path. The KEK is resolved only when the station starts (:func:`hil.provision.kek.load_kek`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64
from hil.provision.identity import EuiBlock, EuiBlockError
from hil.provision.measure import Limit, QuantityError, parse_quantity
from hil.rigfile.model import NvmField

__all__ = ["StationConfig", "StationConfigError", "load_station"]

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIONS_DIR = REPO_ROOT / "rigs" / "stations"


class StationConfigError(ValueError):
    """A station file is unreadable or invalid; each line names ``file: key.path: problem``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, arbitrary_types_allowed=True)


def _eui(value: Any) -> Any:
    if isinstance(value, EUI64):
        return value
    if isinstance(value, str):
        try:
            return EUI64.parse(value)
        except FrameError as exc:
            raise ValueError(str(exc).split(" (field")[0]) from None
    hint = " (quote it: YAML reads unquoted digits as a number)" if isinstance(value, int) else ""
    raise ValueError(f"expected 16 hex digits as a string{hint}")


EuiField = Annotated[EUI64, BeforeValidator(_eui)]


def _int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError("expected an integer (hex as 0x...)") from None
    return value


IntField = Annotated[int, BeforeValidator(_int)]


def _limit(unit: str) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if isinstance(value, Limit):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"expected {{min: ..., max: ...}} with units ({unit})")
        unknown = sorted(set(value) - {"min", "max"})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}: a limit is {{min: ..., max: ...}}")
        lo, hi = value.get("min"), value.get("max")
        if lo is None and hi is None:
            raise ValueError("give min, max or both")
        try:
            low = parse_quantity(lo, unit) if lo is not None else None
            high = parse_quantity(hi, unit) if hi is not None else None
        except QuantityError as exc:
            raise ValueError(str(exc)) from None
        if low is not None and high is not None and low > high:
            raise ValueError(f"min {lo} is above max {hi}")
        return Limit(unit, low, high)

    return BeforeValidator(convert)


CurrentLimit = Annotated[Limit, _limit("A")]
VoltageLimit = Annotated[Limit, _limit("V")]


class LoRaWANSettings(_Model):
    version: Literal["1.0.2", "1.0.3", "1.0.4", "1.1"] = "1.0.4"
    device_class: Literal["A", "C"] = "A"
    join_eui: EuiField


class EuiBlockSettings(_Model):
    prefix: str
    first_serial: IntField = 0
    last_serial: IntField | None = None

    def block(self) -> EuiBlock:
        return EuiBlock(self.prefix, self.first_serial, self.last_serial)


class LabelSettings(_Model):
    """The labels this station prints (TR005 payload with a PNG QR code)."""

    vendor_id: IntField = Field(0xFFFF, ge=0, le=0xFFFF)  # the LoRa Alliance VendorID of the product
    model_id: IntField = Field(0x0001, ge=0, le=0xFFFF)
    checksum: bool = True
    png: bool = True


class IdentitySettings(_Model):
    unit_id: Literal["swd", "label"] = "swd"
    dev_eui: Literal["eui_block", "label"] = "eui_block"
    eui_block: EuiBlockSettings | None = None
    label: LabelSettings = LabelSettings()

    @model_validator(mode="after")
    def _sources(self) -> "IdentitySettings":
        if self.dev_eui == "eui_block":
            if self.eui_block is None:
                raise ValueError("dev_eui: eui_block needs an eui_block: {prefix: ..., first_serial: ...}")
            try:
                self.eui_block.block()
            except EuiBlockError as exc:
                raise ValueError(str(exc)) from None
        return self


class WriteSettings(_Model):
    """How the identity reaches the DUT. ``swd_fields`` maps NVM layout fields (of the rig file's
    ``dut.swd.nvm_layout``) to ``dev_eui``, ``join_eui``, ``app_key``, ``nwk_key`` or a constant."""

    method: Literal["console", "swd"] = "console"
    nvm_layout: dict[str, NvmField] = Field(default_factory=dict)  # identity fields, over dut.swd.nvm_layout
    swd_fields: dict[str, str | int] = Field(default_factory=lambda: {
        "dev_eui": "dev_eui", "join_eui": "join_eui", "app_key": "app_key", "nwk_key": "nwk_key"})
    boot_timeout_s: float = Field(30.0, gt=0)


class FirmwareSettings(_Model):
    image: Path | None = None  # None: the rig file's dut.swd.firmware, else no flashing
    flash: bool = True
    verify: bool = True


class TestSettings(_Model):
    """The functional test over the air."""

    __test__ = False  # not a pytest class
    join_timeout_s: float = Field(120.0, gt=0)
    uplink_port: int = Field(2, ge=1, le=223)
    # a long uplink keeps the radio in TX long enough for the supply to sample it (SF7: ~0.3 s for 200 B)
    uplink_payload_bytes: int = Field(200, ge=1, le=222)
    uplink_timeout_s: float = Field(90.0, gt=0)
    sample_interval_s: float = Field(0.01, gt=0)  # rig seconds between supply current readings
    tx_attempts: int = Field(3, ge=1, le=10)  # uplinks tried before a low TX reading counts as a failure
    sleep_settle_s: float = Field(0.5, ge=0)
    sleep_samples: int = Field(3, ge=1, le=50)
    relay_timeout_s: float = Field(60.0, gt=0)
    boot_timeout_s: float = Field(30.0, gt=0)


class Limits(_Model):
    sleep_current: CurrentLimit
    tx_current: CurrentLimit
    mains_on: VoltageLimit
    mains_off: VoltageLimit


class StoreSettings(_Model):
    path: Path | None = None  # SQLite file, relative to the station file
    url: str | None = None  # any SQLAlchemy URL (postgresql+psycopg://...): several stations, one database

    @model_validator(mode="after")
    def _one(self) -> "StoreSettings":
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path (SQLite file) or url")
        return self


class ChirpStackExport(_Model):
    application_id: str = ""  # the ChirpStack application (UUID) the devices go to
    device_profile_id: str = ""  # the device profile (UUID)


class TtsExport(_Model):
    frequency_plan_id: str = "EU_863_870_TTN"
    lorawan_phy_version: str = "RP002_V1_0_3"  # Regional Parameters version (TTS PHYVersion)


class ExportSettings(_Model):
    dir: Path = Path("../../reports/provision")
    chirpstack: ChirpStackExport = ChirpStackExport()
    tts: TtsExport = TtsExport()


class StationConfig(_Model):
    """A whole station file. Load one with :func:`load_station`."""

    station_id: str = Field(min_length=1, max_length=64)
    operator: str = Field("unknown", min_length=1, max_length=64)
    batch: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    lorawan: LoRaWANSettings
    identity: IdentitySettings
    firmware: FirmwareSettings = FirmwareSettings()
    write: WriteSettings = WriteSettings()
    test: TestSettings = TestSettings()
    limits: Limits
    kek: Any  # "${env:NAME}", {file: path} or a literal; resolved when the station starts
    store: StoreSettings
    exports: ExportSettings = ExportSettings()
    max_consecutive_failures: int = Field(3, ge=1)
    base_dir: Path = Path(".")  # the station file's folder (set by load_station)

    @field_validator("kek")
    @classmethod
    def _kek_form(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, dict) and set(value) == {"file"}):
            return value
        raise ValueError("expected ${env:NAME}, {file: path} or the key itself (64 hex digits)")

    def resolve(self, path: Path) -> Path:
        """``path`` relative to the station file's folder."""
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def store_url(self) -> str:
        if self.store.url is not None:
            return self.store.url
        assert self.store.path is not None
        return f"sqlite:///{self.resolve(self.store.path)}"

    @property
    def exports_dir(self) -> Path:
        return self.resolve(self.exports.dir)


def resolve_station_path(ref: str | Path) -> Path:
    """A bare name is ``rigs/stations/<name>.yaml``; anything else a path."""
    text = str(ref)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        return STATIONS_DIR / f"{text}.yaml"
    return Path(text)


def load_station(ref: str | Path, **overrides: Any) -> StationConfig:
    """Read and validate a station file; ``overrides`` replace top-level keys (``batch="B7"``)."""
    path = resolve_station_path(ref)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in STATIONS_DIR.glob("*.yaml")))
        raise StationConfigError(f"{path}: no such station file (stations in {STATIONS_DIR}: {known})") from None
    except OSError as exc:
        raise StationConfigError(f"{path}: cannot read the station file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise StationConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', type(exc).__name__)}") from None
    if not isinstance(data, dict):
        raise StationConfigError(f"{path}: expected a mapping (station_id, lorawan, limits, kek, store, ...)")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}, "base_dir": path.parent.resolve()}
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "required key missing"
            problems.append(f"{path}: {where}: {message}")
        raise StationConfigError("\n".join(problems)) from None
