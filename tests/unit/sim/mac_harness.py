"""Test harness for the virtual DUT's LoRaWAN MAC (:class:`hil.sim.dut.mac.DeviceMac`). No test lives here.

* :class:`MemoryStorage` — a :class:`~hil.sim.dut.interfaces.MacStorage` in RAM whose writes take
  ``latency_s`` of rig time each (one after the other); :meth:`MemoryStorage.cut_power` drops the
  writes not yet committed, as a power cut tears them.
* :class:`RecordingHost` — a :class:`~hil.sim.dut.interfaces.MacHost` that records every call
  with its rig time.
* :class:`HarnessGateway` — a test-only gateway on the :class:`~hil.sim.radio.RadioMedium`: it
  hands every uplink to the reference :class:`~hil.network.NetworkServer` and transmits the first
  item of every downlink the server sends (the last one with ``rx2_fallback``) at uplink end +
  ``delay_s`` (at once for Class C). The real gateway model lives elsewhere.
* :class:`Bench` / :func:`make_bench` — all of it on a ManualClock, with boots and power cuts.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from hil.clock import Clock, Deadline, ManualClock
from hil.lorawan.airtime import time_on_air
from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import DataFrame, JoinRequest, decode
from hil.lorawan.region import Region, get_region
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr, NetID
from hil.lorawan.version import LoRaWANVersion
from hil.network import DeviceConfig, DownlinkFrame, DownlinkItem, LoopbackTransport, NetworkServer, UplinkFrame
from hil.sim.dut.interfaces import DownlinkReceived, MacCredentials, MacState
from hil.sim.dut.mac import DeviceMac
from hil.sim.radio import RadioMedium, Reception, Transmission
from hil.sim.scheduler import Scheduler, Timer

# Distinctive keys, so that a leak would be found by scanning text for their hex.
APP_KEY_HEX = "2b7e151628aed2a6abf7158809cf4f3c"
NWK_KEY_HEX = "603deb1015ca71be2b73aef0857d7781"
NWK_S_KEY_HEX = "f19c3a9e2b8d74a0c5e61d0b93a7f244"
APP_S_KEY_HEX = "8a1d4e7f03b2c6958e0fa41c7d3b2e6a"
S_NWK_KEY_HEX = "d4c3b2a1f0e9d8c7b6a5948372615049"
ENC_NWK_KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ALL_KEY_HEX = (APP_KEY_HEX, NWK_KEY_HEX, NWK_S_KEY_HEX, APP_S_KEY_HEX, S_NWK_KEY_HEX, ENC_NWK_KEY_HEX)

DEV_EUI = EUI64("0004a30b001c0530")
JOIN_EUI = EUI64("70b3d57ed0000001")
ABP_DEV_ADDR = DevAddr("26000042")
NET_ID = NetID(0x000013)
_MAC_STATE_FIELDS = frozenset(f.name for f in dataclasses.fields(MacState))


# --- NVM ---------------------------------------------------------------------------------------


@dataclass
class _Write:
    issued_at: float
    commit_at: float
    changes: dict[str, Any]
    on_done: Callable[[], None] | None
    timer: Timer | None = None


class MemoryStorage:
    """MacStorage in RAM with NVM latency. ``commits``: (commit time, changes) in order;
    ``torn``: the writes a power cut dropped."""

    def __init__(self, scheduler: Scheduler, *, latency_s: float = 0.02, state: MacState | None = None) -> None:
        self.scheduler = scheduler
        self.latency_s = latency_s
        self.committed = state if state is not None else MacState()
        self.commits: list[tuple[float, dict[str, Any]]] = []
        self.torn: list[dict[str, Any]] = []
        self._pending: list[_Write] = []
        self._free_at = float("-inf")

    def load(self) -> MacState:
        return dataclasses.replace(self.committed)

    def persist(self, on_done: Callable[[], None] | None = None, **changes: object) -> None:
        unknown = set(changes) - _MAC_STATE_FIELDS
        if unknown:
            raise TypeError(f"MacState has no field {', '.join(sorted(unknown))}")
        now = self.scheduler.clock.now()
        commit_at = max(now, self._free_at) + self.latency_s
        self._free_at = commit_at
        write = _Write(now, commit_at, dict(changes), on_done)
        write.timer = self.scheduler.call_at(commit_at, self._commit, write, name="nvm-commit")
        self._pending.append(write)

    def _commit(self, write: _Write) -> None:
        self._pending.remove(write)
        for name, value in write.changes.items():
            setattr(self.committed, name, value)
        self.commits.append((self.scheduler.clock.now(), write.changes))
        if write.on_done is not None:
            write.on_done()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def cut_power(self) -> None:
        """Drop every write not yet committed (its on_done never runs)."""
        for write in self._pending:
            if write.timer is not None:
                write.timer.cancel()
            self.torn.append(write.changes)
        self._pending.clear()
        self._free_at = float("-inf")


# --- host ----------------------------------------------------------------------------------------


class RecordingHost:
    """MacHost recording every call as (rig time, ...). Thread-safe enough for a scheduler thread
    writing and a test thread waiting in :meth:`wait_for`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.changed = threading.Condition()
        self.joined: list[tuple[float, DevAddr]] = []
        self.join_failed: list[tuple[float, str]] = []
        self.tx_done: list[tuple[float, int, bool, bool | None]] = []
        self.downlinks: list[tuple[float, DownlinkReceived]] = []
        self.radio: list[tuple[float, str]] = []

    def mac_joined(self, dev_addr: DevAddr) -> None:
        with self.changed:
            self.joined.append((self.clock.now(), dev_addr))
            self.changed.notify_all()

    def mac_join_failed(self, reason: str) -> None:
        with self.changed:
            self.join_failed.append((self.clock.now(), reason))
            self.changed.notify_all()

    def mac_tx_done(self, fcnt: int, confirmed: bool, acked: bool | None) -> None:
        with self.changed:
            self.tx_done.append((self.clock.now(), fcnt, confirmed, acked))
            self.changed.notify_all()

    def mac_downlink(self, event: DownlinkReceived) -> None:
        with self.changed:
            self.downlinks.append((self.clock.now(), event))
            self.changed.notify_all()

    def radio_state(self, state: Literal["sleep", "rx", "tx"]) -> None:
        with self.changed:
            self.radio.append((self.clock.now(), state))
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], rig_seconds: float) -> bool:
        """Wait (rig time, bounded) until ``predicate()``: for tests on a running scheduler."""
        with self.changed:
            return self.clock.wait_for(self.changed, predicate, Deadline.after(self.clock, rig_seconds))

    def rx_opened_at(self) -> list[float]:
        """Times the radio went to "rx"."""
        return [t for t, s in self.radio if s == "rx"]


