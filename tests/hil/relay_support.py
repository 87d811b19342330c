"""What the fcnt and relay suites share: the relay brought up after a join, the radio's duty cycle,
the output watched on the meter, host stalls on the virtual rig, and the three-source check
(commanded state, the DUT's report, the bench measurement). Timing rules: tests/hil/test_relay.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from drivers.console import ConsoleCommandError
from hil.clock import Deadline
from hil.relay.controller import NoCommunication
from hil.relay.protocol import Command, RelayMessage, Status
from tests.hil.support import airtime

POLL_S = 0.05  # rig seconds between meter readings while watching the output
ANSWER_DELAY_S = 1.0  # the relay answers SET_OUTPUT this long after switching
ANSWER_TOLERANCE_S = 0.25
STALL_STEP_S = 0.02  # rig seconds between the stall watcher's wake-ups
STALL_LIMIT_S = 0.5  # a host stall longer than this voids a timing measurement: it is taken again
TIMING_ATTEMPTS = 3
RADIO_BUSY_AFTER_UPLINK_S = 3.0  # an uplink's RX1/RX2 windows end within this (EU868: RX2 at 2 s + window)
JOIN_WITHIN_S = 120.0
OUTAGE_S = 1.0  # how long a power cycle keeps the DUT unpowered
SETTLE_WITHIN_S = 1.0  # a de-energised coil's contact opens within this (release ~5 ms)
VOLTS_TOLERANCE = 0.10  # a live output reads the feed's nominal volts within 10 % (DUT sense and meter alike)


# -- helpers (shared with test_fcnt.py) ------------------------------------------------------------


def relay_up(rig: Any, dut: Any, relay: Any, within_s: float = JOIN_WITHIN_S) -> RelayMessage:
    """The DUT joined and its relay announced itself (unsolicited 0x83, counter adopted).

    A DUT that joined before this power-up rejoins by itself (the console then answers AT+JOIN
    busy); a factory-fresh one is asked to join.
    """
    relay.discard_pending()
    deadline = Deadline.after(rig.clock, within_s)
    try:
        result = dut.join(deadline)
    except ConsoleCommandError as exc:
        if "BUSY" not in str(exc.code):
            raise
    else:
        assert result.joined, f"the DUT did not join: {result.line!r} ({result.reason})"
    try:
        return relay.wait_announcement(deadline.remaining)
    except NoCommunication as exc:
        raise AssertionError(f"the DUT joined but its relay sent no unsolicited SYNC response (0x83): {exc}") from None


def data_uplinks(rig: Any, network: Any, since: float = float("-inf"), **fields: Any) -> list[Any]:
    """The DUT's data uplinks the network logged (any outcome unless given), oldest first."""
    dev_eui = str(rig.rig.dut.lorawan.dev_eui)
    return [e for e in network.events.filter(direction="up", dev_eui=dev_eui, **fields)
            if e.mtype.endswith("data_up") and e.time >= since]


def wait_radio_free(rig: Any, network: Any) -> None:
    """Wait until the DUT's duty cycle lets it transmit at once (regional sub-band limits:
    after an uplink of airtime a at duty cycle d the sub-band is silent for a·(1−d)/d)."""
    dev_eui = str(rig.rig.dut.lorawan.dev_eui)
    free = rig.clock.now()
    for e in network.events.filter(direction="up", dev_eui=dev_eui):
        if e.dr is None or e.frequency_hz is None:
            continue
        duty = network.region.duty_cycle(e.frequency_hz)
        free = max(free, e.time + airtime(network, e) * (1.0 - duty) / duty)
    remaining = free + 0.05 - rig.clock.now()
    if remaining > 0:
        rig.clock.sleep(remaining)


def answer_event(rig: Any, network: Any, relay: Any, answer: RelayMessage, since: float) -> Any:
    """The network's record of the uplink that carried ``answer`` (matched by its bytes)."""
    wires = [p.wire for p in relay.log if p.direction == "rx" and p.message == answer and p.time >= since]
    for e in data_uplinks(rig, network, since, outcome="accepted", fport=rig.rig.dut.relay.fport):
        if e.payload in wires:
            return e
    raise AssertionError(f"the network logged no uplink carrying the relay's answer {describe(answer)}")


def describe(m: RelayMessage | None) -> str:
    """A relay message in words (for assertion messages)."""
    if m is None:
        return "nothing"
    names = {c.value: c.name for c in Command}
    kind = names.get(m.command, f"0x{m.command:02x}")
    if not m.is_response:
        return f"{kind} (counter {m.fcnt})"
    volts = m.output_voltage
    return (f"0x{m.cmd:02x} {kind} response (counter {m.fcnt}, status {status_name(m.status)}, "
            f"output {on_off(m.relay_state)}, "
            f"mains sensed {on_off(m.mains_sensed)}, {'not measured' if volts is None else f'{volts} V'})")


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:02x}"


