"""The functional test of a provisioned unit, over the air: each check returns its measurement.

Supply current is read from the bench supply (``MEAS:CURR?``): asleep before the join (a class C
node listens continuously once joined), and during a long uplink, sampled every
``sample_interval_s`` on a small thread: the highest reading is the transmitter's draw. A reading
below the TX limit means no sample fell inside the transmission (or a dead PA): the uplink is
sent again, ``tx_attempts`` times at most, before the unit fails.
"""

from __future__ import annotations

import logging
import statistics
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from drivers.console import ConsoleCommandError
from hil.clock import Clock, Deadline
from hil.lorawan.types import EUI64
from hil.provision.measure import Limit, Measurement
from hil.relay.controller import RelayController
from hil.relay.protocol import RelayKey

__all__ = ["CurrentSampler", "RelayLink", "join", "relay_click", "retry_busy", "sleep_current", "uplink_with_tx_current"]

log = logging.getLogger(__name__)


def retry_busy(clock: Clock, deadline: Deadline, action: Callable[[], Any], pause_s: float = 1.0) -> Any:
    """``action()``, again while the module answers BUSY (a join or an uplink of its own under way)."""
    while True:
        try:
            return action()
        except ConsoleCommandError as exc:
            if "BUSY" not in str(exc.code or exc.reply).upper() or deadline.expired:
                raise
            clock.sleep(min(pause_s, deadline.remaining))


def sleep_current(psu: Any, clock: Clock, limit: Limit, *, settle_s: float, samples: int) -> Measurement:
    """The median of ``samples`` supply readings after ``settle_s`` (the unit idle, not joined)."""
    if settle_s > 0:
        clock.sleep(settle_s)
    readings = [psu.measure_current() for _ in range(samples)]
    return Measurement("sleep_current", statistics.median(readings), "A", limit)


def join(console: Any, network: Any, clock: Clock, dev_eui: EUI64, timeout_s: float) -> Measurement:
    """OTAA join through the console; the network must have accepted this DevEUI. Measures the join time."""
    deadline = Deadline.after(clock, timeout_s)
    start = clock.now()
    result = retry_busy(clock, deadline, lambda: console.join(deadline))
    if not result.joined:
        raise AssertionError(f"the unit reported no join: {result.line!r} ({result.reason})")
    accepted = network.events.filter(mtype="join_request", outcome="join_accepted", dev_eui=dev_eui)
    if not accepted:
        seen = [e.outcome for e in network.events.filter(mtype="join_request", dev_eui=dev_eui)]
        raise AssertionError(f"the unit says joined, but the network accepted no join-request from "
                             f"{str(dev_eui).upper()} (join-requests seen: {seen})")
    return Measurement("join_time", result.time - start, "s")


class RelayLink:
    """The relay's controller on the network for one unit, listening from before the join on, so the
    relay's announcement (sent once it has joined) is never missed. Close it to unsubscribe."""

    def __init__(self, network: Any, clock: Clock, dev_eui: EUI64, key: RelayKey, fport: int) -> None:
        self.controller = RelayController(key, lambda payload: network.enqueue_downlink(dev_eui, fport, payload),
                                          clock)

        def deliver(up: Any) -> None:
            if up.fport == fport and int(up.dev_eui) == int(dev_eui):
                self.controller.deliver(up.payload)

        self._unsubscribe = network.on_uplink(deliver)

    def close(self) -> None:
        self._unsubscribe()


def relay_click(link: RelayLink, meter: Any, *, on_limit: Limit, off_limit: Limit, timeout_s: float) -> list[Measurement]:
    """Relay on then off over the air; the unit's report and the meter's 230 V reading must agree."""
    controller = link.controller
    controller.wait_announcement(timeout_s)
    measurements = []
    for on, limit, name in ((True, on_limit, "mains_on"), (False, off_limit, "mains_off")):
        answer = controller.set_output(on)
        volts = meter.ac_voltage()
        m = Measurement(name, volts, "V", limit)
        measurements.append(m)
        word = "on" if on else "off"
        if answer.relay_state != on:
            raise AssertionError(f"relay {word}: the unit answered state {'on' if answer.relay_state else 'off'}")
        if answer.mains_sensed != on:
            raise AssertionError(f"relay {word}: the unit senses mains {'present' if answer.mains_sensed else 'absent'}"
                                 f"; {m.describe()}")
        if not m.passed:
            raise AssertionError(f"relay {word}: {m.describe()}")
    return measurements


@dataclass
class CurrentSampler:
    """Reads the supply current every ``interval_s`` rig seconds on a thread until stopped."""

    psu: Any
    clock: Clock
    interval_s: float
    readings: list[float] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tx-current-sampler", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.readings.append(self.psu.measure_current())
                self.clock.wait(self._stop, self.interval_s)
        except BaseException as exc:  # re-raised by stop(): a thread must not die silently
            self.error = exc

    def __enter__(self) -> "CurrentSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def uplink_with_tx_current(console: Any, network: Any, psu: Any, clock: Clock, dev_eui: EUI64, *, port: int,
                           payload: bytes, limit: Limit, attempts: int, interval_s: float,
                           timeout_s: float) -> list[Measurement]:
    """Send ``payload`` while sampling the supply; the network must receive it, the peak must be in ``limit``."""
    tx: Measurement | None = None
    for attempt in range(1, attempts + 1):
        deadline = Deadline.after(clock, timeout_s)
        with CurrentSampler(psu, clock, interval_s) as sampler:
            sent = retry_busy(clock, deadline, lambda: console.send_uplink(port, payload, False, deadline))
        if sent.status != "sent":
            raise AssertionError(f"uplink on port {port}: the unit reported {sent.status} ({sent.line!r})")
        got = network.events.wait_for(clock, deadline, fport=port, dev_eui=dev_eui, outcome="accepted",
                                      payload=payload)
        if not got:
            raise AssertionError(f"the network received no uplink of {len(payload)} bytes on port {port} from "
                                 f"{str(dev_eui).upper()} (the module reported it sent)")
        tx = Measurement("tx_current", max(sampler.readings, default=0.0), "A", limit)
        log.info("unit %s: %s from %d readings (uplink attempt %d)", str(dev_eui).upper(), tx.describe(),
                 len(sampler.readings), attempt)
        if tx.passed or (limit.high is not None and tx.value > limit.high):
            break
    assert tx is not None
    received = Measurement("uplink_bytes", float(len(payload)), "B")
    if not tx.passed:
        raise AssertionError(f"{tx.describe()} after {attempts} uplink(s)")
    return [received, tx]
