"""The timeline plot of one test (PNG): what the supply, the DUT, the radio and the relay did, over rig time.

Panels share the rig-time axis, each with labelled axes and a legend, and appear when they have
something to show: rig steps (spans), supply output voltage and current, DUT state (spans plus
the console's join reports), radio frames (uplinks above, downlinks below, annotated with type,
counters and window; rejected frames red), relay commands with the measured output voltage. A
red line marks the moment the test failed, with its message. Drawn with matplotlib's Agg canvas
(no pyplot, no display, safe in any thread).
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from hil.report.evidence import BROWN_OUT, JOINED, JOINING, OFF, POWERED, Evidence, dut_states
from hil.rigfile.redaction import redact

__all__ = ["frame_label", "render_timeline"]

WIDTH_IN, DPI = 13.0, 100

STATE_COLOURS = {OFF: "#9e9e9e", POWERED: "#90caf9", JOINING: "#ffcc80", JOINED: "#81c784", BROWN_OUT: "#e57373"}
OUTCOME_COLOURS = {"good": "#2e7d32", "bad": "#c62828", "warn": "#ef6c00", "other": "#616161"}
_GOOD = {"accepted", "join_accepted", "sent"}
_BAD = {"rejected", "denied", "error", "send_failed", "dropped"}
_WARN = {"retransmission", "duplicate", "replayed"}
_MARKERS = {"join_request": "^", "rejoin_request": "^", "join_accept": "v"}
_SHORT = {
    "join_request": "JoinReq", "rejoin_request": "Rejoin", "join_accept": "JoinAcc",
    "unconfirmed_data_up": "Up", "confirmed_data_up": "CUp", "unconfirmed_data_down": "Down",
    "confirmed_data_down": "CDown",
}


def _outcome_kind(outcome: str) -> str:
    return "good" if outcome in _GOOD else "bad" if outcome in _BAD else "warn" if outcome in _WARN else "other"


def frame_label(frame: Any) -> str:
    """A frame's annotation: ``JoinReq n=3``, ``JoinAcc RX1``, ``Up fc=4 p=2``, plus what went wrong."""
    parts = [_SHORT.get(frame.mtype, frame.mtype)]
    if frame.dev_nonce is not None and frame.mtype in ("join_request", "rejoin_request"):
        parts.append(f"n={frame.dev_nonce}")
    if frame.fcnt is not None:
        parts.append(f"fc={frame.fcnt}")
    if frame.fport is not None:
        parts.append(f"p={frame.fport}")
    if frame.direction == "down" and frame.windows:
        parts.append("/".join(frame.windows))
    if frame.mic_valid is False:
        parts.append("MIC!")
    if frame.outcome not in _GOOD:
        parts.append(f"[{frame.outcome}]")
    return " ".join(parts)


def _relay_label(packet: Any) -> str:
    m = packet.message
    if m is None:
        return "relay rx (undecodable)"
    names = {0x00: "NOP", 0x01: "SET_OUTPUT", 0x02: "GET_OUTPUT", 0x03: "SYNC"}
    name = names.get(m.cmd & 0x7F, f"0x{m.cmd:02x}")
    if packet.direction == "tx":
        arg = (" ON" if m.arg[0] else " OFF") if m.cmd == 0x01 else ""
        return f"{name}{arg} c={m.fcnt}" + (f" ({packet.note})" if packet.note else "")
    if m.cmd == 0x83:
        return f"SYNC resp expect={m.fcnt}"
    state = "on" if m.arg[0] else "off"
    mains = "mains" if m.arg[1] else "no mains"
    return f"{name} resp c={m.fcnt} {state}, {mains}"