def on_off(state: bool) -> str:
    return "ON" if state else "OFF"


def threshold_v(rig: Any) -> float:
    return float(rig.rig.feedback.mains_threshold_v)


class OutputWatch:
    """Polls the feedback meter in a background thread (rig time) until the output changes state.

    ``with OutputWatch(rig, meter) as watch: ...``; afterwards ``watch.change`` is the rig time
    of the first reading in the other state (None: no change) and ``watch.readings`` all of them.
    A meter fault in the thread is raised again on leaving the block.
    """

    def __init__(self, rig: Any, meter: Any, within_s: float = 30.0) -> None:
        self.clock = rig.clock
        self.meter = meter
        self.threshold = threshold_v(rig)
        self.deadline = Deadline.after(self.clock, within_s)
        self.readings: list[tuple[float, float]] = []
        self.initial: bool | None = None
        self.change: float | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="output-watch", daemon=True)

    def __enter__(self) -> "OutputWatch":
        volts = self.meter.ac_voltage()
        self.readings.append((self.clock.now(), volts))
        self.initial = volts >= self.threshold
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._error is not None and exc[0] is None:
            raise self._error

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.deadline.expired:
                t = self.clock.now()
                volts = self.meter.ac_voltage()
                self.readings.append((t, volts))
                if (volts >= self.threshold) != self.initial:
                    self.change = t
                    return
                self.clock.sleep(POLL_S)
        except BaseException as exc:  # handed to the test thread
            self._error = exc


class HostStalls:
    """How late the test host ran, in rig seconds, while the block ran: a background thread sleeps
    :data:`STALL_STEP_S` of rig time over and over and keeps the worst overshoot (``worst``).

    On the virtual rig the DUT lives in this process: a host that stalls (an overloaded machine)
    delays the DUT's timers by as much, so a timing measured across a stall says nothing about
    the DUT. Timed checks add ``worst`` to their allowance, and measure again when it exceeds
    :data:`STALL_LIMIT_S`.
    """

    def __init__(self, rig: Any) -> None:
        self.clock = rig.clock
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-stalls", daemon=True)

    def __enter__(self) -> "HostStalls":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last = self.clock.now()
        while not self._stop.is_set():
            self.clock.sleep(STALL_STEP_S)
            now = self.clock.now()
            self.worst = max(self.worst, now - last - STALL_STEP_S)
            last = now


def three_sources(what: str, commanded: bool, reported: RelayMessage, volts: float, threshold: float, *,
                  expected: str = "commanded", cause: str | None = None) -> None:
    """One assertion over the commanded state, the DUT's report and the bench measurement.

    ``expected`` names the first source when it is not a command (e.g. "safe state" after a power
    cycle); ``cause`` then replaces the diagnosis of a contact stuck open or welded.
    """
    measured = volts >= threshold
    sensed = reported.mains_sensed
    if reported.relay_state == commanded and sensed == commanded and measured == commanded:
        return
    lines = [f"{what}: the three sources disagree",
             f"  {expected + ':':<18}output {on_off(commanded)}",
             f"  DUT reports:      {describe(reported)}",
             f"  bench meter:      {volts:.1f} V at the relay output -> {on_off(measured)} "
             f"(mains at >= {threshold:g} V)"]
    if cause is not None:
        lines.append(f"  => {cause}")
        raise AssertionError("\n".join(lines))
    if measured != commanded and sensed == commanded:
        stuck = "closed (welded)" if measured else "open"
        lines.append(f"  => the DUT reports the commanded state but the bench measures its output {on_off(measured)}: "
                     f"the contact is stuck {stuck} and the DUT's feedback does not reflect its output")
    elif measured != commanded:
        stuck = "closed (welded)" if measured else "open"
        lines.append(f"  => the output did not follow the command: the contact is stuck {stuck}; "
                     f"the DUT's sense saw it (status {status_name(reported.status)})")
    elif sensed != measured:
        lines.append("  => the DUT's mains sense disagrees with the bench measurement of the same output")
    if reported.relay_state != commanded:
        lines.append("  => the DUT reports another commanded state than the one sent")
    raise AssertionError("\n".join(lines))


@dataclass(frozen=True)
class Feed:
    """The relay's mains feed as the rig's AC source reports it."""

    on: bool
    volts: float  # measured at the source's output


def feed_state(mains: Any) -> Feed:
    """The mains feed now: the source's output state and the RMS volts it measures."""
    return Feed(bool(mains.output_is_on()), float(mains.measure_voltage()))


