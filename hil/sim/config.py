"""The ``sim:`` section of a rig file: what the virtual rig emulates and how.

Validated with pydantic; an unknown key is an error naming its path. Keys of the virtual DUT
are ``AESKey`` objects at once, so no repr or error message shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64


class SimConfigError(ValueError):
    """A rig file's ``sim:`` section is malformed; the message names the file and key path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True)


class SimDut(_Model):
    """The virtual relay node and its factory provisioning (keys redact themselves in any repr)."""

    lorawan_version: Literal["1.0.2", "1.0.3", "1.0.4", "1.1"] = "1.0.4"
    activation: Literal["otaa", "abp"] = "otaa"
    device_class: Literal["A", "C"] = "C"
    region: Literal["EU868", "US915"] = "EU868"
    data_rate: int = Field(5, ge=0, le=15)
    dialect: Literal["rak3172", "lora-e5"] = "rak3172"
    dev_eui: EUI64 = EUI64(0x70B3D57ED0000001)
    join_eui: EUI64 = EUI64(0x70B3D57ED00000FF)
    app_key: AESKey
    nwk_key: AESKey | None = None
    relay_passphrase: SecretStr | None = None
    defects: tuple[str, ...] = ()
    nvm_file: Path | None = None  # None: a fresh device in a temporary folder per run
    boot_time_s: float = Field(0.05, ge=0)

    @field_validator("dev_eui", "join_eui", mode="before")
    @classmethod
    def _eui(cls, value: Any) -> EUI64:
        try:
            return EUI64.parse(value) if isinstance(value, str) else EUI64(value)
        except FrameError as exc:
            raise ValueError(str(exc).split(" (field")[0]) from None

    @field_validator("app_key", "nwk_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> AESKey | None:
        if value is None or isinstance(value, AESKey):
            return value
        return AESKey(str(value), "key")


class SimPsu(_Model):
    dialect: Literal["keysight-e36300", "rigol-dp800"] = "keysight-e36300"
    channel: int = Field(1, ge=1, le=3)


class SimFeedback(_Model):
    kind: Literal["dmm", "shelly"] = "dmm"
    topic_prefix: str = "shellyplus1pm-hil"


class SimMains(_Model):
    """The relay's mains feed: a switchable AC source (SCPI, ``${sim:mains}``), on at ``voltage_rms`` at start."""

    dialect: Literal["keysight-ac6800"] = "keysight-ac6800"
    voltage_rms: float = Field(230.0, gt=0, le=310.0)
    frequency_hz: float = Field(50.0, gt=0)
    load_ohms: float = Field(529.0, gt=0)
    operate_time_s: float = Field(0.010, ge=0)
    release_time_s: float = Field(0.005, ge=0)


class SimGateway(_Model):
    transport: Literal["chirpstack-mqtt", "semtech-udp"] = "chirpstack-mqtt"
    gateway_id: str = Field("0016c001f153a14c", pattern=r"^[0-9a-fA-F]{16}$")
    topic_prefix: str = "eu868/"
    udp_server: str = "127.0.0.1:1700"  # where the network server listens (semtech-udp)
    path_loss_db: float = 90.0
    # receive channels beyond the region's default ones (an 8-channel EU868 gateway also hears 867.1-867.9 MHz)
    extra_channels_hz: tuple[int, ...] = ()


class SimLabels(_Model):
    """Pre-printed TR005 labels on the units the virtual handler loads (its scanner reads them)."""

    join_eui: EUI64
    dev_eui_start: EUI64  # unit n (1, 2, ...) carries dev_eui_start + n - 1
    vendor_id: int = Field(0xFFFF, ge=0, le=0xFFFF)
    model_id: int = Field(0x0001, ge=0, le=0xFFFF)

    @field_validator("join_eui", "dev_eui_start", mode="before")
    @classmethod
    def _eui(cls, value: Any) -> EUI64:
        return SimDut._eui(value)


class SimHandler(_Model):
    """The virtual automated handler (hil/sim/instruments/handler.py): swaps factory-fresh DUTs in."""

    units: int = Field(1000, ge=1)  # units in the input tray
    load_time_s: float = Field(2.0, ge=0)  # rig seconds to pick a unit and press it into the fixture
    unload_time_s: float = Field(1.0, ge=0)
    state_file: Path | None = None  # keeps tray position, unit present and bins across runs (with dut.nvm_file)
    labels: SimLabels | None = None  # None: the units carry no label


class SimSwd(_Model):
    """The DUT's debug port (hil/sim/swd): a simulated probe for pyocd, in this process and over TCP."""

    probe_server: bool = True  # also serve it through pyocd's TCP probe server (remote:127.0.0.1:<port>)
    unique_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{24}$")  # the MCU's 96-bit UID; None: from the seed


class SimConfig(_Model):
    """The whole ``sim:`` section."""

    broker: Literal["auto", "mosquitto", "amqtt"] = "auto"
    seed: int = 1
    time_scale: float = Field(20.0, gt=0)
    dut: SimDut
    psu: SimPsu = SimPsu()
    feedback: SimFeedback = SimFeedback()
    mains: SimMains = SimMains()
    gateway: SimGateway = SimGateway()
    swd: SimSwd = SimSwd()
    handler: SimHandler | None = None  # a unit handler swapping in factory-fresh DUTs (provisioning)


def _where(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error["loc"]) or "(top)"


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a rig file and validate its ``sim:`` section (timing.time_scale feeds time_scale)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimConfigError(f"{path}: cannot read the rig file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SimConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or "sim" not in doc:
        raise SimConfigError(f"{path}: expected a mapping with a 'sim:' section (this rig is not virtual)")
    section = dict(doc["sim"] or {})
    timing = doc.get("timing") or {}
    if "time_scale" in timing:
        section.setdefault("time_scale", timing["time_scale"])
    try:
        return SimConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"sim.{_where(e)}: {e['msg']}" for e in exc.errors())
        raise SimConfigError(f"{path}: {problems}") from None