# --- gateway -------------------------------------------------------------------------------------


class HarnessGateway:
    """A test-only gateway bridging the medium and a NetworkServer (see the module docs)."""

    def __init__(self, scheduler: Scheduler, medium: RadioMedium, *, name: str = "gw") -> None:
        self.name = name
        self.scheduler = scheduler
        self.medium = medium
        self.ns: NetworkServer | None = None
        self.rx2_fallback = False
        self.uplinks: list[Transmission] = []
        self.downlinks: list[Transmission] = []
        self._uplink_end: dict[bytes, float] = {}
        self._count = 0
        medium.attach(self)

    def on_air(self, reception: Reception) -> None:
        tx = reception.tx
        if tx.downlink or self.ns is None:
            return
        self._count += 1
        context = self._count.to_bytes(4, "big")
        self._uplink_end[context] = tx.end
        self.uplinks.append(tx)
        self.ns.handle_uplink(UplinkFrame(
            tx.phy_payload, tx.frequency_hz, tx.spreading_factor, tx.bandwidth_hz, tx.code_rate,
            reception.rssi, reception.snr, context=context, uplink_id=self._count, time=tx.end,
        ))

    def on_downlink(self, frame: DownlinkFrame) -> None:
        if not frame.items:
            return
        item = frame.items[-1] if self.rx2_fallback else frame.items[0]
        now = self.scheduler.clock.now()
        if item.delay_s is None:
            start = now
        else:
            start = self._uplink_end.get(item.context, now) + item.delay_s
        self.scheduler.call_at(start, self._transmit, item, start, name="gw-tx")

    def _transmit(self, item: DownlinkItem, start: float) -> None:
        airtime = time_on_air(len(item.phy_payload), item.spreading_factor, item.bandwidth_hz, crc=False)
        tx = Transmission(item.phy_payload, item.frequency_hz, item.spreading_factor, item.bandwidth_hz,
                          item.code_rate, item.power_dbm, start, start + airtime, True, self.name)
        self.downlinks.append(tx)
        self.medium.transmit(tx)


