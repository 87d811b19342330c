"""The ``hil`` command line: one sub-command module per job."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from hil import __version__


class UsageError(Exception):
    """Bad command-line input: printed as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    from hil.cli import console, frame, gate, provision, report, rig, sim

    parser = _Parser(prog="python -m hil", description="LoRaWAN hardware-in-the-loop test framework")
    parser.add_argument("--version", action="version", version=f"hil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    console.register(commands)
    frame.register(commands)
    gate.register(commands)
    provision.register(commands)
    report.register(commands)
    rig.register(commands)
    sim.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
