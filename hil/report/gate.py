"""The release gate's rule: may this build ship, judging by its Allure results?

It may when every required suite ran (at least one of its tests passed), nothing in a
required suite failed (a failed test is a product defect or a timing failure), no required test
broke for a reason other than the rig (a test error leaves the build unjudged), no result is
unreadable or incomplete, and the tests broken by rig faults number at most the allowance.
:func:`evaluate` returns the per-suite table and every reason for a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from hil.report.results import Outcome

__all__ = ["DEFAULT_REQUIRED", "RIG_FAULT", "SuiteRow", "Verdict", "evaluate", "format_table"]

DEFAULT_REQUIRED = ("join", "devnonce", "fcnt", "relay")
RIG_FAULT = "Rig fault"
NO_SUITE = "(no suite)"
MAX_NAMED = 5  # tests named per reason


@dataclass
class SuiteRow:
    """One suite's counts; ``rig_faults`` are the broken tests sorted into "Rig fault"."""

    suite: str
    required: bool
    passed: int = 0
    failed: int = 0
    broken: int = 0
    rig_faults: int = 0
    skipped: int = 0
    unknown: int = 0
    verdict: str = ""

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.broken + self.skipped + self.unknown

    @property
    def ran(self) -> int:
        return self.tests - self.skipped


@dataclass
class Verdict:
    """The gate's answer: ``ok`` (ship), the table rows, and the reasons for refusing."""

    ok: bool
    rows: list[SuiteRow]
    reasons: list[str] = field(default_factory=list)
    broken_allowed: int = 0
    rig_faults: int = 0


def _names(outcomes: Sequence[Outcome], detail: bool = True) -> str:
    shown = []
    for o in outcomes[:MAX_NAMED]:
        first = o.message.strip().splitlines()[0][:120] if (detail and o.message.strip()) else ""
        shown.append(f"{o.name}" + (f" ({o.category}: {first})" if first else f" ({o.category})" if o.category else ""))
    more = f" and {len(outcomes) - MAX_NAMED} more" if len(outcomes) > MAX_NAMED else ""
    return "; ".join(shown) + more


def evaluate(outcomes: Sequence[Outcome], required: Sequence[str] = DEFAULT_REQUIRED, allow_broken: int = 0,
             problems: Sequence[str] = ()) -> Verdict:
    """Judge ``outcomes`` (see the module's docstring); ``problems`` (unreadable files) refuse too."""
    rows: dict[str, SuiteRow] = {name: SuiteRow(name, True) for name in required}
    by_suite: dict[str, list[Outcome]] = {}
    for o in outcomes:
        for suite in o.suites or (NO_SUITE,):
            by_suite.setdefault(suite, []).append(o)
            row = rows.setdefault(suite, SuiteRow(suite, suite in required))
            if o.status in ("passed", "failed", "broken", "skipped"):
                setattr(row, o.status, getattr(row, o.status) + 1)
            else:
                row.unknown += 1
            if o.status == "broken" and o.category == RIG_FAULT:
                row.rig_faults += 1
    reasons: list[str] = [f"unreadable results: {p}" for p in problems]
    counted: set[str] = set()  # a test in two required suites is one broken test
    rig_fault_tests: list[Outcome] = []
    for name in required:
        row = rows[name]
        tests = by_suite.get(name, [])
        failed = [o for o in tests if o.status == "failed"]
        test_errors = [o for o in tests if o.status == "broken" and o.category != RIG_FAULT]
        unknown = [o for o in tests if o.status not in ("passed", "failed", "broken", "skipped")]
        row.verdict = "ok"
        if not tests:
            reasons.append(f"{name}: did not run (no result carries the feature label {name!r})")
            row.verdict = "did not run"
        elif row.ran == 0:
            reasons.append(f"{name}: did not run (all {row.skipped} test(s) skipped)")
            row.verdict = "did not run"
        elif row.passed == 0 and not failed and row.broken == row.rig_faults:
            reasons.append(f"{name}: nothing was verified (no test passed; {row.rig_faults} broken by rig faults)")
            row.verdict = "not verified"
        if failed:
            reasons.append(f"{name}: {len(failed)} failed: {_names(failed)}")
            row.verdict = "FAILED"
        if test_errors:
            reasons.append(f"{name}: {len(test_errors)} broken by a test error (not the rig): {_names(test_errors)}")
            row.verdict = "FAILED"
        if unknown:
            reasons.append(f"{name}: {len(unknown)} with no final status: {_names(unknown, detail=False)}")
            row.verdict = "FAILED"
        for o in tests:
            if o.status == "broken" and o.category == RIG_FAULT and o.full_name not in counted:
                counted.add(o.full_name)
                rig_fault_tests.append(o)
        if row.verdict == "ok" and row.rig_faults:
            row.verdict = "rig faults"
    for row in rows.values():
        if not row.required:
            row.verdict = "(not required)"
    if len(rig_fault_tests) > allow_broken:
        reasons.append(f"{len(rig_fault_tests)} required test(s) broken by rig faults, {allow_broken} allowed: "
                       f"{_names(rig_fault_tests)}")
    ordered = [rows[name] for name in required] + sorted(
        (r for r in rows.values() if not r.required), key=lambda r: (r.suite == NO_SUITE, r.suite))
    return Verdict(not reasons, ordered, reasons, allow_broken, len(rig_fault_tests))


def format_table(rows: Sequence[SuiteRow]) -> list[str]:
    """The per-suite table as text lines."""
    header = ("suite", "tests", "passed", "failed", "broken", "rig faults", "skipped", "verdict")
    cells = [header] + [(r.suite, str(r.tests), str(r.passed), str(r.failed), str(r.broken), str(r.rig_faults),
                         str(r.skipped), r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if j in (0, 7) else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
