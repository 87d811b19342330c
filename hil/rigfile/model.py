"""The rig file as typed models: a bench's parts by role, validated, with secrets hidden.

A rig names its parts by role: ``dut`` (console, SWD probe, LoRaWAN identity, relay protocol),
``gateway``, ``psu``, ``mains`` (the relay's switchable 230 V feed), ``feedback``, ``network``,
``timing``, and ``sim`` for a virtual rig (the
:class:`~hil.sim.config.SimConfig` section). Only ``dut`` is required; a test that needs a missing
part is skipped by the plugin. Every model forbids unknown keys and never shows a secret's input in
an error. Endpoint fields (console port, VISA resources, broker URLs, the UDP bind address, the
gateway id) may hold ``${provider:name}`` placeholders, filled in by :meth:`Rig.bring_up`.

Identifiers written in hex (EUIs, DevAddr, NetID, gateway id) must be YAML strings: an unquoted
``000013`` is read by YAML as the number 11, so a number there is refused with a hint to quote it.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64, DevAddr, NetID
from hil.rigfile.secrets import (
    LoadContext,
    SecretKey,
    SecretReferenceError,
    SecretText,
    load_context,
    to_key,
    to_secret_text,
)
from hil.sim.config import SimConfig

if TYPE_CHECKING:
    from hil.network.registry import DeviceConfig
    from hil.rigfile.loader import RigUp

__all__ = [
    "PLACEHOLDER",
    "Abp",
    "ChirpStackMqttGateway",
    "Console",
    "DmmFeedback",
    "Dut",
    "LoRaWAN",
    "Mains",
    "Network",
    "NvmField",
    "OperatorHandler",
    "Placeholder",
    "Psu",
    "Relay",
    "Rig",
    "RigFileError",
    "ScpiHandler",
    "SemtechUdpGateway",
    "SmartMeterFeedback",
    "Swd",
    "Timing",
    "has_placeholder",
    "parse_mqtt_url",
    "parse_udp_bind",
]

PLACEHOLDER = re.compile(r"\$\{(?P<provider>[A-Za-z_][\w-]*):(?P<name>[^}]*)\}")
"""``${provider:name}``: a value a provider (e.g. the virtual rig) hands out at bring-up."""


class RigFileError(ValueError):
    """A rig file is unreadable or invalid. Each problem reads ``file[:line]: key.path: what was expected``."""

    def __init__(self, path: Path | str | None, problems: list[str]) -> None:
        self.path = Path(path) if path is not None else None
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Placeholder:
    """A ``${provider:name}`` found at ``path`` (a dotted key path) in a rig."""

    path: str
    provider: str
    name: str

    @property
    def text(self) -> str:
        return f"${{{self.provider}:{self.name}}}"


def has_placeholder(value: object) -> bool:
    """True if ``value`` is a string holding a ``${provider:name}`` placeholder."""
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True)


# -- field types ---------------------------------------------------------------------------------

def _endpoint(check: Any) -> AfterValidator:
    """A string field that is either a placeholder (checked after bring-up) or passes ``check``."""
    def validate(value: str) -> str:
        return value if has_placeholder(value) else check(value)
    return AfterValidator(validate)


_SERIAL_DEVICE = re.compile(r"^(/\S+|COM\d+|\\\\\.\\COM\d+)$")
_SERIAL_URL = re.compile(r"^(socket|rfc2217)://[^\s:/]+:\d{1,5}(/?\?\S*)?$|^loop://\S*$")


def _serial_port(value: str) -> str:
    if _SERIAL_DEVICE.match(value) or _SERIAL_URL.match(value):
        return value
    raise ValueError("expected a pyserial port: a device path (/dev/ttyUSB0, /dev/serial/by-id/...), COMn, "
                     "socket://host:port or rfc2217://host:port")


_VISA = re.compile(r"^(TCPIP\d*::\S+::(\d+::SOCKET|INSTR)|USB\d*::\S+::INSTR|ASRL\S+::INSTR|GPIB\d*::\S+::INSTR)$",
                   re.IGNORECASE)


def _visa_resource(value: str) -> str:
    if _VISA.match(value):
        return value
    raise ValueError("expected a VISA resource string such as TCPIP0::192.0.2.10::5555::SOCKET, "
                     "TCPIP0::192.0.2.10::INSTR or USB0::0x1AB1::0x0E11::DP8C000000::INSTR")


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` as (host, port, tls); default ports 1883/8883."""
    expected = "expected mqtt://host:port or mqtts://host:port"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(expected)
    if parts.username or parts.password:
        raise ValueError(f"{expected} without credentials in it (use the username and password keys)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{expected}, with no path or query")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{expected} with a port in 1..65535") from None
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls


