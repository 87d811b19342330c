"""The device registry: what the network knows about each device, and its runtime state.

:class:`DeviceConfig` is the provisioning record (validated, immutable, keys redacted in every
repr and error). :class:`DeviceState` is what the server learns while it runs: DevNonces seen,
the last JoinNonce, the current and previous :class:`Session`, the downlink queue.
:class:`DeviceRegistry` finds devices by DevEUI and sessions by DevAddr (several devices may
share a DevAddr; the MIC tells them apart).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterator, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError, KeyFormatError
from hil.lorawan.security import FOptsVariant, SessionKeys
from hil.lorawan.types import EUI64, DevAddr
from hil.lorawan.version import LoRaWANVersion
from hil.network.application import QueuedDownlink
from hil.network.errors import DeviceConfigError, DuplicateDeviceError, UnknownDeviceError


def _identifier(cls: type) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, cls):
            return value
        try:
            return cls(value)
        except FrameError as exc:  # pydantic only wraps ValueError
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


def _key(name: str) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, AESKey):
            return value
        if isinstance(value, (str, bytes, bytearray)):
            try:
                return AESKey(value, name)
            except KeyFormatError as exc:  # its message never holds the value
                raise ValueError(str(exc)) from None
        raise ValueError(f"{name} must be an AESKey, 32 hex digits or 16 bytes (value not shown)")

    return BeforeValidator(convert)


def _version(value: Any) -> Any:
    return value if isinstance(value, LoRaWANVersion) else LoRaWANVersion.parse(value)


EUIField = Annotated[EUI64, _identifier(EUI64)]
DevAddrField = Annotated[DevAddr | None, _identifier(DevAddr)]


def _key_field(name: str) -> Any:
    return Annotated[AESKey | None, _key(name)]


class DeviceConfig(BaseModel):
    """A device as provisioned on the network (and join server).

    OTAA: ``app_key`` (1.0.x), or ``app_key`` and ``nwk_key`` (1.1); ``dev_addr`` may pin the
    address the join-accept assigns. ABP: ``dev_addr`` and the session keys (``nwk_s_key`` for
    1.0.x; ``f_nwk_s_int_key``/``s_nwk_s_int_key``/``nwk_s_enc_key`` for 1.1; ``app_s_key``),
    and the counters to start from. ``rx1_dr_offset``/``rx2_dr``/``rx_delay``/``cf_list``
    override the region defaults for the device's data windows: an OTAA device learns them from
    its join-accept, an ABP device is assumed to know them. ``cf_list`` holds frequencies (Hz)
    in regions with CFList type 0 and channel masks with type 1.
    ``last_join_nonce``/``last_dev_nonce`` seed the join server's memory of a device that joined before.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    dev_eui: EUIField
    join_eui: EUIField = EUI64(0)
    version: Annotated[LoRaWANVersion, BeforeValidator(_version)] = LoRaWANVersion.V1_0_4
    device_class: Literal["A", "C"] = "A"
    activation: Literal["otaa", "abp"] = "otaa"
    name: str = ""

    app_key: _key_field("AppKey") = None
    nwk_key: _key_field("NwkKey") = None

    dev_addr: DevAddrField = None
    nwk_s_key: _key_field("NwkSKey") = None
    f_nwk_s_int_key: _key_field("FNwkSIntKey") = None
    s_nwk_s_int_key: _key_field("SNwkSIntKey") = None
    nwk_s_enc_key: _key_field("NwkSEncKey") = None
    app_s_key: _key_field("AppSKey") = None
    next_fcnt_up: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    next_fcnt_down: int = Field(default=0, ge=0, le=0xFFFFFFFF)  # FCntDown (1.0.x) / NFCntDown (1.1)
    next_af_cnt_down: int = Field(default=0, ge=0, le=0xFFFFFFFF)

    rx1_dr_offset: int | None = Field(default=None, ge=0, le=7)
    rx2_dr: int | None = Field(default=None, ge=0, le=15)
    rx_delay: int | None = Field(default=None, ge=1, le=15)
    cf_list: tuple[int, ...] | None = None
    fopts_variant: FOptsVariant = FOptsVariant.ERRATA

    last_join_nonce: int = Field(default=0, ge=0, le=0xFFFFFF)
    last_dev_nonce: int | None = Field(default=None, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _keys_fit_activation(self) -> DeviceConfig:
        v11 = self.version.is_1_1
        if self.activation == "otaa":
            if self.app_key is None:
                raise ValueError("an OTAA device needs app_key")
            if v11 and self.nwk_key is None:
                raise ValueError("an OTAA LoRaWAN 1.1 device needs nwk_key as well as app_key")
            if not v11 and self.nwk_key is not None:
                raise ValueError("nwk_key is a LoRaWAN 1.1 key; a 1.0.x device has only app_key")
            session_keys = ("nwk_s_key", "f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key", "app_s_key")
            given = [k for k in session_keys if getattr(self, k) is not None]
            if given:
                raise ValueError(f"an OTAA device gets its session keys by joining; remove {', '.join(given)}")
        else:
            if self.dev_addr is None:
                raise ValueError("an ABP device needs dev_addr")
            needed = ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key", "app_s_key") if v11 else (
                "nwk_s_key", "app_s_key")
            missing = [k for k in needed if getattr(self, k) is None]
            if missing:
                raise ValueError(f"an ABP LoRaWAN {self.version.value} device needs {', '.join(missing)}")
            wrong = ("nwk_s_key",) if v11 else ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
            extra = [k for k in wrong if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} is not a LoRaWAN {self.version.value} session key")
        return self

    @property
    def root_key(self) -> AESKey:
        """The key that signs join-requests: NwkKey (1.1) or AppKey (1.0.x)."""
        key = self.nwk_key if self.version.is_1_1 else self.app_key
        if key is None:
            raise DeviceConfigError(f"device {self.dev_eui} has no root key (ABP)")
        return key

    def abp_session_keys(self) -> SessionKeys:
        """The ABP session keys as a :class:`SessionKeys`."""
        if self.activation != "abp":
            raise DeviceConfigError(f"device {self.dev_eui} is OTAA: its session keys come from a join")
        assert self.app_s_key is not None
        if self.version.is_1_1:
            assert self.f_nwk_s_int_key and self.s_nwk_s_int_key and self.nwk_s_enc_key
            return SessionKeys(
                self.f_nwk_s_int_key, self.s_nwk_s_int_key, self.nwk_s_enc_key, self.app_s_key, lorawan_1_1=True
            )
        assert self.nwk_s_key is not None
        return SessionKeys.for_1_0(self.nwk_s_key, self.app_s_key)

    def __str__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"device {self.dev_eui}{label} (LoRaWAN {self.version.value}, class {self.device_class}, {self.activation})"