def four_sources(what: str, commanded: bool, reported: RelayMessage, volts: float, threshold: float, feed: Feed,
                 nominal_v: float) -> None:
    """One assertion over the commanded state, the DUT's report, the bench meter and the mains feed.

    The output is live exactly when the relay is commanded on and its feed is on. The DUT's report
    must say what the meter measures: mains sensed (arg[1]) and its sensed volts (arg[2..3], when
    measured) on the same side of the threshold, status OUTPUT_FAULT exactly when the output
    disagrees with the command; a live output reads the feed's voltage within
    :data:`VOLTS_TOLERANCE` (meter against the nominal voltage, DUT against the meter).
    """
    live = commanded and feed.on
    measured = volts >= threshold
    dut_v = reported.output_voltage
    tolerance = VOLTS_TOLERANCE * nominal_v
    want_status = Status.OK if measured == commanded else Status.OUTPUT_FAULT
    problems: list[str] = []
    if reported.relay_state != commanded:
        problems.append(f"the DUT reports its output commanded {on_off(reported.relay_state)}; "
                        f"{on_off(commanded)} was sent")
    if measured != live:
        problems.append(f"the bench meter reads the output {'live' if measured else 'dead'}: with the relay "
                        f"commanded {on_off(commanded)} and its feed {on_off(feed.on)} it must be "
                        f"{'live' if live else 'dead'}")
    elif measured and abs(volts - nominal_v) > tolerance:
        problems.append(f"the bench meter reads {volts:.1f} V, the feed is set to {nominal_v:g} V "
                        f"(± {tolerance:g} V)")
    if reported.mains_sensed != measured:
        if reported.mains_sensed and not feed.on:
            problems.append("the DUT reports mains sensed at its output while its feed is OFF and the meter "
                            "reads it dead: its feedback repeats the command instead of reading its mains sense")
        else:
            problems.append(f"the DUT senses mains {on_off(reported.mains_sensed)}, the bench meter "
                            f"{on_off(measured)}: its mains sense disagrees with the measurement of the same output")
    if dut_v is not None and (dut_v >= threshold) != measured:
        problems.append(f"the DUT's sensed voltage {dut_v} V and the meter's {volts:.1f} V fall on opposite "
                        f"sides of {threshold:g} V")
    elif dut_v is not None and measured and abs(dut_v - volts) > tolerance:
        problems.append(f"the DUT senses {dut_v} V, the meter reads {volts:.1f} V (± {tolerance:g} V)")
    if reported.status != want_status:
        problems.append(f"status {status_name(reported.status)}, expected {want_status.name}: the output is "
                        f"{'live' if measured else 'dead'} with the relay commanded {on_off(commanded)}")
    if not problems:
        return
    lines = [f"{what}: the sources disagree",
             f"  commanded:        output {on_off(commanded)}",
             f"  mains feed:       {on_off(feed.on)} (source output {on_off(feed.on).lower()}, {feed.volts:.1f} V "
             f"measured there; nominal {nominal_v:g} V)",
             f"  DUT reports:      {describe(reported)}",
             f"  bench meter:      {volts:.1f} V at the relay output -> {on_off(measured)} "
             f"(mains at >= {threshold:g} V)"]
    lines.extend(f"  => {p}" for p in problems)
    raise AssertionError("\n".join(lines))


def set_and_watch(rig: Any, relay: Any, meter: Any, on: bool) -> tuple[float, RelayMessage, OutputWatch]:
    """SET_OUTPUT through the controller while the meter is watched; (sent at, answer, watch)."""
    sent = rig.clock.now()
    with OutputWatch(rig, meter) as watch:
        try:
            answer = relay.set_output(on)
        except NoCommunication as exc:
            raise AssertionError(f"SET {on_off(on)}: the relay did not answer: {exc}") from None
    return sent, answer, watch


def first_tx(relay: Any, since: float, cmd: int) -> float:
    """Rig time the controller first sent ``cmd`` at or after ``since``."""
    return next(p.time for p in relay.log if p.direction == "tx" and p.time >= since
                and p.message is not None and p.message.cmd == cmd)


def wait_reading(rig: Any, meter: Any, good: Callable[[float], bool], within_s: float) -> float:
    """Poll the meter until a reading is ``good`` or ``within_s`` rig seconds pass; the last reading."""
    deadline = Deadline.after(rig.clock, within_s)
    while True:
        volts = meter.ac_voltage()
        if good(volts) or deadline.expired:
            return volts
        rig.clock.sleep(POLL_S)


# -- tests ------------------------------------------------------------------------------------------
