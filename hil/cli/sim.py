"""``python -m hil sim``: start the virtual bench by hand and print its endpoints.

Ctrl-C stops everything (relay off, supply off) and leaves no process or port behind.
``--smoke`` instead runs a join and a relay round trip on it and exits 0 when it passed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from hil.cli import UsageError
from hil.clock import Deadline, SystemClock

DEFAULT_RIG = Path("rigs/sim.yaml")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sim", help="start the virtual rig and print its endpoints")
    p.add_argument("--rig", type=Path, default=DEFAULT_RIG, help="rig file with a sim: section (default rigs/sim.yaml)")
    p.add_argument("--smoke", action="store_true", help="join and switch the relay once, then stop")
    p.add_argument("--for", dest="run_for", type=float, metavar="SECONDS",
                   help="stop after this many real seconds (default: until Ctrl-C)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hil.sim.config import SimConfigError, load_sim_config

    rig_file = args.rig if args.rig.exists() or args.rig.is_absolute() else Path(__file__).parents[2] / args.rig
    try:
        config = load_sim_config(rig_file)
    except SimConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.smoke:
        from hil.sim.bench import smoke

        try:
            smoke(config)
        except AssertionError as exc:
            print(f"smoke run FAILED: {exc}", file=sys.stderr)
            return 1
        return 0
    return _serve(config, args.run_for)


def _serve(config, run_for: float | None) -> int:  # type: ignore[no-untyped-def]
    from hil.sim.rig import VirtualRig

    stop = threading.Event()
    # Ctrl-C and SIGTERM both end the wait below (set explicitly: a shell may start us with SIGINT ignored).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    rig = VirtualRig(config)
    try:
        endpoints = rig.start()
        print("virtual rig running (Ctrl-C stops it):")
        for line in endpoints.lines():
            print("  " + line)
        sys.stdout.flush()
        _wait_for_stop(stop, run_for)
    finally:
        rig.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("virtual rig stopped: relay off, supply off")
    return 0


def _wait_for_stop(stop: threading.Event, run_for: float | None) -> None:
    """Wait (real time: a person's session, not rig time) for Ctrl-C, SIGTERM or ``run_for``.

    In short slices: the kernel may deliver a signal to another thread, and Python runs its
    handler only when the main thread wakes up.
    """
    clock = SystemClock()
    deadline = None if run_for is None else Deadline.after(clock, run_for)
    while not stop.is_set() and not (deadline is not None and deadline.expired):
        slice_s = 0.2 if deadline is None else min(0.2, deadline.remaining)
        clock.wait(stop, slice_s)
