"""Per-boot context of the virtual firmware: what one boot's MAC and relay app see.

Each boot has a :class:`Boot` whose scheduler and radio medium are guarded proxies: when the boot
dies (power lost, reset) they drop every callback and reception; while the core is halted through
SWD they defer timers and drop receptions. So a stale callback of a previous boot can never act,
even if a component forgot to cancel it. The host, uplink queue and relay platform adapt the
firmware to the MAC and the relay application for one boot.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Literal

from hil.lorawan.types import DevAddr
from hil.relay.protocol import FPORT as RELAY_FPORT
from hil.sim.dut.interfaces import DownlinkReceived
from hil.sim.radio import RadioMedium, Reception, Transmission
from hil.sim.scheduler import Timer

if TYPE_CHECKING:
    from hil.sim.dut.firmware import Firmware
    from hil.sim.dut.relay_app import RelayApp

log = logging.getLogger("hil.sim.dut.firmware")
UPLINK_RETRY_S = 0.25


class Boot:
    """Everything one boot owns; ``alive`` False makes every guarded callback of it a no-op."""

    def __init__(self, fw: "Firmware", seq: int) -> None:
        self.seq = seq
        self.alive = True
        self.deferred: list[tuple[Timer | None, Callable[..., Any], tuple[Any, ...]]] = []
        self.sched = GuardedScheduler(fw, self)
        self.medium = GuardedMedium(fw, self)
        self.mac: Any = None
        self.mac_inputs: tuple[Any, ...] = ()
        self.relay: RelayApp | None = None
        self.uplinks = UplinkQueue(fw, self)
        self.join_pending = False
        self.console_tx_pending = False


class GuardedScheduler:
    """The scheduler as the MAC and the relay app see it: a dead boot's timers do nothing, a halted
    core's timers wait for :meth:`Firmware.resume`."""

    def __init__(self, fw: "Firmware", boot: Boot) -> None:
        self._fw = fw
        self._boot = boot
        self._real = fw.scheduler
        self.clock = fw.scheduler.clock
        self.name = fw.scheduler.name

    def call_at(self, at: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        holder: list[Timer] = []

        def fire(*a: Any) -> None:
            self._fw._run_guarded(self._boot, holder[0] if holder else None, fn, a)

        timer = self._real.call_at(at, fire, *args, name=name or getattr(fn, "__name__", "dut-callback"))
        holder.append(timer)
        return timer

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        return self.call_at(self._real.now() + max(0.0, delay), fn, *args, name=name)

    def call_soon(self, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        return self.call_at(self._real.now(), fn, *args, name=name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class GuardedNode:
    def __init__(self, fw: "Firmware", boot: Boot, node: Any) -> None:
        self._fw, self._boot, self._node = fw, boot, node

    @property
    def name(self) -> str:
        return self._node.name

    def on_air(self, reception: Reception) -> None:
        # a halted core services no radio interrupt: the frame is lost
        if self._boot.alive and not self._fw._halted:
            self._node.on_air(reception)


class GuardedMedium:
    """The radio medium as the MAC sees it: receptions reach the MAC only while its boot lives and
    the core runs; transmissions only from a living boot."""

    def __init__(self, fw: "Firmware", boot: Boot) -> None:
        self._fw, self._boot = fw, boot
        self._real: RadioMedium = fw.medium
        self._nodes: dict[int, GuardedNode] = {}

    def attach(self, node: Any) -> None:
        wrapper = GuardedNode(self._fw, self._boot, node)
        self._nodes[id(node)] = wrapper
        self._real.attach(wrapper)

    def detach(self, node: Any) -> None:
        wrapper = self._nodes.pop(id(node), None)
        if wrapper is not None:
            self._real.detach(wrapper)

    def detach_all(self) -> None:
        for wrapper in list(self._nodes.values()):
            self._real.detach(wrapper)
        self._nodes.clear()

    def transmit(self, tx: Transmission) -> None:
        if self._boot.alive:
            self._real.transmit(tx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class BootHost:
    """The MacHost of one boot (calls from a dead boot's MAC are dropped)."""

    def __init__(self, fw: "Firmware", boot: Boot) -> None:
        self._fw, self._boot = fw, boot

    def mac_joined(self, dev_addr: DevAddr) -> None:
        if self._boot.alive:
            self._fw._mac_joined(self._boot, dev_addr)

    def mac_join_failed(self, reason: str) -> None:
        if self._boot.alive:
            self._fw._mac_join_failed(self._boot, reason)

    def mac_tx_done(self, fcnt: int, confirmed: bool, acked: bool | None) -> None:
        if self._boot.alive:
            self._fw._mac_tx_done(self._boot, fcnt, confirmed, acked)

    def mac_downlink(self, event: DownlinkReceived) -> None:
        if self._boot.alive:
            self._fw._mac_downlink(self._boot, event)

    def radio_state(self, state: Literal["sleep", "rx", "tx"]) -> None:
        if self._boot.alive:
            self._fw.board.set_state(state)


class UplinkQueue:
    """Uplinks waiting for the MAC: sent one at a time, retried while the MAC says ``busy``."""

    def __init__(self, fw: "Firmware", boot: Boot) -> None:
        self._fw, self._boot = fw, boot
        self.items: deque[tuple[int, bytes, bool, str]] = deque()
        self.in_flight: deque[str] = deque()
        self._retry: Timer | None = None

    def push(self, fport: int, payload: bytes, confirmed: bool, owner: str) -> None:
        self.items.append((fport, payload, confirmed, owner))
        self.pump()

    def pump(self) -> None:
        mac = self._boot.mac
        while self.items and mac is not None:
            fport, payload, confirmed, owner = self.items[0]
            result = mac.send(fport, payload, confirmed)
            if result is None:
                self.items.popleft()
                self.in_flight.append(owner)
                return
            if result == "busy":
                if self._retry is None:
                    self._retry = self._boot.sched.call_later(UPLINK_RETRY_S, self._retry_now, name="dut-uplink-retry")
                return
            self.items.popleft()
            log.info("%s: %s uplink on FPort %d dropped: %s", self._fw.name, owner, fport, result)
            self._fw._uplink_dropped(self._boot, owner)

    def _retry_now(self) -> None:
        self._retry = None
        self.pump()

    def tx_done(self) -> str | None:
        return self.in_flight.popleft() if self.in_flight else None


class BootRelayPlatform:
    """What the relay application of one boot may touch."""

    def __init__(self, fw: "Firmware", boot: Boot) -> None:
        self._fw, self._boot = fw, boot

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self._boot.sched.call_later(delay, fn, *args, name="relay")

    def persist(self, on_done: Callable[[], None] | None = None, **fields: Any) -> None:
        done = self._fw._guard(self._boot, on_done) if on_done is not None else None
        self._fw.view.set(done, **fields)

    def send_uplink(self, payload: bytes) -> None:
        self._boot.uplinks.push(RELAY_FPORT, payload, False, "relay")

    def drive_coil(self, on: bool) -> None:
        self._fw._drive_coil(on)

    def output_voltage_rms(self) -> float:
        return self._fw.contact.output_voltage_rms()


# --- the firmware ------------------------------------------------------------------------------