def _power_series(evidence: Evidence) -> tuple[list[float], list[float], list[tuple[float, float]], list[tuple[float, float]]]:
    """Output voltage as a step series (setpoint while on, 0 while off), measured V and I points."""
    times: list[float] = []
    volts: list[float] = []
    setpoint: float | None = None
    on: bool | None = None
    before = evidence.power_before
    if before is not None:
        on = before.action not in ("output off", "cut", "ovp tripped", "ocp tripped")
        setpoint = before.volts if before.volts else None
    measured_v: list[tuple[float, float]] = []
    measured_i: list[tuple[float, float]] = []

    def level() -> float:
        return (setpoint or 0.0) if on else 0.0

    if on is not None:
        times.append(evidence.start)
        volts.append(level())
    for e in evidence.power:
        a = e.action
        if a in ("set voltage", "brown-out", "brown-out restore") and e.volts is not None:
            setpoint = e.volts
            if a == "brown-out restore":
                on = True if on is None else on
        elif a == "output on":
            on = True
            if e.volts is not None:
                setpoint = e.volts
        elif a in ("output off", "cut", "ovp tripped", "ocp tripped"):
            on = False
        elif a == "measure voltage" and e.volts is not None:
            measured_v.append((e.time, e.volts))
            continue
        elif a == "measure current" and e.amps is not None:
            measured_i.append((e.time, e.amps * 1000.0))
            continue
        else:
            continue
        if on is None:
            continue
        times.append(e.time)
        volts.append(level())
    if times:
        times.append(evidence.end)
        volts.append(volts[-1])
    return times, volts, measured_v, measured_i


AXES_WIDTH_PX = WIDTH_IN * DPI * 0.725  # the axes' share of the figure (see subplots_adjust below)
CHAR_PX = 5.4  # a 7-point character at 100 dpi, roughly (DejaVu Sans averages 0.55 em)


class _Placer:
    """Rows of labels that do not overlap: a label goes to the first row where its extent is free,
    or is left out (the mark itself stays) when every row is taken there."""

    def __init__(self, ax: Any, rows: int) -> None:
        left, right = ax.get_xlim()
        self.left, self.span = left, max(right - left, 1e-9)
        self.char = self.span * CHAR_PX / AXES_WIDTH_PX
        self.rows: list[list[tuple[float, float]]] = [[] for _ in range(rows)]

    def late(self, x: float) -> bool:
        """Near the right edge: the label goes left of its point."""
        return x > self.left + 0.75 * self.span

    def row(self, x: float, text: str) -> int | None:
        width = (len(text) + 2) * self.char
        lo, hi = (x - width, x) if self.late(x) else (x, x + width)
        for i, taken in enumerate(self.rows):
            if all(hi <= a or lo >= b for a, b in taken):
                taken.append((lo, hi))
                return i
        return None


def _annotate(ax: Any, placer: _Placer, x: float, y: float, text: str, colour: str = "#333333") -> bool:
    """A label near (x, y) in the first free row above (below, for y < 0.5) the point; False if none was free."""
    row = placer.row(x, text)
    if row is None:
        return False
    dy = (10 + 11 * row) * (1 if y >= 0.5 else -1)
    late = placer.late(x)
    ax.annotate(text, (x, y), xytext=(-3 if late else 3, dy), textcoords="offset points", fontsize=7, color=colour,
                rotation=0, ha="right" if late else "left", va="bottom" if dy > 0 else "top",
                arrowprops={"arrowstyle": "-", "color": "#bbbbbb", "lw": 0.5}, annotation_clip=True, in_layout=False)
    return True


def _merge_steps(steps: Sequence[Any], gap: float) -> list[tuple[float, float, str, int, str]]:
    """Steps as spans (start, end, name, count, error): a burst of one step (a meter polled ten
    times) is one span ``name ×10``."""
    spans: list[list[Any]] = []
    for step in sorted(steps, key=lambda s: s.start):
        last = next((sp for sp in reversed(spans) if sp[2] == step.name), None)
        if last is not None and not step.error and not last[4] and step.start - last[1] <= gap:
            last[1] = max(last[1], step.end)
            last[3] += 1
            continue
        spans.append([step.start, step.end, step.name, 1, step.error])
    return [tuple(sp) for sp in spans]  # type: ignore[misc]