def _mqtt_url(value: str) -> str:
    parse_mqtt_url(value)
    return value


_UDP_BIND = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(?P<port>\d{1,5})$")


def parse_udp_bind(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port); port 0 asks for an ephemeral port."""
    match = _UDP_BIND.match(value)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("expected host:port to bind (port 0: any free port), e.g. 127.0.0.1:1700 or 0.0.0.0:1700")
    return match["host"].strip("[]"), int(match["port"])


def _udp_bind(value: str) -> str:
    parse_udp_bind(value)
    return value


_GATEWAY_ID = re.compile(r"^[0-9A-Fa-f]{16}$")


def _gateway_id(value: Any) -> Any:
    if isinstance(value, str) and (has_placeholder(value) or _GATEWAY_ID.match(value)):
        return value
    if value is None:
        return value
    hint = " as a quoted string" if isinstance(value, int) and not isinstance(value, bool) else ""
    raise ValueError(f"expected a gateway id of 16 hex digits{hint}")


_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_PROFILE_KINDS = {"at": "an AT", "scpi": "a SCPI", "dmm": "a DMM"}


def _profile(kind: str) -> AfterValidator:
    """A profile name under ``rigs/profiles/<kind>/``; checked against the files when that folder exists."""
    def validate(value: str, info: ValidationInfo) -> str:
        if has_placeholder(value):
            return value
        label = _PROFILE_KINDS[kind]
        if not _PROFILE_NAME.match(value):
            raise ValueError(f"expected the name of {label} profile (lower case, digits, '-', e.g. rak3172)")
        folder = load_context(info).profiles_dir
        if folder is None or not (folder / kind).is_dir():
            return value
        known = sorted({p.stem for p in (folder / kind).iterdir() if p.suffix in (".yaml", ".yml")})
        if known and value not in known:
            raise ValueError(f"no {label.split()[1]} profile {value!r} under {folder / kind} (known: {', '.join(known)})")
        return value
    return AfterValidator(validate)


def _identifier(cls: type) -> BeforeValidator:
    """An EUI/DevAddr/NetID from its big-endian hex string (not a YAML number)."""
    digits = 2 * cls.SIZE  # type: ignore[attr-defined]

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls.parse(value)  # type: ignore[attr-defined]
            except FrameError as exc:
                raise ValueError(str(exc).split(" (field")[0]) from None
        hint = " (quote it: YAML reads unquoted digits as a number)" if isinstance(value, int) else ""
        raise ValueError(f"expected {digits} hex digits as a string{hint}")

    return BeforeValidator(convert)


def _path_in_rig(value: Path, info: ValidationInfo) -> Path:
    """A path relative to the rig file's folder, made absolute."""
    value = value.expanduser()
    return value if value.is_absolute() else load_context(info).base_dir / value


