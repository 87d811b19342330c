"""The seams inside the virtual DUT, so its parts can be built and tested separately.

* :class:`FirmwareApi` — what the console dialects call (identity, keys, join, send, reset, relay
  settings) and the events they print. Methods are safe to call from the console's thread.
* :class:`MacStorage` — what the LoRaWAN MAC persists in NVM (DevNonce, counters, session).
  Writes are asynchronous and take time: a power cut during one tears it.
* :class:`MacHost` — what the MAC reports up to the firmware (joined, TX done, downlink).

Everything timed runs on the rig's :class:`~hil.sim.scheduler.Scheduler` thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol

from hil.lorawan.crypto import AESKey
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr

# --- events the firmware emits (consoles print them in their dialect) --------------------------


@dataclass(frozen=True, slots=True)
class Booted:
    """The firmware finished booting (after power-up, reset or SWD reset)."""

    reason: Literal["power_on", "reset", "brown_out", "swd_reset", "factory_reset"]


@dataclass(frozen=True, slots=True)
class Joined:
    dev_addr: DevAddr


@dataclass(frozen=True, slots=True)
class JoinFailed:
    """A join attempt got no valid join-accept (``reason``: ``rx_timeout``, ``mic``, ``duty_cycle``...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class TxDone:
    """An uplink left the radio; for a confirmed one ``acked`` says whether the network ACKed it."""

    fcnt: int
    confirmed: bool
    acked: bool | None = None


@dataclass(frozen=True, slots=True)
class DownlinkReceived:
    """An application downlink (FPort > 0) the MAC accepted. ``slot``: "1", "2" or "C"."""

    fport: int
    payload: bytes
    rssi: float
    snr: float
    slot: str
    fcnt: int


@dataclass(frozen=True, slots=True)
class RelayChanged:
    """The relay application switched the coil."""

    on: bool


DutEvent = Booted | Joined | JoinFailed | TxDone | DownlinkReceived | RelayChanged
Listener = Callable[[DutEvent], None]


class FirmwareApi(Protocol):
    """The firmware's services, as its console commands reach them. Thread-safe."""

    # identity and LoRaWAN settings (persisted in NVM)
    dev_eui: EUI64
    join_eui: EUI64
    activation: Literal["otaa", "abp"]
    device_class: Literal["A", "C"]
    data_rate: int
    tx_power: int  # TXPower index of the region (0 = max EIRP)
    adr: bool
    lorawan_version: str

    @property
    def running(self) -> bool:
        """Powered and booted (a console of an unpowered DUT prints nothing)."""
        ...

    @property
    def joined(self) -> bool: ...

    @property
    def dev_addr(self) -> DevAddr | None: ...

    @property
    def fcnt_up(self) -> int: ...

    @property
    def fcnt_down(self) -> int: ...

    @property
    def last_downlink(self) -> DownlinkReceived | None: ...

    def set_app_key(self, key: AESKey) -> None: ...

    def set_nwk_key(self, key: AESKey) -> None: ...

    def has_keys(self) -> bool: ...

    def join(self) -> str | None:
        """Start joining (OTAA) or activate (ABP). None if started, else an error word:
        ``"busy"``, ``"no_keys"``, ``"not_running"``."""
        ...

    def send(self, fport: int, payload: bytes, confirmed: bool) -> str | None:
        """Queue an uplink. None if accepted, else ``"not_joined"``, ``"busy"``, ``"too_long"``,
        ``"bad_port"``, ``"duty_cycle"``, ``"not_running"``."""
        ...

    def reset(self) -> None:
        """Soft reboot: RAM lost, NVM kept (ATZ)."""
        ...

    def factory_reset(self) -> None:
        """Erase settings, keys and counters in NVM, then reboot (ATR)."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event; returns an unsubscribe function."""
        ...

    # the relay application's console (seed 004)
    def set_relay_passphrase(self, passphrase: str) -> None: ...

    relay_spreading_factor: int  # "set datarate SF7..SF12"
    relay_tx_power_dbm: int  # "set txpower 2..15"

    @property
    def firmware_version(self) -> str: ...

    @property
    def hardware_model(self) -> str: ...

    @property
    def serial_number(self) -> str: ...


# --- MAC <-> firmware --------------------------------------------------------------------------


@dataclass(frozen=True)
class MacCredentials:
    """Identity and root keys the MAC works with (read from NVM at boot). ``repr`` hides keys."""

    dev_eui: EUI64
    join_eui: EUI64
    app_key: AESKey | None
    nwk_key: AESKey | None = None
    activation: Literal["otaa", "abp"] = "otaa"
    abp_dev_addr: DevAddr | None = None
    abp_keys: SessionKeys | None = None


@dataclass
class MacState:
    """What the LoRaWAN MAC keeps in NVM. Counters are full 32-bit values.

    ``dev_nonce``: the next DevNonce to use (1.0.4/1.1 counter); ``used_dev_nonces``: recent
    random DevNonces (1.0.2) never to be reused. ``join_nonce``: last accepted JoinNonce (1.1).
    ``fcnt_up`` is the next FCntUp; ``n_fcnt_down``/``a_fcnt_down`` the last received (None: none).
    """

    dev_nonce: int = 0
    used_dev_nonces: tuple[int, ...] = ()
    join_nonce: int | None = None
    joined: bool = False
    dev_addr: DevAddr | None = None
    session_keys: SessionKeys | None = None
    fcnt_up: int = 0
    n_fcnt_down: int | None = None
    a_fcnt_down: int | None = None
    rx1_dr_offset: int = 0
    rx2_dr: int | None = None
    rx_delay_s: int = 1
    extra_channels: tuple[int, ...] = field(default_factory=tuple)


class MacStorage(Protocol):
    """The MAC's view of NVM."""

    def load(self) -> MacState:
        """The persisted MAC state as of now (what survived the last power cut)."""
        ...

    def persist(self, on_done: Callable[[], None] | None = None, **changes: object) -> None:
        """Write the given MacState fields. The write takes NVM time; ``on_done`` runs on the
        scheduler thread once the last byte is committed. A power cut before then tears it."""
        ...


class MacHost(Protocol):
    """What the MAC tells the firmware."""

    def mac_joined(self, dev_addr: DevAddr) -> None: ...

    def mac_join_failed(self, reason: str) -> None: ...

    def mac_tx_done(self, fcnt: int, confirmed: bool, acked: bool | None) -> None: ...

    def mac_downlink(self, event: DownlinkReceived) -> None: ...

    def radio_state(self, state: Literal["sleep", "rx", "tx"]) -> None:
        """For the supply-current model."""
        ...