@dataclass(eq=False)
class Session:
    """A security context and its counters, on the network side.

    ``last_fcnt_up`` is the last accepted FCntUp (None: none yet). ``n_fcnt_down`` is the next
    FCntDown for 1.0.x, and the next NFCntDown for 1.1; ``a_fcnt_down`` the next AFCntDown (1.1).
    """

    dev_eui: EUI64
    dev_addr: DevAddr
    keys: SessionKeys = field(repr=False)
    rx1_dr_offset: int
    rx2_dr: int
    rx2_frequency_hz: int
    rx_delay_s: int
    channels: tuple[int, ...]  # uplink frequencies in channel-index order (for 1.1 TxCh)
    created_at: float
    otaa: bool
    fopts_variant: FOptsVariant = FOptsVariant.ERRATA
    dev_nonce: int | None = None
    join_nonce: int | None = None
    last_fcnt_up: int | None = None
    n_fcnt_down: int = 0
    a_fcnt_down: int = 0
    pending_ack_fcnt: int | None = None  # FCntUp of a confirmed uplink still to be ACKed
    awaiting_ack: QueuedDownlink | None = None  # confirmed downlink whose ACK the next uplink carries
    last_confirmed_down_fcnt: int | None = None  # for the 1.1 uplink MIC's ConfFCnt
    rekey_ind_seen: bool = False  # 1.1 OTAA: the device confirmed the session with RekeyInd
    uplinks: int = 0

    @property
    def lorawan_1_1(self) -> bool:
        """True if this session uses the 1.1 key hierarchy and counters."""
        return self.keys.lorawan_1_1

    @property
    def fcnt_down(self) -> int:
        """The next 1.0.x FCntDown (an alias of ``n_fcnt_down``)."""
        return self.n_fcnt_down

    def tx_channel(self, frequency_hz: int) -> int | None:
        """TxCh: the index of ``frequency_hz`` in the device's channel list, or None."""
        try:
            return self.channels.index(frequency_hz)
        except ValueError:
            return None