def render_timeline(evidence: Evidence, title: str, outcome: str = "") -> bytes:
    """The timeline of ``evidence`` as PNG bytes; ``title`` (the test) and ``outcome`` head it."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):  # a "$" in a console line is text
        return _render(evidence, title, outcome)


def _render(evidence: Evidence, title: str, outcome: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    states = dut_states(evidence)
    times, volts, measured_v, measured_i = _power_series(evidence)
    panels: list[str] = []
    heights = {"steps": 1.3, "supply": 2.2, "dut": 1.2, "radio": 2.6, "relay": 2.0}
    if evidence.steps:
        panels.append("steps")
    if times or measured_v or measured_i:
        panels.append("supply")
        if not (measured_v or measured_i):
            heights["supply"] = 1.3  # the set output alone: a thin strip
    if states or evidence.markers:
        panels.append("dut")
    if evidence.frames:
        panels.append("radio")
    if evidence.relay or evidence.readings:
        panels.append("relay")
    if not panels:
        panels = ["empty"]
        heights["empty"] = 1.5

    fig = Figure(figsize=(WIDTH_IN, 1.4 + sum(heights[p] for p in panels)), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [heights[p] for p in panels]})[:, 0]
    head = redact(title) + (f"  —  {outcome}" if outcome else "")
    fig.suptitle(head, fontsize=11, fontweight="bold", x=0.01, y=1.0 - 0.12 / (1.4 + sum(heights[p] for p in panels)),
                 ha="left", va="top")
    start, end = evidence.start, max(evidence.end, evidence.start + 1e-3)
    end += 0.03 * (end - start)  # room for the marks at the very end (the failure, the safe state)

    for ax, panel in zip(axes, panels):
        ax.grid(True, axis="x", color="#e0e0e0", lw=0.6)
        ax.set_xlim(start, end)
        if panel == "steps":
            _steps_panel(ax, evidence)
        elif panel == "supply":
            _supply_panel(ax, times, volts, measured_v, measured_i, Line2D)
        elif panel == "dut":
            _dut_panel(ax, states, evidence, Patch, Line2D)
        elif panel == "radio":
            _radio_panel(ax, evidence, Line2D)
        elif panel == "relay":
            _relay_panel(ax, evidence, Line2D)
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no rig activity was recorded in this test's window", transform=ax.transAxes,
                    ha="center", va="center", fontsize=10, color="#616161")
        if evidence.failure is not None:
            ax.axvline(evidence.failure[0], color="#c62828", lw=1.4, ls="--", zorder=5)
    if evidence.failure is not None:
        when, message = evidence.failure
        first = redact(message.strip().splitlines()[0] if message.strip() else "failed")[:160]
        fig.text(0.01, 1.0 - 0.42 / fig.get_figheight(), f"failed at {when:.3f} rig s: {first}", fontsize=9,
                 color="#c62828", ha="left", va="top")
        axes[0].annotate("failed", (when, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2),
                         textcoords="offset points", fontsize=8, color="#c62828", fontweight="bold",
                         ha="left", va="bottom", in_layout=False)
    axes[-1].set_xlabel("rig time (s)")
    height = fig.get_figheight()
    # fixed margins (tight_layout gives up on long annotations): legends live right of the axes
    fig.subplots_adjust(left=0.075, right=0.80, bottom=0.55 / height,
                        top=1.0 - (0.75 if evidence.failure else 0.5) / height, hspace=0.3)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _legend(ax: Any, handles: Sequence[Any], x: float = 1.005) -> None:
    if handles:
        ax.legend(handles=list(handles), loc="upper left", bbox_to_anchor=(x, 1.0), fontsize=7, frameon=False,
                  borderaxespad=0.0)


def _steps_panel(ax: Any, evidence: Evidence) -> None:
    from matplotlib.patches import Patch

    placer = _Placer(ax, 1)
    lanes: list[float] = []  # end time of the last span in each lane
    lane_labels: list[_Placer] = []
    for start, end, name, count, error in _merge_steps(evidence.steps, gap=0.01 * placer.span):
        lane = next((i for i, busy_until in enumerate(lanes) if busy_until <= start), None)
        if lane is None:
            lanes.append(end)
            lane_labels.append(_Placer(ax, 1))
            lane = len(lanes) - 1
        else:
            lanes[lane] = end
        colour = "#ef9a9a" if error else "#b0bec5"
        ax.broken_barh([(start, max(end - start, 1e-3))], (lane + 0.1, 0.8), color=colour, edgecolor="#607d8b", lw=0.5)
        text = name + (f" ×{count}" if count > 1 else "") + (f" ({error})" if error else "")
        if not lane_labels[lane].late(start) and lane_labels[lane].row(start, text) is not None:
            ax.text(start, lane + 0.5, " " + text, fontsize=7, va="center", ha="left", clip_on=True, in_layout=False)
    ax.set_ylim(0, max(len(lanes), 1))
    ax.set_yticks([])
    ax.set_ylabel("rig steps", fontsize=8)
    _legend(ax, [Patch(color="#b0bec5", label="step (×N: a burst)"), Patch(color="#ef9a9a", label="step that raised")])


def _supply_panel(ax: Any, times: list[float], volts: list[float], measured_v: list[tuple[float, float]],
                  measured_i: list[tuple[float, float]], Line2D: Any) -> None:
    handles = []
    if times:
        ax.step(times, volts, where="post", color="#1565c0", lw=1.6)
        handles.append(Line2D([], [], color="#1565c0", lw=1.6, label="output voltage (set, V)"))
    if measured_v:
        ax.plot(*zip(*measured_v), "o", color="#0d47a1", ms=4)
        handles.append(Line2D([], [], marker="o", ls="", color="#0d47a1", label="measured voltage (V)"))
    top = max([v for v in volts] + [v for _, v in measured_v] + [1.0])
    ax.set_ylim(-0.05 * top, top * 1.25)
    ax.set_ylabel("supply (V)", fontsize=8)
    if measured_i:
        right = ax.twinx()
        right.plot(*zip(*measured_i), "s-", color="#e65100", ms=3.5, lw=0.8)
        right.set_ylabel("current (mA)", fontsize=8, color="#e65100")
        right.set_ylim(bottom=0, top=max(i for _, i in measured_i) * 1.3 + 1e-3)
        handles.append(Line2D([], [], marker="s", color="#e65100", lw=0.8, label="measured current (mA)"))
    _legend(ax, handles, x=1.06 if measured_i else 1.005)


def _dut_panel(ax: Any, states: list[Any], evidence: Evidence, Patch: Any, Line2D: Any) -> None:
    seen: dict[str, Any] = {}
    for span in states:
        colour = STATE_COLOURS.get(span.state, "#eeeeee")
        ax.broken_barh([(span.start, span.end - span.start)], (0.15, 0.7), color=colour)
        seen.setdefault(span.state, Patch(color=colour, label=span.state))
    symbols = {"joined": ("*", "#1b5e20"), "join failed": ("X", "#b71c1c"), "boot": ("o", "#0d47a1"),
               "error reply": ("x", "#b71c1c")}
    placer = _Placer(ax, 2)
    for marker in evidence.markers:
        symbol, colour = symbols.get(marker.kind, (".", "#333333"))
        ax.plot([marker.time], [0.5], symbol, color=colour, ms=8, mec="white", mew=0.6, zorder=4)
        _annotate(ax, placer, marker.time, 0.85, redact(marker.text)[:40], colour)
    for kind, (symbol, colour) in symbols.items():
        if any(m.kind == kind for m in evidence.markers):
            seen[f"console: {kind}"] = Line2D([], [], marker=symbol, ls="", color=colour, label=f"console: {kind}")
    ax.set_ylim(0, 1.6)
    ax.set_yticks([])
    ax.set_ylabel("DUT state", fontsize=8)
    _legend(ax, list(seen.values()))


def _radio_panel(ax: Any, evidence: Evidence, Line2D: Any) -> None:
    frames = evidence.frames
    placers = {"up": _Placer(ax, 3), "down": _Placer(ax, 3)}
    # the frames that went wrong are labelled first: they get the room
    for frame in sorted(frames, key=lambda f: _outcome_kind(f.outcome) == "good"):
        y = 1.0 if frame.direction == "up" else 0.0
        _annotate(ax, placers[frame.direction], frame.time, y, redact(frame_label(frame)),
                  OUTCOME_COLOURS[_outcome_kind(frame.outcome)])
    for frame in frames:
        y = 1.0 if frame.direction == "up" else 0.0
        kind = _outcome_kind(frame.outcome)
        colour = OUTCOME_COLOURS[kind]
        marker = _MARKERS.get(frame.mtype, "o" if frame.direction == "up" else "s")
        ax.plot([frame.time], [y], marker, color=colour, ms=7, mec="black", mew=0.4, zorder=3)
        if frame.direction == "down" and frame.delay_s:
            ax.plot([frame.time, frame.time + frame.delay_s], [y, y], color=colour, lw=1, alpha=0.6)
    ax.set_ylim(-0.9, 1.9)
    ax.set_yticks([0.0, 1.0], ["downlink", "uplink"], fontsize=8)
    ax.set_ylabel("radio (network)", fontsize=8)
    handles = [Line2D([], [], marker=m, ls="", color="#757575", label=l) for m, l in
               (("^", "join-request"), ("v", "join-accept"), ("o", "data uplink"), ("s", "data downlink"))]
    handles += [Line2D([], [], marker="o", ls="", color=OUTCOME_COLOURS[k], label=l) for k, l in
                (("good", "accepted / sent"), ("warn", "duplicate / replay"), ("bad", "rejected / failed"))]
    if any(f.direction == "down" and f.delay_s for f in frames):
        handles.append(Line2D([], [], color="#757575", lw=1, label="delay to RX window"))
    _legend(ax, handles)


def _relay_panel(ax: Any, evidence: Evidence, Line2D: Any) -> None:
    handles = []
    top = 250.0
    if evidence.readings:
        points = [(r.time, r.volts) for r in evidence.readings]
        ax.plot(*zip(*points), "D-", color="#6a1b9a", ms=4, lw=0.9)
        top = max(top, max(v for _, v in points) * 1.15)
        handles.append(Line2D([], [], marker="D", color="#6a1b9a", lw=0.9, label="measured output (V AC)"))
    placers = {"tx": _Placer(ax, 3), "rx": _Placer(ax, 3)}
    for packet in evidence.relay:
        tx = packet.direction == "tx"
        colour = "#00838f" if tx else "#ad1457"
        ax.axvline(packet.time, color=colour, lw=0.8, ls="-" if tx else ":", alpha=0.8)
        text = _relay_label(packet)
        placer = placers["tx" if tx else "rx"]
        row = placer.row(packet.time, text)
        if row is None:
            continue  # the line stays; its label would cover another
        y = top * ((0.93 if tx else 0.6) - 0.1 * row)
        late = placer.late(packet.time)
        ax.text(packet.time, y, f"{text} " if late else f" {text}", fontsize=7, color=colour,
                ha="right" if late else "left", va="center", clip_on=True, in_layout=False)
    if evidence.relay:
        handles += [Line2D([], [], color="#00838f", lw=0.8, label="relay command (tx)"),
                    Line2D([], [], color="#ad1457", lw=0.8, ls=":", label="relay response (rx)")]
    ax.set_ylim(-0.05 * top, top * 1.05)
    ax.set_ylabel("relay output (V AC)", fontsize=8)
    _legend(ax, handles)