def _address(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError("expected an address: an integer, hex as 0x...") from None
    if isinstance(value, bool):
        raise ValueError("expected an address: an integer, hex as 0x...")
    return value


SerialPort = Annotated[str, _endpoint(_serial_port)]
VisaResource = Annotated[str, _endpoint(_visa_resource)]
MqttUrl = Annotated[str, _endpoint(_mqtt_url)]
UdpBind = Annotated[str, _endpoint(_udp_bind)]
GatewayId = Annotated[str | None, BeforeValidator(_gateway_id)]
EUIField = Annotated[EUI64, _identifier(EUI64)]
DevAddrField = Annotated[DevAddr, _identifier(DevAddr)]
NetIDField = Annotated[NetID, _identifier(NetID)]
PathInRig = Annotated[Path, AfterValidator(_path_in_rig)]
Address = Annotated[int, BeforeValidator(_address), Field(ge=0, le=0xFFFFFFFF)]


# -- dut -----------------------------------------------------------------------------------------

class Console(_Model):
    """The DUT's serial console: where, how fast, and which AT profile speaks to it."""

    port: SerialPort
    baud: int | None = Field(None, gt=0)  # None: the AT profile's baud rate
    dialect: Annotated[str, _profile("at")]
    reenumerate_timeout_s: float = Field(10.0, ge=0)  # how long a USB port may be gone after power-up


NVM_TYPE_SIZES: dict[str, int] = {"u8": 1, "u16le": 2, "u32le": 4, "eui64": 8}


class NvmField(_Model):
    """A value in the DUT's non-volatile memory, read and written through the SWD probe."""

    addr: Address
    type: Literal["u8", "u16le", "u32le", "bytes", "eui64"]
    size: int | None = Field(None, gt=0)  # required for bytes; for the others it must match the type

    @model_validator(mode="after")
    def _size_fits_type(self) -> NvmField:
        fixed = NVM_TYPE_SIZES.get(self.type)
        if fixed is None and self.size is None:
            raise ValueError("type bytes needs a size")
        if fixed is not None and self.size is not None and self.size != fixed:
            raise ValueError(f"size {self.size} does not match type {self.type} ({fixed} bytes); leave size out")
        return self

    @property
    def length(self) -> int:
        """Bytes the field occupies."""
        return self.size if self.size is not None else NVM_TYPE_SIZES[self.type]


class Swd(_Model):
    """The debug probe on the DUT (pyOCD): which probe, which target, and where values live."""

    probe_uid: str = Field(min_length=1)
    target: str = Field(min_length=1)  # pyOCD target name, e.g. stm32wl55jcix
    firmware: PathInRig | None = None  # image to flash when provisioning; relative to the rig file
    nvm_layout: dict[str, NvmField] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_overlap(self) -> Swd:
        spans = sorted((f.addr, f.addr + f.length, name) for name, f in self.nvm_layout.items())
        for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
            if start < end:
                raise ValueError(f"nvm_layout.{first} and nvm_layout.{second} overlap")
        return self


class Abp(_Model):
    """ABP session: the address, the session keys (1.0.x: nwk_s_key; 1.1: the three network keys) and counters."""

    dev_addr: DevAddrField
    nwk_s_key: SecretKey | None = None
    f_nwk_s_int_key: SecretKey | None = None
    s_nwk_s_int_key: SecretKey | None = None
    nwk_s_enc_key: SecretKey | None = None
    app_s_key: SecretKey
    fcnt_up: int = Field(0, ge=0, le=0xFFFFFFFF)  # next FCntUp the device sends
    fcnt_down: int = Field(0, ge=0, le=0xFFFFFFFF)  # next FCntDown (NFCntDown for 1.1)


class LoRaWAN(_Model):
    """The DUT's LoRaWAN identity and keys (keys never show in a repr or error)."""

    dev_eui: EUIField
    join_eui: EUIField = EUI64(0)
    app_key: SecretKey | None = None
    nwk_key: SecretKey | None = None  # LoRaWAN 1.1 only
    version: Literal["1.0.2", "1.0.3", "1.0.4", "1.1"] = "1.0.4"
    device_class: Literal["A", "C"] = "A"
    activation: Literal["otaa", "abp"] = "otaa"
    region: Literal["EU868", "US915"] = "EU868"
    abp: Abp | None = None

    @model_validator(mode="after")
    def _keys_fit_activation(self) -> LoRaWAN:
        v11 = self.version == "1.1"
        if not v11 and self.nwk_key is not None:
            raise ValueError("nwk_key is a LoRaWAN 1.1 key; a 1.0.x device has only app_key")
        if self.activation == "otaa":
            if self.app_key is None:
                raise ValueError("an OTAA device needs app_key")
            if v11 and self.nwk_key is None:
                raise ValueError("an OTAA LoRaWAN 1.1 device needs nwk_key as well as app_key")
            if self.abp is not None:
                raise ValueError("abp: is for activation: abp")
            return self
        if self.abp is None:
            raise ValueError("activation abp needs an abp: section (dev_addr and session keys)")
        needed = ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key") if v11 else ("nwk_s_key",)
        missing = [k for k in needed if getattr(self.abp, k) is None]
        if missing:
            raise ValueError(f"an ABP LoRaWAN {self.version} device needs abp.{', abp.'.join(missing)}")
        wrong = ("nwk_s_key",) if v11 else ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
        extra = [k for k in wrong if getattr(self.abp, k) is not None]
        if extra:
            raise ValueError(f"abp.{', abp.'.join(extra)} is not a LoRaWAN {self.version} session key")
        return self

    def device_config(self, network: Network | None = None, name: str = "") -> DeviceConfig:
        """The device as the reference network server is provisioned with it."""
        from hil.network.registry import DeviceConfig

        net = network or Network()
        fields: dict[str, Any] = dict(
            dev_eui=self.dev_eui, join_eui=self.join_eui, version=self.version, device_class=self.device_class,
            activation=self.activation, name=name, app_key=self.app_key, nwk_key=self.nwk_key,
            rx1_dr_offset=net.rx1_dr_offset, rx2_dr=net.rx2_dr, rx_delay=net.rx_delay_s,
        )
        if self.abp is not None:
            a = self.abp
            fields.update(dev_addr=a.dev_addr, nwk_s_key=a.nwk_s_key, f_nwk_s_int_key=a.f_nwk_s_int_key,
                          s_nwk_s_int_key=a.s_nwk_s_int_key, nwk_s_enc_key=a.nwk_s_enc_key, app_s_key=a.app_s_key,
                          next_fcnt_up=a.fcnt_up, next_fcnt_down=a.fcnt_down, app_key=None, nwk_key=None)
        return DeviceConfig(**fields)


class Relay(_Model):
    """The relay application protocol: its passphrase (K = SHA-256 of it) and FPort."""

    passphrase: SecretText
    fport: int = Field(10, ge=1, le=223)


class Dut(_Model):
    """The device under test."""

    console: Console
    swd: Swd | None = None
    lorawan: LoRaWAN | None = None
    relay: Relay | None = None


# -- gateway ---------------------------------------------------------------------------------------

class ChirpStackMqttGateway(_Model):
    """A gateway running ChirpStack Gateway Bridge v4 (JSON marshaler), reached through an MQTT broker."""

    transport: Literal["chirpstack-mqtt"]
    broker: MqttUrl
    username: str | None = None
    password: SecretText | None = None
    ca_file: PathInRig | None = None  # mqtts: CA bundle; None: the system's
    topic_prefix: str = "eu868/"
    gateway_id: GatewayId = None  # None: listen to any gateway

    @property
    def host(self) -> str:
        return parse_mqtt_url(self.broker)[0]

    @property
    def port(self) -> int:
        return parse_mqtt_url(self.broker)[1]

    @property
    def tls(self) -> bool:
        return parse_mqtt_url(self.broker)[2]


class SemtechUdpGateway(_Model):
    """A gateway with the Semtech UDP packet forwarder; the network server binds ``bind``."""

    transport: Literal["semtech-udp"]
    bind: UdpBind

    @property
    def host(self) -> str:
        return parse_udp_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return parse_udp_bind(self.bind)[1]


Gateway = Annotated[ChirpStackMqttGateway | SemtechUdpGateway, Field(discriminator="transport")]


# -- psu, feedback ---------------------------------------------------------------------------------

class Psu(_Model):
    """The bench supply feeding the DUT: one channel of a SCPI instrument."""

    resource: VisaResource
    dialect: Annotated[str, _profile("scpi")]
    channel: int = Field(1, ge=1)
    voltage: float = Field(ge=0)
    current_limit: float = Field(gt=0)
    ovp: float | None = Field(None, gt=0)  # over-voltage protection level, volts
    ocp: bool = False  # trip the output when the current limit is reached

    @model_validator(mode="after")
    def _ovp_above_setpoint(self) -> Psu:
        if self.ovp is not None and self.ovp <= self.voltage:
            raise ValueError(f"ovp ({self.ovp:g} V) must be above voltage ({self.voltage:g} V)")
        return self


class Mains(_Model):
    """The 230 V feed of the relay under test: one output of a programmable AC source (SCPI) the rig
    switches, so a test can take mains away from the relay's input. Driven like a supply
    (drivers.psu.PowerSupply) through an AC profile under ``profiles/scpi/`` (``keysight-ac6800``)."""

    resource: VisaResource
    dialect: Annotated[str, _profile("scpi")]
    channel: int = Field(1, ge=1)
    voltage: float = Field(230.0, gt=0)  # volts RMS the feed is on at (between tests and at session start)
    current_limit: float | None = Field(None, gt=0)  # amps RMS; None: the source's own setting


class _Feedback(_Model):
    # An AC reading at or above this many volts RMS means mains is present at the relay output. 100 V sits
    # far from both a live 230 V (or 120 V) line and the few volts a meter reads on an open contact.
    mains_threshold_v: float = Field(100.0, gt=0)


class DmmFeedback(_Feedback):
    """A SCPI multimeter measuring AC volts at the relay output."""

    kind: Literal["dmm"]
    resource: VisaResource
    dialect: Annotated[str, _profile("dmm")]
    range: float | None = Field(None, gt=0)  # AC volts range; None: autorange


class SmartMeterFeedback(_Feedback):
    """An MQTT smart meter (Shelly Gen2 style) on the relay output."""

    kind: Literal["smart-meter"]
    broker: MqttUrl
    topic_prefix: str = Field(min_length=1)
    username: str | None = None
    password: SecretText | None = None
    ca_file: PathInRig | None = None


Feedback = Annotated[DmmFeedback | SmartMeterFeedback, Field(discriminator="kind")]


# -- handler (provisioning: who swaps units in the fixture) ----------------------------------------

class ScpiHandler(_Model):
    """An automated unit handler remote-controlled over SCPI (drivers/handler.py)."""

    kind: Literal["scpi"]
    resource: VisaResource
    load_timeout_s: float = Field(60.0, gt=0)  # rig seconds a load or unload may take
    commands: dict[str, str] = Field(default_factory=dict)  # this handler's words, over the driver's defaults


class OperatorHandler(_Model):
    """No machine: the station asks the operator on its terminal to swap the unit (and scan its label)."""

    kind: Literal["operator"]


Handler = Annotated[ScpiHandler | OperatorHandler, Field(discriminator="kind")]


# -- network, timing -------------------------------------------------------------------------------

class Network(_Model):
    """The reference network server's settings (RX settings go to the device in its join-accept)."""

    net_id: NetIDField = NetID(0x000013)
    rx1_dr_offset: int = Field(0, ge=0, le=7)
    rx2_dr: int | None = Field(None, ge=0, le=15)  # None: the region's default
    rx_delay_s: int = Field(1, ge=1, le=15)
    join_policy: Literal["allow", "deny"] = "allow"


class Timing(_Model):
    """Rig time: ``time_scale`` rig seconds per real second (virtual rigs only; a real bench runs at 1)."""

    time_scale: float | None = Field(None, gt=0)


# -- the rig ---------------------------------------------------------------------------------------

PARTS = ("dut.console", "dut.swd", "dut.lorawan", "dut.relay", "gateway", "psu", "mains", "feedback", "handler")


class Rig(_Model):
    """A whole rig file. Load one with :func:`hil.rigfile.load_rig`."""

    name: str = Field(min_length=1)
    description: str | None = None
    dut: Dut
    gateway: Gateway | None = None
    psu: Psu | None = None
    mains: Mains | None = None  # the relay's switchable mains feed (an AC source)
    feedback: Feedback | None = None
    handler: Handler | None = None  # provisioning: the unit handler (or the operator) swapping units
    network: Network = Network()
    timing: Timing = Timing()
    sim: SimConfig | None = None  # a virtual rig: what hil.sim emulates

    _path: Path | None = PrivateAttr(None)
    _context: LoadContext | None = PrivateAttr(None)
    _overrides: tuple[str, ...] = PrivateAttr(())

    @model_validator(mode="before")
    @classmethod
    def _virtual_section(cls, data: Any, info: ValidationInfo) -> Any:
        """timing.time_scale feeds sim.time_scale, or must be 1 on a real rig; sim.dut secrets may be references."""
        if not isinstance(data, dict):
            return data
        timing = data.get("timing")
        scale = timing.get("time_scale") if isinstance(timing, dict) else None
        numeric = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        sim = data.get("sim")
        if sim is None:
            if numeric and scale != 1:
                raise ValueError(f"timing.time_scale: {scale:g} needs a virtual rig (a sim: section); "
                                 "a real bench runs in real time: remove the key or set 1")
            return data
        if not isinstance(sim, dict):
            return data
        sim = dict(sim)
        if scale is not None:
            if "time_scale" in sim and sim["time_scale"] != scale:
                raise ValueError("sim.time_scale: differs from timing.time_scale; give it once, under timing:")
            sim["time_scale"] = scale
        dut = sim.get("dut")
        if isinstance(dut, dict):
            dut = dict(dut)
            context = load_context(info)
            for key in ("app_key", "nwk_key", "relay_passphrase"):
                if dut.get(key) is None:
                    continue
                try:
                    convert = to_secret_text if key == "relay_passphrase" else to_key
                    dut[key] = convert(dut[key], f"sim.dut.{key}", context)
                except SecretReferenceError as exc:
                    raise ValueError(f"sim.dut.{key}: {exc}") from None
            sim["dut"] = dut
        return {**data, "sim": sim}

    # -- what the rig has ----------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file this rig was loaded from."""
        return self._path

    @property
    def overrides(self) -> tuple[str, ...]:
        """The keys changed by command-line overrides (``--rig-set``), as dotted paths."""
        return self._overrides

    @property
    def is_virtual(self) -> bool:
        """True for a rig emulated by hil.sim (it has a sim: section)."""
        return self.sim is not None

    @property
    def time_scale(self) -> float:
        """Rig seconds per real second."""
        if self.sim is not None:
            return self.sim.time_scale
        return self.timing.time_scale or 1.0

    def part(self, name: str) -> Any | None:
        """The section at dotted ``name`` (``"psu"``, ``"dut.swd"``), or None if the rig lacks it."""
        node: Any = self
        for key in name.split("."):
            if not isinstance(node, BaseModel) or key not in type(node).model_fields:
                raise KeyError(f"no part {name!r} in a rig (parts: {', '.join(PARTS)})")
            node = getattr(node, key)
            if node is None:
                return None
        return node

    def parts(self) -> tuple[str, ...]:
        """The parts this rig has, among :data:`PARTS`."""
        return tuple(p for p in PARTS if self.part(p) is not None)

    def placeholders(self) -> list[Placeholder]:
        """Every ``${provider:name}`` still in the rig, with its key path."""
        found: list[Placeholder] = []
        for path, text in _strings(self, ""):
            for match in PLACEHOLDER.finditer(text):
                found.append(Placeholder(path, match["provider"], match["name"]))
        return found

    def bring_up(self) -> RigUp:
        """Start the providers (e.g. the virtual rig) and fill in placeholders (:func:`hil.rigfile.loader.bring_up`)."""
        from hil.rigfile.loader import bring_up

        return bring_up(self)


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, text) of every string in a model tree."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, BaseModel):
        for key in type(node).model_fields:
            yield from _strings(getattr(node, key), f"{path}.{key}" if path else key)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}.{index}")