@dataclass(eq=False)
class DeviceState:
    """What the network has learnt about one device while running."""

    config: DeviceConfig
    used_dev_nonces: set[int] = field(default_factory=set)  # 1.0.2/1.0.3: every DevNonce seen
    last_dev_nonce: int | None = None  # 1.0.4/1.1: the last DevNonce accepted
    last_join_nonce: int = 0  # strictly increasing over the device's life (0: none sent)
    session: Session | None = None
    previous_session: Session | None = None  # kept until the device uses the new one
    queue: deque[QueuedDownlink] = field(default_factory=deque)
    last_gateway_id: str | None = None
    last_downlink_phy: bytes | None = None  # for Fault.REPLAY_DOWNLINK
    joins: int = 0
    answering: bool = False  # an uplink's Class A answer is being prepared

    @property
    def dev_eui(self) -> EUI64:
        """The device's DevEUI (from its config)."""
        return self.config.dev_eui

    @property
    def joined(self) -> bool:
        """True once the device has a session (OTAA joined, or ABP)."""
        return self.session is not None

    def __repr__(self) -> str:
        s = self.session
        where = f"DevAddr {s.dev_addr}, FCntUp {s.last_fcnt_up}" if s else "no session"
        return f"DeviceState({self.config}, {where}, {len(self.queue)} queued)"


class DeviceRegistry:
    """Devices by DevEUI and their sessions by DevAddr. Thread-safe for lookups and changes."""

    def __init__(self) -> None:
        self._devices: dict[EUI64, DeviceState] = {}
        self._by_addr: dict[DevAddr, list[tuple[DeviceState, Session]]] = {}
        self._lock = threading.RLock()

    def add(self, config: DeviceConfig) -> DeviceState:
        """Register a device; DuplicateDeviceError if its DevEUI is taken."""
        with self._lock:
            if config.dev_eui in self._devices:
                raise DuplicateDeviceError(f"a device with DevEUI {config.dev_eui} is already registered")
            state = DeviceState(
                config, last_dev_nonce=config.last_dev_nonce, last_join_nonce=config.last_join_nonce
            )
            self._devices[config.dev_eui] = state
            return state

    def remove(self, dev_eui: EUI64 | int | str) -> DeviceState:
        """Unregister a device and forget its sessions."""
        with self._lock:
            state = self.get(dev_eui)
            for session in (state.session, state.previous_session):
                if session is not None:
                    self._unindex(state, session)
            del self._devices[state.dev_eui]
            return state

    def get(self, dev_eui: EUI64 | int | str) -> DeviceState:
        """The device with this DevEUI; UnknownDeviceError if there is none."""
        found = self.find(dev_eui)
        if found is None:
            raise UnknownDeviceError(f"no device with DevEUI {dev_eui} is registered")
        return found

    def find(self, dev_eui: EUI64 | int | str) -> DeviceState | None:
        """The device with this DevEUI, or None."""
        try:
            eui = EUI64(dev_eui)
        except FrameError:
            return None
        with self._lock:
            return self._devices.get(eui)

    def sessions_for(self, dev_addr: DevAddr | int) -> list[tuple[DeviceState, Session]]:
        """Every (device, session) using ``dev_addr``: current sessions first, then previous ones."""
        with self._lock:
            found = list(self._by_addr.get(DevAddr(dev_addr), ()))
        found.sort(key=lambda pair: pair[1] is not pair[0].session)
        return found

    def activate(self, state: DeviceState, session: Session) -> None:
        """Make ``session`` the device's current one; the current one becomes the previous one.

        A session older than that is forgotten: the network keeps at most two contexts.
        """
        with self._lock:
            if state.previous_session is not None:
                self._unindex(state, state.previous_session)
            state.previous_session = state.session
            state.session = session
            self._by_addr.setdefault(session.dev_addr, []).append((state, session))

    def drop_previous(self, state: DeviceState) -> None:
        """Forget the device's previous session (it has used the new one)."""
        with self._lock:
            if state.previous_session is not None:
                self._unindex(state, state.previous_session)
                state.previous_session = None

    def _unindex(self, state: DeviceState, session: Session) -> None:
        pairs = self._by_addr.get(session.dev_addr, [])
        pairs[:] = [p for p in pairs if p[1] is not session]
        if not pairs:
            self._by_addr.pop(session.dev_addr, None)

    def __iter__(self) -> Iterator[DeviceState]:
        with self._lock:
            return iter(list(self._devices.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._devices)

    def __contains__(self, dev_eui: object) -> bool:
        return isinstance(dev_eui, (int, str)) and self.find(dev_eui) is not None

    def __repr__(self) -> str:
        return f"DeviceRegistry({len(self)} devices)"
