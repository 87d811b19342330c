"""Shared helpers for the virtual gateway tests: a fake DUT on the radio medium and a pump that
drives a ManualClock scheduler while socket threads deliver work. No test lives here.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from hil.lorawan.airtime import time_on_air
from hil.sim.radio import RadioMedium, Reception, Transmission
from hil.sim.scheduler import Scheduler

GATEWAY_ID = "0016c001f153a14c"
JOIN_REQUEST = bytes.fromhex("00010101010101010102020202020202020303") + bytes.fromhex("09b97b32")


class FakeDut:
    """A device on the medium: sends uplinks, records the downlinks (inverted IQ) it hears."""

    name = "dut"

    def __init__(self, medium: RadioMedium, scheduler: Scheduler) -> None:
        self.medium = medium
        self.scheduler = scheduler
        self.heard: list[Reception] = []
        medium.attach(self)

    def on_air(self, reception: Reception) -> None:
        if reception.tx.downlink:
            self.heard.append(reception)

    def send(self, payload: bytes = JOIN_REQUEST, frequency_hz: int = 868_100_000, sf: int = 7,
             bw: int = 125_000, power_dbm: float = 14.0) -> Transmission:
        """Start an uplink now; the gateway hears it at its end."""
        start = self.scheduler.clock.now()
        tx = Transmission(payload, frequency_hz, sf, bw, "4/5", power_dbm, start,
                          start + time_on_air(len(payload), sf, bw), False, self.name)
        self.medium.transmit(tx)
        return tx


def pump(scheduler: Scheduler, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """ManualClock: run what socket threads handed over (call_soon) until ``done()``, bounded in real time."""
    tick = threading.Event()
    limit = time.monotonic() + timeout_s
    while True:
        scheduler.run_until(scheduler.clock.now())
        if done():
            return
        if time.monotonic() > limit:
            raise AssertionError(f"condition not met within {timeout_s} s of real time")
        tick.wait(0.002)


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}
