"""``python -m hil report``: the HTML report of a run, one file that opens from ``file://``.

::

    python -m hil report [--results reports/allure-results] [--out reports/html] [--name NAME] [--allure PATH]

Runs the Allure command line that is installed (Allure 3, ``npm`` package ``allure``, preferred;
else Allure 2, ``allure-commandline``; see :mod:`hil.report.allure_cli` for where it looks) and
writes ``<out>/index.html`` as a single file, carrying the history of the previous report in
``<out>`` over. Prints the file, the time it took and its size. Exit codes: 0 written; 1 Allure
failed; 2 bad input or no Allure installed (the message says how to install one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil.report.allure_cli import INSTALL_HELP, AllureError, find_allure, generate
from hil.report.categories import CategoryError, rules_from_json

__all__ = ["DEFAULT_OUT", "DEFAULT_RESULTS", "register", "run_report"]

DEFAULT_RESULTS = Path("reports/allure-results")
DEFAULT_OUT = Path("reports/html")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="single-file HTML report of an Allure results folder (Allure 3 or 2)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help=f"Allure results folder (default {DEFAULT_RESULTS})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    p.add_argument("--name", default="hil test report", help="the report's title")
    p.add_argument("--allure", default=None, metavar="PATH", help="the allure executable (default: search, see docs)")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    try:
        tool = find_allure(args.allure)
    except AllureError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if tool is None:
        print(f"error: report: {INSTALL_HELP}", file=sys.stderr)
        return EXIT_USAGE
    if not args.results.is_dir():
        print(f"error: report: results folder {args.results} does not exist "
              f"(run pytest with --alluredir {args.results})", file=sys.stderr)
        return EXIT_USAGE
    categories = None
    if (args.results / "categories.json").exists():
        try:
            categories = rules_from_json(args.results / "categories.json")
        except CategoryError as exc:
            print(f"warning: report: {exc}; Allure's default categories are used", file=sys.stderr)
    try:
        done = generate(tool, args.results, args.out, name=args.name, categories=categories)
    except AllureError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return EXIT_USAGE if "holds no test results" in str(exc) else EXIT_FAILED
    history = "history carried over" if done.history else "no earlier history"
    print(f"report: {done.html} ({done.size / 1e6:.1f} MB, single file) by Allure {tool.version} ({tool.source}) "
          f"in {done.seconds:.1f} s; {history}")
    return EXIT_OK