# --- bench ---------------------------------------------------------------------------------------


@dataclass
class Bench:
    """A MAC, its NVM and host, the air, a gateway and the reference network, on a ManualClock."""

    region: Region
    version: LoRaWANVersion
    clock: Clock
    scheduler: Scheduler
    medium: RadioMedium
    ns: NetworkServer
    transport: LoopbackTransport
    gateway: HarnessGateway
    storage: MemoryStorage
    host: RecordingHost
    credentials: MacCredentials
    mac_options: dict[str, Any]
    seed: int = 1
    boots: int = 0
    mac: DeviceMac | None = None
    macs: list[DeviceMac] = field(default_factory=list)

    def boot(self, **overrides: Any) -> DeviceMac:
        """Power up: a new DeviceMac on the same storage (rng seeded per boot), started."""
        options = {**self.mac_options, **overrides}
        self.boots += 1
        rng = options.pop("rng", None) or random.Random(self.seed * 1000 + self.boots)
        mac = DeviceMac(scheduler=self.scheduler, medium=self.medium, region=self.region, version=self.version,
                        credentials=self.credentials, storage=self.storage, host=self.host, rng=rng, **options)
        mac.start()
        self.mac = mac
        self.macs.append(mac)
        return mac

    def cut_power(self) -> None:
        """Power lost: the MAC stops, NVM writes in flight are torn."""
        if self.mac is not None:
            self.mac.stop()
            self.mac = None
        self.storage.cut_power()

    def reboot(self, **overrides: Any) -> DeviceMac:
        self.cut_power()
        return self.boot(**overrides)

    def run(self, seconds: float) -> None:
        self.scheduler.run_for(seconds)

    def run_until(self, predicate: Callable[[], bool], limit_s: float, step_s: float = 0.05) -> bool:
        """Run in small steps until ``predicate()`` or ``limit_s`` of rig time passed."""
        end = self.clock.now() + limit_s
        while not predicate():
            if self.clock.now() >= end:
                return False
            self.scheduler.run_until(min(end, self.clock.now() + step_s))
        return True

    def join(self, limit_s: float = 120.0) -> DevAddr:
        """Join (booting first if needed); fails the test if no join within ``limit_s``."""
        mac = self.mac or self.boot()
        count = len(self.host.joined)
        assert mac.join() is None
        assert self.run_until(lambda: len(self.host.joined) > count, limit_s), "no join-accept"
        return self.host.joined[-1][1]

    def send(self, fport: int, payload: bytes, confirmed: bool = False, limit_s: float = 60.0) -> tuple:
        """Send an uplink and wait for its TX done; returns the host's tx_done record."""
        assert self.mac is not None
        count = len(self.host.tx_done)
        assert self.mac.send(fport, payload, confirmed) is None
        assert self.run_until(lambda: len(self.host.tx_done) > count, limit_s), "no TX done"
        return self.host.tx_done[-1]

    # -- what went on air ---------------------------------------------------------------------------

    def device_tx(self) -> list[Transmission]:
        """Every transmission of the device (all boots), in order."""
        return [tx for tx in self.medium.log if not tx.downlink and tx.sender == "dut"]

    def join_requests(self) -> list[tuple[Transmission, JoinRequest]]:
        out = []
        for tx in self.device_tx():
            frame = decode(tx.phy_payload)
            if isinstance(frame, JoinRequest):
                out.append((tx, frame))
        return out

    def data_uplinks(self) -> list[tuple[Transmission, DataFrame]]:
        out = []
        for tx in self.device_tx():
            frame = decode(tx.phy_payload)
            if isinstance(frame, DataFrame):
                out.append((tx, frame))
        return out

    def check_clean(self) -> None:
        """No callback raised on the scheduler."""
        assert self.scheduler.errors == [], self.scheduler.errors


