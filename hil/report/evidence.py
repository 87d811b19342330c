"""What happened on the rig during one test, sliced by rig time from the parts' own records.

Every part keeps its history in memory, stamped with the rig clock: the console its
:class:`~drivers.console.expect.Transcript`, the reference network its
:class:`~hil.network.events.EventLog`, the supply ``events`` (:class:`~drivers.psu.PowerEvent`),
the feedback meter ``events`` (readings), the relay controller ``log`` (packets), and rig steps
:data:`~hil.report.steps.STEP_LOG`. :func:`collect` takes what falls in a test's window
``[start, end]``; :func:`dut_states` turns it into the DUT's state over time for the timeline.

Parts are read by duck typing (an attribute a part lacks is simply no evidence), so this module
imports no driver. Nothing here talks to an instrument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from hil.report.steps import STEP_LOG, StepLog, StepRecord

__all__ = [
    "ConsoleLine",
    "Evidence",
    "Marker",
    "StateSpan",
    "collect",
    "console_markers",
    "dut_states",
    "transcript_text",
]

OFF, POWERED, JOINING, JOINED, BROWN_OUT = "unpowered", "powered", "joining", "joined", "brown-out"
STATES = (OFF, POWERED, JOINING, JOINED, BROWN_OUT)
_OFF_ACTIONS = {"output off", "cut", "ovp tripped", "ocp tripped"}
_ON_ACTIONS = {"output on", "brown-out restore"}
_OUTPUT_ACTIONS = _OFF_ACTIONS | _ON_ACTIONS | {"brown-out"}


@dataclass(frozen=True, slots=True)
class ConsoleLine:
    """One transcript line: rig time, ``>`` sent / ``<`` received / ``#`` note, text (already masked)."""

    time: float
    direction: str
    text: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A notable console line: rig time, what it means (``joined``, ``join failed``, ``boot``,
    ``error reply``), and the line."""

    time: float
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class StateSpan:
    """The DUT in ``state`` from ``start`` to ``end`` (rig seconds)."""

    start: float
    end: float
    state: str


@dataclass
class Evidence:
    """A test's rig evidence in the window ``[start, end]`` (rig seconds).

    ``power_before`` is the last supply output action before the window (the supply's state at its
    start); ``failure`` the rig time and first line of what made the test fail, if it did.
    """

    start: float
    end: float
    transcript: list[ConsoleLine] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    frames: list[Any] = field(default_factory=list)  # hil.network.events.FrameEvent
    power: list[Any] = field(default_factory=list)  # drivers.psu.PowerEvent
    power_before: Any | None = None
    readings: list[Any] = field(default_factory=list)  # drivers.feedback.Reading
    relay: list[Any] = field(default_factory=list)  # hil.relay.controller.LoggedPacket
    steps: list[StepRecord] = field(default_factory=list)
    failure: tuple[float, str] | None = None

    @property
    def empty(self) -> bool:
        """True when no part recorded anything in the window."""
        return not (self.transcript or self.frames or self.power or self.readings or self.relay or self.steps)


def _within(items: Iterable[Any], start: float, end: float) -> list[Any]:
    return [i for i in items if start <= getattr(i, "time", start - 1) <= end]


def console_markers(lines: Sequence[ConsoleLine], profile: Any) -> list[Marker]:
    """The received lines that say something about the DUT's state, by its dialect profile's patterns."""
    patterns: list[tuple[str, str]] = []
    join = getattr(profile, "join", None)
    if join is not None:
        patterns += [("joined", join.joined), ("join failed", join.failed)]
    banner = getattr(profile, "boot_banner_end", None)
    if banner:
        patterns.append(("boot", banner))
    patterns += [("error reply", p) for p in getattr(profile, "error", None) or ()]
    compiled = []
    for kind, pattern in patterns:
        try:
            compiled.append((kind, re.compile(pattern)))
        except (re.error, TypeError):
            continue
    found = []
    for line in lines:
        if line.direction != "<":
            continue
        for kind, regex in compiled:
            if regex.search(line.text):
                found.append(Marker(line.time, kind, line.text))
                break
    return found


def collect(
    start: float | None,
    end: float,
    *,
    console: Any = None,
    network: Any = None,
    psu: Any = None,
    meter: Any = None,
    relay: Any = None,
    steps: StepLog = STEP_LOG,
    failure: tuple[float, str] | None = None,
) -> Evidence:
    """Everything the given parts recorded between ``start`` (None: since they opened) and ``end``."""
    lo = float("-inf") if start is None else start
    transcript: list[ConsoleLine] = []
    markers: list[Marker] = []
    if console is not None and getattr(console, "transcript", None) is not None:
        entries = console.transcript.entries()
        transcript = [ConsoleLine(e.time, e.direction, e.text) for e in entries if lo <= e.time <= end]
        markers = console_markers(transcript, getattr(console, "profile", None))
    frames = _within(network.events.events(), lo, end) if network is not None and hasattr(network, "events") else []
    power_all = list(getattr(psu, "events", None) or [])
    power = _within(power_all, lo, end)
    before = [e for e in power_all if e.time < lo and e.action in _OUTPUT_ACTIONS]
    readings = _within(getattr(meter, "events", None) or [], lo, end)
    packets = _within(getattr(relay, "log", None) or [], lo, end)
    step_list = steps.between(lo, end)
    times = ([c.time for c in transcript] + [f.time for f in frames] + [p.time for p in power]
             + [r.time for r in readings] + [p.time for p in packets] + [s.start for s in step_list])
    first = start if start is not None else (min(times) if times else end)
    return Evidence(
        start=min(first, end), end=max(first, end), transcript=transcript, markers=markers, frames=frames, power=power,
        power_before=before[-1] if before else None, readings=readings, relay=packets, steps=step_list,
        failure=failure,
    )


def transcript_text(evidence: Evidence) -> str:
    """The console lines of the window as the transcript file shows them."""
    if not evidence.transcript:
        return "(no console line in this test's window)\n"
    return "".join(f"[{line.time:11.3f}] {line.direction} {line.text}\n" for line in evidence.transcript)


def _power_state(action: str) -> str | None:
    if action in _OFF_ACTIONS:
        return OFF
    if action in _ON_ACTIONS:
        return POWERED
    if action == "brown-out":
        return BROWN_OUT
    return None


def dut_states(evidence: Evidence) -> list[StateSpan]:
    """The DUT's state over the window: unpowered / powered / joining / joined / brown-out.

    From the supply's output actions (the state before the window from ``power_before``), the
    network's join-requests (joining), and the console's join reports (joined, or back to
    powered on a failed join). Unknown before the first clue.
    """
    changes: list[tuple[float, int, str]] = []  # (time, order within the same instant, state)
    for event in evidence.power:
        state = _power_state(event.action)
        if state is not None:
            changes.append((event.time, 0, state))
    for frame in evidence.frames:
        if frame.direction == "up" and frame.mtype in ("join_request", "rejoin_request"):
            changes.append((frame.time, 1, JOINING))
    for marker in evidence.markers:
        if marker.kind == "joined":
            changes.append((marker.time, 2, JOINED))
        elif marker.kind == "join failed":
            changes.append((marker.time, 2, POWERED))
    changes.sort()
    state = _power_state(evidence.power_before.action) if evidence.power_before is not None else None
    spans: list[StateSpan] = []
    t = evidence.start
    for when, _, new in changes:
        if new == JOINING and state in (OFF, BROWN_OUT):
            continue  # a late copy of a frame sent before the cut
        if new in (JOINED, JOINING) and state == OFF:
            continue
        if new == state:
            continue
        if state is not None and when > t:
            spans.append(StateSpan(t, when, state))
        state, t = new, max(t, when)
    if state is not None and evidence.end > t:
        spans.append(StateSpan(t, evidence.end, state))
    return spans
