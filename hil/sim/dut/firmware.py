"""The virtual relay node's firmware core: power, boot, NVM settings, the MAC's host, the relay app.

Lifecycle (all on the rig scheduler):

* The board is a :class:`~hil.sim.dut.electrical.BoardLoad` on the supply channel. Every change
  of the rail voltage is handed to the scheduler; the :class:`~hil.sim.dut.electrical.Supervisor`
  decides. Rail above the release threshold for ``por_hold_s`` ⇒ boot: after ``boot_time_s`` the
  firmware reads NVM (provisioning the :class:`FactoryDefaults` into a factory-fresh or erased
  one first), creates the LoRaWAN MAC with the credentials from NVM, starts it, leaves the relay
  coil off (its documented power-up state, :meth:`RelayApp.restore`), emits :class:`~hil.sim.dut.interfaces.Booted` and, if it joined before (OTAA), joins again
  at once (the reference relay node rejoins after every boot, which is what makes DevNonce
  persistence testable). ABP: the MAC has its session at start.
* Rail below the brown-out threshold, output off, or above the damage threshold ⇒ at once: the MAC
  stops, :meth:`Nvm.power_lost` tears the writes in progress, the coil drops, and every RAM state
  and timer of that boot is gone.
* :meth:`Firmware.reset` is a soft reboot (RAM lost; queued NVM words are finished first, as a
  CPU stalled in a synchronous EEPROM write would), :meth:`Firmware.factory_reset` erases NVM and
  reboots, :meth:`Firmware.halt`/:meth:`Firmware.resume` model an SWD halt (no radio, no events,
  timers deferred until resume), :meth:`Firmware.swd_reset` reboots keeping NVM.

Per-boot isolation: each boot has a context (:mod:`hil.sim.dut.boot`) whose scheduler and radio
medium are guarded proxies handed to the MAC, so a stale callback of a previous boot never acts.

Threads: console threads call the :class:`~hil.sim.dut.interfaces.FirmwareApi` methods. They check
what they can answer at once under ``_lock`` (running, keys, busy, payload size) and hand the
action to the scheduler with ``call_soon``; events go to subscribers on the scheduler thread.

Settings changed from the console (DevEUI, keys, data rate...) are written to NVM at once; the
MAC, built at boot, picks changed credentials up at the next :meth:`Firmware.join` (it is rebuilt
then) or the next boot.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Sequence

from hil.lorawan.crypto import AESKey
from hil.lorawan.region import Region
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr
from hil.lorawan.version import LoRaWANVersion
from hil.sim.dut.defects import MAC_DEFECTS, validate_defects
from hil.sim.dut.electrical import BoardLoad, ElectricalSpec, Supervisor
from hil.sim.dut.interfaces import (
    Booted,
    DownlinkReceived,
    DutEvent,
    JoinFailed,
    Joined,
    Listener,
    MacCredentials,
    RelayChanged,
    TxDone,
)
from hil.sim.dut.boot import Boot, BootHost, BootRelayPlatform
from hil.sim.dut.memory import DutMemory
from hil.sim.dut.nvm import Key256, Nvm, NvmLayout, NvmMacStorage, NvmView
from hil.relay.protocol import RelayKey
from hil.sim.dut.relay_app import RelayApp, relay_key_k
from hil.sim.mains import RelayContact
from hil.sim.power import SupplyChannel
from hil.sim.radio import RadioMedium
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

BootReason = Literal["power_on", "reset", "brown_out", "swd_reset", "factory_reset"]
RELAY_SF_RANGE = range(7, 13)
RELAY_TX_DBM_RANGE = range(2, 16)


@dataclass(frozen=True)
class FactoryDefaults:
    """What a factory-fresh (or factory-reset) device is provisioned with at its first boot.

    Keys are :class:`AESKey` (redacted repr); the relay passphrase is hidden from ``repr`` and only
    its SHA-256 (K) is ever stored.
    """

    dev_eui: EUI64
    join_eui: EUI64
    app_key: AESKey | None = None
    nwk_key: AESKey | None = None
    lorawan_version: str = "1.0.4"
    activation: Literal["otaa", "abp"] = "otaa"
    device_class: Literal["A", "C"] = "A"
    data_rate: int = 5
    tx_power: int = 0
    adr: bool = False
    abp_dev_addr: DevAddr | None = None
    abp_nwk_s_key: AESKey | None = None
    abp_app_s_key: AESKey | None = None
    relay_passphrase: str | None = field(default=None, repr=False)
    relay_spreading_factor: int = 7
    relay_tx_power_dbm: int = 14
    firmware_version: str = "1.0.0"
    hardware_model: str = "hil-relay-l0"
    serial_number: str | None = None


@dataclass
class _Settings:
    """The RAM copy of the NVM settings (read at boot, updated by the console setters)."""

    lorawan_version: str
    activation: Literal["otaa", "abp"]
    device_class: Literal["A", "C"]
    data_rate: int
    tx_power: int
    adr: bool
    dev_eui: EUI64
    join_eui: EUI64
    app_key: AESKey | None
    nwk_key: AESKey | None
    abp_dev_addr: DevAddr | None
    abp_keys: SessionKeys | None
    joined_before: bool
    relay_key: Key256 | None
    relay_spreading_factor: int
    relay_tx_power_dbm: int

    def mac_inputs(self) -> tuple[Any, ...]:
        """What the MAC is built from: a change makes the running MAC stale."""
        return (self.lorawan_version, self.activation, self.data_rate, self.tx_power, self.dev_eui, self.join_eui,
                self.app_key, self.nwk_key, self.abp_dev_addr)


# --- one boot's world --------------------------------------------------------------------------


class Firmware:
    """The virtual relay node's firmware: implements FirmwareApi (console side) and MacHost (MAC side)."""

    def __init__(
        self,
        scheduler: Scheduler,
        medium: RadioMedium,
        region: Region,
        supply: SupplyChannel,
        contact: RelayContact,
        nvm: Nvm,
        *,
        factory: FactoryDefaults,
        defects: frozenset[str] | Sequence[str] = frozenset(),
        rng: random.Random | None = None,
        boot_time_s: float = 0.05,
        banner: Callable[["Firmware"], Sequence[str]] | None = None,
        mac_factory: Callable[..., Any] | None = None,
        electrical: ElectricalSpec | None = None,
        layout: NvmLayout | None = None,
        memory: DutMemory | None = None,
        join_attempts: int = 8,
        name: str = "dut",
    ) -> None:
        self.scheduler = scheduler
        self.medium = medium
        self.region = region
        self.supply = supply
        self.contact = contact
        self.nvm = nvm
        self.view = NvmView(nvm, layout)
        self.memory = memory  # its SRAM is cleared at every power loss
        self._image_version: str | None = None  # read from flash at each boot
        self.factory = factory
        self.defects = validate_defects(defects, "firmware defects")
        self.rng = rng or random.Random(1)
        self.boot_time_s = boot_time_s
        self.join_attempts = join_attempts
        self.name = name
        self._banner = banner
        self._mac_factory = mac_factory
        self.board = BoardLoad(electrical)
        self.supervisor = Supervisor(self.board.spec)
        self._lock = threading.RLock()
        self._phase: Literal["off", "por", "booting", "running", "rebooting", "damaged"] = "off"
        self._halted = False
        self._closed = False
        self._power_gen = 0
        self._boot_seq = 0
        self._ctx: Boot | None = None
        self._listeners: list[Listener] = []
        self._last_downlink: DownlinkReceived | None = None
        self.boots: list[BootReason] = []  # every completed boot's reason (diagnostics)
        layout_ = self.view.layout
        magic, version = self.view.get("magic"), self.view.get("layout_version")
        if magic == layout_.magic and version != layout_.layout_version:
            where = f"NVM image {nvm.path}" if nvm.path else "NVM"
            raise ValueError(
                f"{where} has layout version {version}, this firmware uses {layout_.layout_version}; "
                f"delete the image (the device is then factory-fresh) or use a matching firmware"
            )
        self._settings = self._read_settings() if self.view.is_provisioned() else self._factory_settings()
        self.board.attach(supply, self._on_voltage)
        scheduler.call_soon(self._power_check, name="dut-power")

    # ================================================================= FirmwareApi: identity ====

    @property
    def dev_eui(self) -> EUI64:
        with self._lock:
            return self._settings.dev_eui

    @dev_eui.setter
    def dev_eui(self, value: EUI64 | str | int) -> None:
        eui = EUI64(value)
        self._change("dev_eui", eui, dev_eui=eui)

    @property
    def join_eui(self) -> EUI64:
        with self._lock:
            return self._settings.join_eui

    @join_eui.setter
    def join_eui(self, value: EUI64 | str | int) -> None:
        eui = EUI64(value)
        self._change("join_eui", eui, join_eui=eui)

    @property
    def activation(self) -> Literal["otaa", "abp"]:
        with self._lock:
            return self._settings.activation

    @activation.setter
    def activation(self, value: str) -> None:
        mode = str(value).lower()
        if mode not in ("otaa", "abp"):
            raise ValueError(f"activation must be 'otaa' or 'abp', got {value!r}")
        self._change("activation", mode, activation=mode)

    @property
    def device_class(self) -> Literal["A", "C"]:
        with self._lock:
            return self._settings.device_class

    @device_class.setter
    def device_class(self, value: str) -> None:
        cls = str(value).upper()
        if cls not in ("A", "C"):
            raise ValueError(f"device class must be 'A' or 'C', got {value!r}")
        ctx = self._change("device_class", cls, device_class=cls)
        if ctx is not None:
            ctx.sched.call_soon(lambda: ctx.mac is not None and ctx.mac.set_device_class(cls), name="dut-class")

    @property
    def data_rate(self) -> int:
        with self._lock:
            return self._settings.data_rate

    @data_rate.setter
    def data_rate(self, value: int) -> None:
        dr = int(value)
        if not self.region.data_rate(dr).uplink:  # RegionError (a ValueError) names the known ones
            raise ValueError(f"{self.region.name} DR{dr} is not an uplink data rate")
        self._change("data_rate", dr, data_rate=dr)

    @property
    def tx_power(self) -> int:
        with self._lock:
            return self._settings.tx_power

    @tx_power.setter
    def tx_power(self, value: int) -> None:
        index = int(value)
        self.region.tx_power_dbm(index)  # RegionError (a ValueError) if the region has no such index
        self._change("tx_power", index, tx_power=index)

    @property
    def adr(self) -> bool:
        with self._lock:
            return self._settings.adr

    @adr.setter
    def adr(self, value: bool) -> None:
        self._change("adr", bool(value), adr=bool(value))

    @property
    def lorawan_version(self) -> str:
        with self._lock:
            return self._settings.lorawan_version

    @lorawan_version.setter
    def lorawan_version(self, value: str) -> None:
        version = LoRaWANVersion.parse(value).value
        self._change("lorawan_version", version, lorawan_version=version)

    @property
    def relay_spreading_factor(self) -> int:
        with self._lock:
            return self._settings.relay_spreading_factor

    @relay_spreading_factor.setter
    def relay_spreading_factor(self, value: int) -> None:
        sf = int(value)
        if sf not in RELAY_SF_RANGE:
            raise ValueError(f"relay spreading factor must be SF7..SF12, got {value!r}")
        self._change("relay_spreading_factor", sf, relay_sf=sf)

    @property
    def relay_tx_power_dbm(self) -> int:
        with self._lock:
            return self._settings.relay_tx_power_dbm

    @relay_tx_power_dbm.setter
    def relay_tx_power_dbm(self, value: int) -> None:
        dbm = int(value)
        if dbm not in RELAY_TX_DBM_RANGE:
            raise ValueError(f"relay TX power must be 2..15 dBm, got {value!r}")
        self._change("relay_tx_power_dbm", dbm, relay_tx_power_dbm=dbm)

    @property
    def firmware_version(self) -> str:
        """The version of the image the DUT booted (the factory defaults' when flash names none)."""
        with self._lock:
            return self._image_version or self.factory.firmware_version

    @property
    def hardware_model(self) -> str:
        return self.factory.hardware_model

    @property
    def serial_number(self) -> str:
        return self.factory.serial_number or str(self.dev_eui).upper()

    def banner_lines(self) -> list[str]:
        """What the console prints at boot (the ``banner`` provider's lines, or a default)."""
        if self._banner is not None:
            return list(self._banner(self))
        return [f"{self.hardware_model} relay node firmware {self.firmware_version}", f"DevEUI {str(self.dev_eui).upper()}"]

    # ================================================================= FirmwareApi: state =======

    @property
    def running(self) -> bool:
        """Powered, booted and not halted."""
        with self._lock:
            return self._phase == "running" and not self._halted

    @property
    def phase(self) -> str:
        """``off``, ``por``, ``booting``, ``running``, ``rebooting`` or ``damaged``."""
        with self._lock:
            return self._phase

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def joined(self) -> bool:
        mac = self._running_mac()
        return bool(mac is not None and mac.joined)

    @property
    def dev_addr(self) -> DevAddr | None:
        mac = self._running_mac()
        return mac.dev_addr if mac is not None else None

    @property
    def fcnt_up(self) -> int:
        mac = self._running_mac()
        return mac.fcnt_up if mac is not None else 0

    @property
    def fcnt_down(self) -> int:
        mac = self._running_mac()
        return mac.fcnt_down if mac is not None else 0

    @property
    def last_downlink(self) -> DownlinkReceived | None:
        with self._lock:
            return self._last_downlink

    @property
    def mac(self) -> Any:
        """This boot's MAC (None while not booted)."""
        with self._lock:
            return self._ctx.mac if self._ctx is not None else None

    @property
    def relay(self) -> RelayApp | None:
        """This boot's relay application (None while not booted)."""
        with self._lock:
            return self._ctx.relay if self._ctx is not None else None

    # ================================================================= FirmwareApi: keys ========

    def set_app_key(self, key: AESKey) -> None:
        if not isinstance(key, AESKey):
            raise TypeError("set_app_key needs an AESKey")
        self._change("app_key", key, app_key=key, app_key_set=True)

    def set_nwk_key(self, key: AESKey) -> None:
        if not isinstance(key, AESKey):
            raise TypeError("set_nwk_key needs an AESKey")
        self._change("nwk_key", key, nwk_key=key, nwk_key_set=True)

    def has_keys(self) -> bool:
        with self._lock:
            return self._has_keys(self._settings)

    def set_relay_passphrase(self, passphrase: str) -> None:
        """Store K = SHA-256(passphrase) (never the passphrase) and use it from now on."""
        k = Key256(relay_key_k(passphrase), "relay_key")
        ctx = self._change("relay_key", k, relay_key=k, relay_key_set=True)
        if ctx is not None:
            def use() -> None:
                if ctx.relay is not None:
                    ctx.relay.key = RelayKey.from_k(k.reveal())
            ctx.sched.call_soon(use, name="relay-key")

    # ================================================================= FirmwareApi: actions =====

    def join(self) -> str | None:
        with self._lock:
            ctx = self._running_ctx()
            if ctx is None:
                return "not_running"
            if not self._has_keys(self._settings):
                return "no_keys"
            mac = ctx.mac
            if ctx.join_pending or ctx.console_tx_pending or (mac is not None and (mac.joining or mac.busy)):
                return "busy"
            ctx.join_pending = True
        ctx.sched.call_soon(self._do_join, ctx, name="dut-join")
        return None

    def send(self, fport: int, payload: bytes, confirmed: bool) -> str | None:
        with self._lock:
            ctx = self._running_ctx()
            if ctx is None:
                return "not_running"
            mac = ctx.mac
            if mac is None or not mac.joined:
                return "not_joined"
            if not 1 <= fport <= 223:
                return "bad_port"
            if len(payload) > self.region.data_rate(self._settings.data_rate).max_app_payload:
                return "too_long"
            if ctx.console_tx_pending or ctx.join_pending or mac.busy or mac.joining:
                return "busy"
            ctx.console_tx_pending = True
        ctx.sched.call_soon(ctx.uplinks.push, fport, bytes(payload), bool(confirmed), "console", name="dut-send")
        return None

    def reset(self) -> None:
        """Soft reboot (ATZ): RAM lost, NVM kept. Ignored while not running."""
        if self.running:
            self.scheduler.call_soon(self._soft_reset, "reset", name="dut-reset")

    def factory_reset(self) -> None:
        """Erase NVM (settings, keys, counters), then reboot into the factory defaults."""
        if self.running:
            self.scheduler.call_soon(self._factory_reset, name="dut-factory-reset")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # ================================================================= SWD ======================

    def halt(self) -> bool:
        """Halt the core (SWD): timers wait, receptions are lost, no events. False if unpowered."""
        with self._lock:
            if self._phase in ("off", "damaged"):
                return False
            self._halted = True
            return True

    def resume(self) -> None:
        """Let a halted core run again: the timers that came due meanwhile run now, in order."""
        with self._lock:
            if not self._halted:
                return
            self._halted = False
            ctx = self._ctx
            deferred: list[tuple[Timer | None, Callable[..., Any], tuple[Any, ...]]] = []
            if ctx is not None:
                deferred, ctx.deferred = ctx.deferred, []
        for timer, fn, args in deferred:
            if timer is None or not timer.cancelled:
                self.scheduler.call_soon(self._run_guarded, ctx, timer, fn, args, name="dut-resumed")

    def swd_reset(self) -> None:
        """Reset through SWD (SYSRESETREQ): the halt is released, RAM lost, NVM kept."""
        self.scheduler.call_soon(self._swd_reset, name="dut-swd-reset")

    def close(self) -> None:
        """Stop this firmware for good (rig shutdown): the MAC stops, NVM's committed image is saved."""
        with self._lock:
            self._closed = True
            ctx, self._ctx = self._ctx, None
            self._phase = "off"
        if ctx is not None:
            self._kill(ctx)
        self.board.set_state("off")
        self.nvm.save()

    # ================================================================= power =====================

    def _on_voltage(self, volts: float) -> None:
        # any thread (the supply's SCPI server): decide on the scheduler, never inline
        self.scheduler.call_soon(self._power_check, name="dut-power")

    def _power_check(self) -> None:
        if self._closed:
            return
        volts = self.supply.terminal_voltage()
        verdict = self.supervisor.assess(volts)
        with self._lock:
            phase = self._phase
        if verdict == "run":
            if phase == "off":
                with self._lock:
                    self._phase = "por"
                    gen = self._power_gen
                self.board.set_state("reset")
                self.scheduler.call_later(self.board.spec.por_hold_s, self._por_done, gen, name="dut-por")
            return
        if phase in ("por", "booting", "running", "rebooting"):
            self._power_down(volts)
        if verdict == "damaged":
            if phase != "damaged":
                log.error("%s: rail at %.2f V is above %.1f V: the board is damaged and stays off",
                          self.name, volts, self.board.spec.damage_v)
            with self._lock:
                self._phase = "damaged"
            self.board.set_state("off")
        else:
            self.board.set_state("reset")

    def _por_done(self, gen: int) -> None:
        with self._lock:
            if gen != self._power_gen or self._phase != "por" or self._closed:
                return
        if self.supervisor.assess(self.supply.terminal_voltage()) == "run":
            self._start_boot(self.supervisor.reset_cause())

    def _power_down(self, volts: float) -> None:
        with self._lock:
            ctx, self._ctx = self._ctx, None
            self._phase = "off"
            self._halted = False
            self._power_gen += 1
        log.info("%s: power lost (rail %.2f V)", self.name, volts)
        if ctx is not None:
            self._kill(ctx)
        self.nvm.power_lost()
        if self.memory is not None:
            self.memory.power_lost()
        self.contact.drive_coil(False)
        self.board.set_state("reset")

    def _kill(self, ctx: Boot) -> None:
        ctx.alive = False
        ctx.deferred.clear()
        if ctx.mac is not None:
            try:
                ctx.mac.stop()
            except Exception:  # a MAC bug must not keep the board alive
                log.exception("%s: MAC stop failed", self.name)
        ctx.medium.detach_all()

    # ================================================================= boot ======================

    def _start_boot(self, reason: BootReason) -> None:
        with self._lock:
            self._boot_seq += 1
            ctx = Boot(self, self._boot_seq)
            self._ctx = ctx
            self._phase = "booting"
        self.board.set_state("booting")
        ctx.sched.call_later(self.boot_time_s, self._boot_done, ctx, reason, name="dut-boot")

    def _boot_done(self, ctx: Boot, reason: BootReason) -> None:
        if self.memory is not None:  # the version is the image's in flash (a reflash shows at the next boot)
            version = self.memory.image_version()
            with self._lock:
                self._image_version = version
        view = self.view
        if not view.is_provisioned():
            if view.get("magic") == view.layout.magic:
                log.warning("%s: NVM layout version %s is not %s: provisioning factory defaults",
                            self.name, view.get("layout_version"), view.layout.layout_version)
            self._provision(self._guard(ctx, lambda: self._boot_done(ctx, reason)))
            return
        settings = self._read_settings()
        with self._lock:
            self._settings = settings
        if "contact_welded" in self.defects:
            self.contact.welded = True
        relay_key = RelayKey.from_k(settings.relay_key.reveal()) if settings.relay_key is not None else None
        ctx.relay = RelayApp(BootRelayPlatform(self, ctx), key=relay_key, expected=view.get("relay_expected"),
                             state=bool(view.get("relay_state")), defects=self.defects)
        self.board.set_state("sleep")
        self._build_mac(ctx, settings)
        with self._lock:
            self._phase = "running"
        self.boots.append(reason)
        self._emit(Booted(reason))
        ctx.relay.restore()
        if settings.activation == "otaa" and settings.joined_before and self._has_keys(settings):
            with self._lock:
                ctx.join_pending = True
            self._do_join(ctx)  # the relay announces itself once joined
        elif ctx.mac.joined:
            ctx.relay.announce()

    def _build_mac(self, ctx: Boot, s: _Settings) -> None:
        factory = self._mac_factory
        if factory is None:
            from hil.sim.dut.mac import DeviceMac  # imported late: the MAC module imports much of the stack

            factory = DeviceMac
        creds = MacCredentials(
            dev_eui=s.dev_eui, join_eui=s.join_eui, app_key=s.app_key, nwk_key=s.nwk_key, activation=s.activation,
            abp_dev_addr=s.abp_dev_addr if s.activation == "abp" else None,
            abp_keys=s.abp_keys if s.activation == "abp" else None,
        )
        storage = NvmMacStorage(self.view, guard=lambda fn: self._guard(ctx, fn))
        self.board.set_tx_power_dbm(self.region.tx_power_dbm(s.tx_power))
        ctx.mac_inputs = s.mac_inputs()
        ctx.mac = factory(
            scheduler=ctx.sched, medium=ctx.medium, region=self.region, version=LoRaWANVersion.parse(s.lorawan_version),
            credentials=creds, storage=storage, host=BootHost(self, ctx), device_class=s.device_class,
            data_rate=s.data_rate, tx_power=s.tx_power, defects=self.defects & MAC_DEFECTS, rng=self.rng,
            join_attempts=self.join_attempts, name=self.name,
        )
        ctx.mac.start()

    def _provision(self, on_done: Callable[[], None]) -> None:
        """Erase, then write the factory defaults; the magic word goes last."""
        f = self.factory
        values: dict[str, Any] = {
            "lorawan_version": LoRaWANVersion.parse(f.lorawan_version).value, "activation": f.activation,
            "device_class": f.device_class, "data_rate": f.data_rate, "tx_power": f.tx_power, "adr": f.adr,
            "app_key_set": f.app_key is not None, "nwk_key_set": f.nwk_key is not None,
            "dev_eui": EUI64(f.dev_eui), "join_eui": EUI64(f.join_eui),
        }
        if f.app_key is not None:
            values["app_key"] = f.app_key
        if f.nwk_key is not None:
            values["nwk_key"] = f.nwk_key
        abp_keys = f.abp_nwk_s_key is not None and f.abp_app_s_key is not None
        values.update(abp_dev_addr=int(f.abp_dev_addr or 0), abp_keys_set=abp_keys)
        if abp_keys:
            values.update(abp_nwk_s_key=f.abp_nwk_s_key, abp_app_s_key=f.abp_app_s_key)
        if f.relay_passphrase is not None:
            values.update(relay_key=relay_key_k(f.relay_passphrase), relay_key_set=True)
        values.update(relay_sf=f.relay_spreading_factor, relay_tx_power_dbm=f.relay_tx_power_dbm)
        layout = self.view.layout
        values.update(layout_version=layout.layout_version, provisioned=True, magic=layout.magic)
        log.info("%s: provisioning factory defaults into NVM", self.name)
        self.nvm.erase_all()
        self.view.set(on_done, **values)

    def _read_settings(self) -> _Settings:
        g = self.view.get
        f = self.factory
        abp_keys = SessionKeys.for_1_0(g("abp_nwk_s_key"), g("abp_app_s_key")) if g("abp_keys_set") else None
        return _Settings(
            lorawan_version=g("lorawan_version") or f.lorawan_version,
            activation=g("activation") or f.activation,
            device_class=g("device_class") or f.device_class,
            data_rate=g("data_rate"), tx_power=g("tx_power"), adr=bool(g("adr")),
            dev_eui=g("dev_eui"), join_eui=g("join_eui"),
            app_key=g("app_key") if g("app_key_set") else None,
            nwk_key=g("nwk_key") if g("nwk_key_set") else None,
            abp_dev_addr=DevAddr(g("abp_dev_addr")) if g("abp_keys_set") or g("abp_dev_addr") else None,
            abp_keys=abp_keys,
            joined_before=bool(g("joined_before")),
            relay_key=g("relay_key") if g("relay_key_set") else None,
            relay_spreading_factor=g("relay_sf"), relay_tx_power_dbm=g("relay_tx_power_dbm"),
        )

    def _factory_settings(self) -> _Settings:
        f = self.factory
        abp_keys = SessionKeys.for_1_0(f.abp_nwk_s_key, f.abp_app_s_key) if (f.abp_nwk_s_key and f.abp_app_s_key) else None
        return _Settings(
            lorawan_version=LoRaWANVersion.parse(f.lorawan_version).value, activation=f.activation,
            device_class=f.device_class, data_rate=f.data_rate, tx_power=f.tx_power, adr=f.adr,
            dev_eui=EUI64(f.dev_eui), join_eui=EUI64(f.join_eui), app_key=f.app_key, nwk_key=f.nwk_key,
            abp_dev_addr=f.abp_dev_addr, abp_keys=abp_keys, joined_before=False,
            relay_key=Key256(relay_key_k(f.relay_passphrase), "relay_key") if f.relay_passphrase is not None else None,
            relay_spreading_factor=f.relay_spreading_factor, relay_tx_power_dbm=f.relay_tx_power_dbm,
        )

    def _has_keys(self, s: _Settings) -> bool:
        if s.activation == "abp":
            return s.abp_keys is not None and s.abp_dev_addr is not None
        if LoRaWANVersion.parse(s.lorawan_version).is_1_1:
            return s.app_key is not None and s.nwk_key is not None
        return s.app_key is not None

    # ================================================================= reboots ===================

    def _soft_reset(self, reason: BootReason, then: Callable[[], None] | None = None) -> None:
        with self._lock:
            ctx, self._ctx = self._ctx, None
            if ctx is None or self._phase not in ("booting", "running"):
                self._ctx = ctx
                return
            self._phase = "rebooting"
            self._halted = False
            gen = self._power_gen
        self._kill(ctx)
        self.contact.drive_coil(False)  # the coil's GPIO goes to its reset state
        self.board.set_state("reset")
        if then is not None:
            then()

        def reboot() -> None:
            with self._lock:
                if gen != self._power_gen or self._phase != "rebooting" or self._closed:
                    return
            self._start_boot(reason)

        self.nvm.when_idle(reboot)  # a CPU stalled in a synchronous EEPROM write finishes it first

    def _factory_reset(self) -> None:
        self._soft_reset("factory_reset", then=self.nvm.erase_all)

    def _swd_reset(self) -> None:
        with self._lock:
            self._halted = False
        self._soft_reset("swd_reset")

    # ================================================================= MAC host ==================

    def _do_join(self, ctx: Boot) -> None:
        mac = ctx.mac
        with self._lock:
            settings = replace(self._settings)
        if settings.mac_inputs() != ctx.mac_inputs:
            if mac.busy or mac.joining:
                self._join_over(ctx, JoinFailed("busy"))
                return
            log.info("%s: settings changed: rebuilding the MAC before joining", self.name)
            mac.stop()
            ctx.medium.detach_all()
            self.board.set_state("sleep")
            self._build_mac(ctx, settings)
            mac = ctx.mac
        if settings.activation == "abp":
            with self._lock:
                ctx.join_pending = False
            if mac.joined:
                self._emit(Joined(mac.dev_addr))
                if ctx.relay is not None:
                    ctx.relay.announce()
            return
        result = mac.join()
        if result is not None:
            self._join_over(ctx, JoinFailed(result))

    def _join_over(self, ctx: Boot, event: DutEvent) -> None:
        with self._lock:
            ctx.join_pending = False
        self._emit(event)
        ctx.uplinks.pump()

    def _mac_joined(self, ctx: Boot, dev_addr: DevAddr) -> None:
        with self._lock:
            first = not self._settings.joined_before
            self._settings.joined_before = True
        if first:
            self.view.set(None, joined_before=True)
        self._join_over(ctx, Joined(dev_addr))
        if ctx.relay is not None:
            ctx.relay.announce()

    def _mac_join_failed(self, ctx: Boot, reason: str) -> None:
        self._join_over(ctx, JoinFailed(reason))

    def _mac_tx_done(self, ctx: Boot, fcnt: int, confirmed: bool, acked: bool | None) -> None:
        owner = ctx.uplinks.tx_done()
        if owner == "console":
            with self._lock:
                ctx.console_tx_pending = False
            self._emit(TxDone(fcnt, confirmed, acked))
        ctx.uplinks.pump()

    def _mac_downlink(self, ctx: Boot, event: DownlinkReceived) -> None:
        with self._lock:
            self._last_downlink = event
        self._emit(event)
        if ctx.relay is not None:
            ctx.relay.on_downlink(event.fport, event.payload)

    def _uplink_dropped(self, ctx: Boot, owner: str) -> None:
        if owner == "console":
            with self._lock:
                ctx.console_tx_pending = False

    def _drive_coil(self, on: bool) -> None:
        self.contact.drive_coil(on)
        self.board.set_coil(on)
        self._emit(RelayChanged(on))

    # ================================================================= plumbing ==================

    def _running_ctx(self) -> Boot | None:
        """With the lock held: the running, not halted boot."""
        if self._phase != "running" or self._halted:
            return None
        return self._ctx

    def _running_mac(self) -> Any:
        with self._lock:
            ctx = self._ctx if self._phase == "running" else None
            return ctx.mac if ctx is not None else None

    def _guard(self, ctx: Boot, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` as a callback of boot ``ctx``: dropped once it is dead, deferred while halted."""

        def guarded(*args: Any) -> None:
            self._run_guarded(ctx, None, fn, args)

        return guarded

    def _run_guarded(self, ctx: Boot | None, timer: Timer | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if ctx is None or not ctx.alive:
            return
        if self._halted:
            ctx.deferred.append((timer, fn, args))
            return
        fn(*args)

    def _change(self, attr: str, value: Any, **nvm_fields: Any) -> Boot | None:
        """A console setting: update the RAM copy and write NVM (on the scheduler). Ignored with a
        warning while the firmware is not running (an unpowered console cannot be typed to)."""
        with self._lock:
            ctx = self._running_ctx()
            if ctx is None:
                log.warning("%s: %s not changed: the firmware is not running", self.name, attr)
                return None
            setattr(self._settings, attr, value)
        ctx.sched.call_soon(lambda: self.view.set(None, **nvm_fields), name=f"dut-set-{attr}")
        return ctx

    def _emit(self, event: DutEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a console's bug must not break the firmware
                log.exception("%s: event listener failed on %s", self.name, type(event).__name__)
