"""Helpers the mission suites share: join and send through the console, and read what the
reference network saw since a mark — in rig time, on any rig.

A module that joins on its own after every boot (auto-join) or announces itself after a join
answers a command with a busy error for a while; :func:`join_now` and :func:`send_when_free`
retry once per rig second until it is free, within their deadline.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from drivers.console import ConsoleCommandError
from hil.clock import Deadline
from hil.lorawan.airtime import time_on_air_dr
from hil.network.events import FrameEvent

BUSY_RETRY_S = 1.0


def _when_free(rig: Any, deadline: Deadline, action: Callable[[], Any]) -> Any:
    while True:
        try:
            return action()
        except ConsoleCommandError as exc:
            if "BUSY" not in str(exc.code).upper() or deadline.expired:
                raise
            rig.clock.sleep(min(BUSY_RETRY_S, max(deadline.remaining, 0.0)))


def join_now(rig: Any, dut: Any, within_s: float = 180.0) -> Any:
    """Command a join (waiting while the module is busy) and return the module's report."""
    deadline = Deadline.after(rig.clock, within_s)
    return _when_free(rig, deadline, lambda: dut.join(deadline))


def send_when_free(rig: Any, dut: Any, port: int, payload: bytes, confirmed: bool = False,
                   within_s: float = 90.0) -> Any:
    """Send an uplink, retrying while the module is busy (the relay announces itself after a join)."""
    deadline = Deadline.after(rig.clock, within_s)
    return _when_free(rig, deadline, lambda: dut.send_uplink(port, payload, confirmed, deadline))


@dataclass(frozen=True)
class Since:
    """What the reference network saw from rig time ``t0`` on (for one device)."""

    network: Any
    dev_eui: Any
    t0: float

    def events(self, **fields: Any) -> list[FrameEvent]:
        return [e for e in self.network.events.filter(dev_eui=self.dev_eui, **fields) if e.time >= self.t0]

    def join_requests(self) -> list[FrameEvent]:
        return self.events(direction="up", mtype="join_request")

    def join_accepts(self) -> list[FrameEvent]:
        return self.events(direction="down", mtype="join_accept")

    def data_uplinks(self, **fields: Any) -> list[FrameEvent]:
        return [e for e in self.events(direction="up", **fields) if e.mtype.endswith("data_up")]

    def wait(self, rig: Any, within_s: float, **fields: Any) -> list[FrameEvent]:
        """Wait until an event with ``fields`` (at or after ``t0``) is seen; [] at the deadline."""
        t0 = self.t0
        return self.network.events.wait_for(rig.clock, Deadline.after(rig.clock, within_s),
                                            dev_eui=self.dev_eui, time=lambda t: t is not None and t >= t0, **fields)


def since_now(rig: Any, network: Any) -> Since:
    """A mark: events of the rig's DUT from now on."""
    return Since(network, rig.rig.dut.lorawan.dev_eui, rig.clock.now())


def airtime(network: Any, event: Any) -> float:
    """Time on air of a logged frame (its data rate and PHYPayload length)."""
    return time_on_air_dr(network.region, event.dr, len(event.phy_payload), uplink=event.direction == "up")


def uplink_start(network: Any, event: Any) -> float:
    """Rig time an uplink started on air (the network logs the end of its reception)."""
    return event.time - airtime(network, event)


def describe(events: list[FrameEvent]) -> str:
    """A compact listing of events for assertion messages (rig time, type, outcome, counters)."""
    rows = []
    for e in events:
        extra = [f"{k}={v}" for k, v in (("DevNonce", e.dev_nonce), ("FCnt", e.fcnt), ("FPort", e.fport),
                                         ("MHz", e.frequency_hz and e.frequency_hz / 1e6), ("DR", e.dr),
                                         ("windows", ",".join(e.windows) or None), ("reason", e.reason or None))
                 if v is not None]
        rows.append(f"  t={e.time:.3f} {e.direction} {e.mtype} {e.outcome} {' '.join(extra)}")
    return "\n".join(rows) or "  (none)"


@contextmanager
def device_settings(network: Any, dev_eui: Any, **changes: Any) -> Iterator[None]:
    """Provision the device differently on the network for a while (RxDelay, CFList...), then put it back."""
    old = network.reconfigure_device(dev_eui, **changes)
    try:
        yield
    finally:
        network.reconfigure_device(dev_eui, **old.model_dump())


@contextmanager
def join_policy(network: Any, policy: Callable[[Any], bool]) -> Iterator[None]:
    """Let ``policy`` decide on join-requests for a while (e.g. deny the device), then restore."""
    old = network.join_policy
    network.join_policy = policy
    try:
        yield
    finally:
        network.join_policy = old
