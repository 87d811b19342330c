"""A stand-in for hil.sim.dut.mac.DeviceMac: same constructor and API, no radio.

It records every call, keeps its counters in the given MacStorage like the real MAC, and lets a
test decide what the network does: :meth:`FakeMac.accept_join`, :meth:`FakeMac.fail_join`,
:meth:`FakeMac.inject_downlink`. An accepted uplink "transmits" for ``airtime_s`` on the scheduler
it was given (radio_state tx, then sleep/rx) and reports ``mac_tx_done``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hil.lorawan.security import SessionKeys
from hil.lorawan.crypto import AESKey
from hil.lorawan.types import DevAddr
from hil.sim.dut.interfaces import DownlinkReceived, MacCredentials, MacState


@dataclass
class SentUplink:
    at: float
    fport: int
    payload: bytes
    confirmed: bool
    fcnt: int


class FakeMac:
    airtime_s = 0.05
    max_payload = 222

    def __init__(self, *, scheduler: Any, medium: Any, region: Any, version: Any, credentials: MacCredentials,
                 storage: Any, host: Any, device_class: str = "A", data_rate: int = 5, tx_power: int = 0,
                 defects: frozenset[str] = frozenset(), rng: Any = None, join_attempts: int = 8,
                 name: str = "dut") -> None:
        self.scheduler = scheduler
        self.medium = medium
        self.region = region
        self.version = version
        self.credentials = credentials
        self.storage = storage
        self.host = host
        self.device_class = device_class
        self.data_rate = data_rate
        self.tx_power = tx_power
        self.defects = defects
        self.join_attempts = join_attempts
        self.name = name
        self.calls: list[tuple[Any, ...]] = []
        self.sent: list[SentUplink] = []
        self.started = False
        self.stopped = False
        self.state = MacState()
        self._joined = False
        self._joining = False
        self._busy = False
        self._dev_addr: DevAddr | None = None
        self.join_requests: list[int] = []  # DevNonces used

    # -- DeviceMac API ---------------------------------------------------------------------------

    def start(self) -> None:
        self.calls.append(("start",))
        self.started = True
        self.state = self.storage.load()
        self.medium.attach(self)
        if self.credentials.activation == "abp":
            self._joined = True
            self._dev_addr = self.credentials.abp_dev_addr
        self.host.radio_state("rx" if (self.device_class == "C" and self._joined) else "sleep")

    def stop(self) -> None:
        self.calls.append(("stop",))
        self.stopped = True
        self.medium.detach(self)

    def join(self) -> str | None:
        self.calls.append(("join",))
        if self.credentials.activation == "abp":
            return None
        if self._joining or self._busy:
            return "busy"
        self._joining = True
        nonce = self.state.dev_nonce
        self.join_requests.append(nonce)
        self.state.dev_nonce = nonce + 1
        self.storage.persist(dev_nonce=nonce + 1)
        return None

    def send(self, fport: int, payload: bytes, confirmed: bool = False) -> str | None:
        self.calls.append(("send", fport, bytes(payload), confirmed))
        if not self._joined:
            return "not_joined"
        if self._busy or self._joining:
            return "busy"
        if not 1 <= fport <= 223:
            return "bad_port"
        if len(payload) > self.max_payload:
            return "too_long"
        fcnt = self.state.fcnt_up
        self.sent.append(SentUplink(self.scheduler.clock.now(), fport, bytes(payload), confirmed, fcnt))
        self._busy = True
        self.host.radio_state("tx")
        self.scheduler.call_later(self.airtime_s, self._tx_end, fcnt, confirmed, name="fake-tx")
        return None

    def set_device_class(self, device_class: str) -> None:
        self.calls.append(("set_device_class", device_class))
        self.device_class = device_class

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def joining(self) -> bool:
        return self._joining

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def dev_addr(self) -> DevAddr | None:
        return self._dev_addr

    @property
    def fcnt_up(self) -> int:
        return self.state.fcnt_up

    @property
    def fcnt_down(self) -> int:
        return self.state.n_fcnt_down or 0

    def on_air(self, reception: Any) -> None:
        self.calls.append(("on_air", reception))

    # -- what the test does as "the network" --------------------------------------------------

    def accept_join(self, dev_addr: DevAddr = DevAddr(0x26011234)) -> None:
        """The join-accept arrives: a session with fresh (fixed) keys."""
        assert self._joining, "accept_join without a join in progress"
        self._joining = False
        self._joined = True
        self._dev_addr = dev_addr
        keys = SessionKeys.for_1_0(AESKey(bytes(range(16)), "nwk_s_key"), AESKey(bytes(range(1, 17)), "app_s_key"))
        self.state.joined, self.state.dev_addr, self.state.fcnt_up = True, dev_addr, 0
        self.storage.persist(joined=True, dev_addr=dev_addr, session_keys=keys, fcnt_up=0, n_fcnt_down=None)
        if self.device_class == "C":
            self.host.radio_state("rx")
        self.host.mac_joined(dev_addr)

    def fail_join(self, reason: str = "rx_timeout") -> None:
        self._joining = False
        self.host.mac_join_failed(reason)

    def inject_downlink(self, payload: bytes, fport: int = 10, slot: str = "C") -> None:
        fcnt = (self.state.n_fcnt_down or 0) + 1
        self.state.n_fcnt_down = fcnt
        self.host.mac_downlink(DownlinkReceived(fport, bytes(payload), -60.0, 9.5, slot, fcnt))

    def _tx_end(self, fcnt: int, confirmed: bool) -> None:
        self.state.fcnt_up = fcnt + 1
        self.storage.persist(fcnt_up=fcnt + 1)
        self._busy = False
        self.host.radio_state("rx" if self.device_class == "C" else "sleep")
        self.host.mac_tx_done(fcnt, confirmed, None)


@dataclass
class FakeMacFactory:
    """Pass as ``mac_factory``: builds FakeMacs and keeps them (``current`` = the latest)."""

    macs: list[FakeMac] = field(default_factory=list)
    airtime_s: float = 0.05

    def __call__(self, **kwargs: Any) -> FakeMac:
        mac = FakeMac(**kwargs)
        mac.airtime_s = self.airtime_s
        self.macs.append(mac)
        return mac

    @property
    def current(self) -> FakeMac:
        assert self.macs, "no MAC built yet (the firmware has not booted)"
        return self.macs[-1]


# --- a bench around the firmware, for the firmware's own tests ---------------------------------

RELAY_PASSPHRASE = "01234567"  # the seed's example: K = 924592b9...


class DutBench:
    """ManualClock, scheduler, medium, 5 V supply, relay contact, in-memory (or file) NVM and a
    :class:`~hil.sim.dut.firmware.Firmware` on :class:`FakeMac`. Nothing runs until the test
    drives :meth:`run` (``Scheduler.run_until``)."""

    def __init__(self, *, nvm_path: Any = None, defects: frozenset[str] = frozenset(), power_on: bool = True,
                 with_memory: bool = False, **factory_overrides: Any) -> None:
        from hil.clock import ManualClock
        from hil.lorawan.region import get_region
        from hil.lorawan.types import EUI64
        from hil.sim.dut.firmware import FactoryDefaults, Firmware
        from hil.sim.dut.nvm import Nvm
        from hil.sim.mains import RelayContact
        from hil.sim.power import SupplyChannel
        from hil.sim.radio import RadioMedium
        from hil.sim.scheduler import Scheduler

        self.clock = ManualClock()
        self.scheduler = Scheduler(self.clock)
        self.medium = RadioMedium(self.scheduler)
        self.region = get_region("EU868")
        self.supply = SupplyChannel()
        self.supply.configure(voltage=5.0, current_limit=1.0)
        self.contact = RelayContact(self.scheduler)
        self.nvm = Nvm(self.scheduler, nvm_path)
        factory: dict[str, Any] = dict(
            dev_eui=EUI64("70b3d57ed0000001"), join_eui=EUI64("70b3d57ed00000ff"),
            app_key=AESKey("2b7e151628aed2a6abf7158809cf4f3c", "app_key"), relay_passphrase=RELAY_PASSPHRASE,
            device_class="C", tx_power=1,  # EU868 TXPower 1 = 14 dBm: the reference TX current
        )
        factory.update(factory_overrides)
        self.factory = FactoryDefaults(**factory)
        self.macs = FakeMacFactory()
        from hil.sim.dut.memory import DutMemory

        self.memory = DutMemory(self.nvm) if with_memory else None
        self.fw = Firmware(self.scheduler, self.medium, self.region, self.supply, self.contact, self.nvm,
                           factory=self.factory, defects=defects, mac_factory=self.macs, memory=self.memory)
        self.events: list[tuple[float, Any]] = []
        self.fw.subscribe(lambda e: self.events.append((self.clock.now(), e)))
        if power_on:
            self.supply.set_output(True)

    @property
    def now(self) -> float:
        return self.clock.now()

    @property
    def mac(self) -> FakeMac:
        return self.macs.current

    def run(self, seconds: float) -> None:
        self.scheduler.run_for(seconds)

    def boot(self) -> None:
        """Run until the firmware has booted (fails after 1 s of rig time)."""
        deadline = self.now + 1.0
        while not self.fw.running and self.now < deadline:
            self.run(0.001)
        assert self.fw.running, f"firmware did not boot (phase {self.fw.phase})"

    def join(self) -> None:
        """Join through the API and let the fake network accept; settle the announcements."""
        assert self.fw.join() is None
        self.run(0.001)
        self.mac.accept_join()
        self.run(0.2)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for _, e in self.events]

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def power_cycle(self, off_s: float = 0.1) -> None:
        self.supply.set_output(False)
        self.run(off_s)
        self.supply.set_output(True)
