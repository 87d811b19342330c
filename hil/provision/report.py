"""A batch's result as text: one line per unit, time per step, units per hour."""

from __future__ import annotations

import statistics
from collections import defaultdict

from hil.provision.station import STEPS, BatchResult

__all__ = ["step_times", "summary_lines", "units_per_hour"]


def units_per_hour(result: BatchResult) -> float:
    """Passed units per hour of real time in this run."""
    passed = sum(1 for o in result.outcomes if o.status == "passed")
    return passed * 3600.0 / result.real_s if result.real_s > 0 else 0.0


def step_times(result: BatchResult) -> dict[str, tuple[float, float, int]]:
    """Per step: mean real seconds, mean rig seconds and how many units ran it (units that passed)."""
    real: dict[str, list[float]] = defaultdict(list)
    rig: dict[str, list[float]] = defaultdict(list)
    for outcome in result.outcomes:
        if outcome.status != "passed":
            continue
        for step in outcome.steps:
            real[step.name].append(step.real_s)
            rig[step.name].append(step.rig_s)
    order = [s for s in STEPS if s in real] + sorted(set(real) - set(STEPS))
    return {s: (statistics.fmean(real[s]), statistics.fmean(rig[s]), len(real[s])) for s in order}


def summary_lines(result: BatchResult) -> list[str]:
    lines = [f"{'unit':<20} {'DevEUI':<17} {'result':<9} {'real s':>7} {'rig s':>7}  note"]
    for o in result.outcomes:
        uid = (o.unit_uid or "?")[:20]
        lines.append(f"{uid:<20} {(o.dev_eui or '-').upper():<17} {o.status:<9} {o.real_s:7.2f} {o.rig_s:7.1f}  "
                     f"{o.message[:90]}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    lines.append(f"batch {result.batch}: {result.passed_in_batch}/{result.target} passed "
                 f"({counts or 'no unit handled'}) in {result.real_s:.1f} s real, {result.rig_s:.0f} rig s; "
                 f"{units_per_hour(result):.0f} units/hour")
    times = step_times(result)
    if times:
        lines.append("time per step (passed units, mean): " + ", ".join(
            f"{name} {real:.2f} s/{rig:.1f} rig s" for name, (real, rig, _) in times.items()))
    return lines
