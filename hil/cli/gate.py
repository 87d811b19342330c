"""``python -m hil gate``: may this build ship? The release gate over an Allure results folder.

::

    python -m hil gate [--results reports/allure-results] [--require join,devnonce,fcnt,relay] [--allow-broken 0]

Prints one row per suite (tests, passed, failed, broken, of which rig faults, skipped, verdict)
and, when it refuses, every reason. Exit codes: 0 the build may ship; 1 refused (a required
suite did not run, something in it failed or broke for a reason other than the rig, more rig
faults than allowed, or a result is unreadable); 2 bad input (no such folder, a bad option).
The rule itself is :func:`hil.report.gate.evaluate`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hil.report.gate import DEFAULT_REQUIRED, evaluate, format_table
from hil.report.results import ResultsError, read_results

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "register", "run_gate"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
DEFAULT_RESULTS = Path("reports/allure-results")
_SUITE = re.compile(r"^[A-Za-z_][\w-]*$")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("gate", help="release gate over Allure results: exit 0 only if the build may ship")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help=f"Allure results folder (default {DEFAULT_RESULTS})")
    p.add_argument("--require", default=",".join(DEFAULT_REQUIRED), metavar="SUITE,...",
                   help=f"suites (pytest markers) that must run and pass (default {','.join(DEFAULT_REQUIRED)})")
    p.add_argument("--allow-broken", type=int, default=0, metavar="N",
                   help="required tests broken by rig faults that still let the build ship (default 0)")
    p.set_defaults(run=run_gate)


def _suites(text: str) -> list[str]:
    from hil.cli import UsageError

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError("gate: --require names no suite")
    bad = [n for n in names if not _SUITE.match(n)]
    if bad:
        raise UsageError(f"gate: --require: {', '.join(repr(b) for b in bad)} is not a suite name")
    return list(dict.fromkeys(names))


def run_gate(args: argparse.Namespace) -> int:
    from hil.cli import UsageError

    required = _suites(args.require)
    if args.allow_broken < 0:
        raise UsageError(f"gate: --allow-broken must be 0 or more, got {args.allow_broken}")
    try:
        outcomes, problems = read_results(args.results)
    except ResultsError as exc:
        raise UsageError(f"gate: {exc}") from None
    verdict = evaluate(outcomes, required, args.allow_broken, problems)
    print(f"release gate: {len(outcomes)} test result(s) in {args.results}; required: {', '.join(required)}; "
          f"rig-fault breaks allowed: {args.allow_broken}")
    for line in format_table(verdict.rows):
        print("  " + line)
    if verdict.ok:
        print(f"GATE PASSED: every required suite ran and passed ({verdict.rig_faults} rig fault(s), "
              f"{args.allow_broken} allowed)")
        return EXIT_OK
    print(f"GATE REFUSED ({len(verdict.reasons)} reason(s)):")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    return EXIT_REFUSED