def session_keys_11() -> SessionKeys:
    return SessionKeys(AESKey(NWK_S_KEY_HEX, "FNwkSIntKey"), AESKey(S_NWK_KEY_HEX, "SNwkSIntKey"),
                       AESKey(ENC_NWK_KEY_HEX, "NwkSEncKey"), AESKey(APP_S_KEY_HEX, "AppSKey"), lorawan_1_1=True)


def session_keys_10() -> SessionKeys:
    return SessionKeys.for_1_0(AESKey(NWK_S_KEY_HEX, "NwkSKey"), AESKey(APP_S_KEY_HEX, "AppSKey"))


def make_bench(
    version: str = "1.0.4",
    *,
    region: str = "EU868",
    activation: Literal["otaa", "abp"] = "otaa",
    device_class: Literal["A", "C"] = "A",
    data_rate: int = 5,
    defects: tuple[str, ...] = (),
    join_attempts: int = 8,
    latency_s: float = 0.02,
    seed: int = 1,
    join_policy: Callable[[DeviceConfig], bool] | None = None,
    register: bool = True,
    state: MacState | None = None,
    clock: Clock | None = None,
    **device: Any,
) -> Bench:
    """A bench with the device provisioned on the network (``device``: DeviceConfig overrides
    such as ``rx_delay``, ``rx1_dr_offset``, ``rx2_dr``, ``cf_list``, ``last_join_nonce``)."""
    v = LoRaWANVersion.parse(version)
    reg = get_region(region)
    clock = clock if clock is not None else ManualClock()
    scheduler = Scheduler(clock)
    medium = RadioMedium(scheduler)
    gateway = HarnessGateway(scheduler, medium)
    transport = LoopbackTransport(on_downlink=gateway.on_downlink)
    ns = NetworkServer(reg, clock, net_id=NET_ID, transport=transport, join_policy=join_policy)
    gateway.ns = ns
    fields: dict[str, Any] = {"dev_eui": DEV_EUI, "version": v, "device_class": device_class,
                              "activation": activation}
    if activation == "otaa":
        fields.update(join_eui=JOIN_EUI, app_key=APP_KEY_HEX)
        if v.is_1_1:
            fields["nwk_key"] = NWK_KEY_HEX
        creds = MacCredentials(DEV_EUI, JOIN_EUI, AESKey(APP_KEY_HEX, "AppKey"),
                               AESKey(NWK_KEY_HEX, "NwkKey") if v.is_1_1 else None)
    else:
        fields.update(dev_addr=ABP_DEV_ADDR, app_s_key=APP_S_KEY_HEX)
        if v.is_1_1:
            fields.update(f_nwk_s_int_key=NWK_S_KEY_HEX, s_nwk_s_int_key=S_NWK_KEY_HEX, nwk_s_enc_key=ENC_NWK_KEY_HEX)
            keys = session_keys_11()
        else:
            fields["nwk_s_key"] = NWK_S_KEY_HEX
            keys = session_keys_10()
        creds = MacCredentials(DEV_EUI, JOIN_EUI, None, None, activation="abp", abp_dev_addr=ABP_DEV_ADDR,
                               abp_keys=keys)
    fields.update(device)
    if register:
        ns.add_device(DeviceConfig(**fields))
    options = {"device_class": device_class, "data_rate": data_rate, "defects": frozenset(defects),
               "join_attempts": join_attempts}
    return Bench(reg, v, clock, scheduler, medium, ns, transport, gateway,
                 MemoryStorage(scheduler, latency_s=latency_s, state=state), RecordingHost(clock), creds, options, seed)
