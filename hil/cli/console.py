"""``python -m hil console``: an interactive console on the DUT, with its transcript saved.

Brings the rig up (locked, as a test session does), powers the DUT through the supply (unless
``--no-power``), opens the DUT console and waits for it to answer its probe; then each line read
from stdin goes to the DUT, and every line the DUT prints is shown with its rig time, until EOF on
stdin (Ctrl-D) or Ctrl-C. After each line sent, the next waits until the DUT's answer has gone
quiet (at most the dialect's command timeout), so piped commands do not trip over each other.

What is shown is what the transcript holds: keys masked (``AT+APPKEY=****``). The transcript's
path is printed at the start and at the end. The rig is left safe at the end (supply off).
Exit code: 0 at EOF or Ctrl-C (SIGTERM too), 1 on a rig fault (rig busy, bring-up failed, port
lost), 2 for a bad rig file.

Threads: :class:`LineSource` reads stdin on one thread (woken by ``select`` on the descriptor and a
stop pipe, so it is joined at the end, never left blocked in a read); the console's reader thread
prints received lines as they come; the main thread sends, and waits only on the rig clock.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from hil.cli.rig import DEFAULT_RIG, log_to_stderr, one_line, rig_ref, safe_state_failures, sigterm_as_interrupt
from hil.clock import Clock, Deadline
from hil.faults import RigFault
from hil.rigfile import RigFileError

__all__ = ["LineSource", "Printer", "interact", "register", "run"]

READY_S = 30.0  # rig seconds for the DUT to answer its probe before typing starts anyway
QUIET_S = 0.5  # rig seconds of silence that end the DUT's answer to a line
SLICE_REAL_S = 0.2  # real seconds between wake-ups while waiting for input (Ctrl-C is noticed within it)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("console", help="an interactive console on the DUT (transcript saved)")
    p.add_argument("--rig", default=DEFAULT_RIG, help=f"rig file or name (default {DEFAULT_RIG})")
    p.add_argument("--rig-wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for a rig another session holds (default: fail at once)")
    p.add_argument("--no-power", action="store_true", help="do not switch the supply on (the DUT is powered otherwise)")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"),
                   help="where the transcript goes: <dir>/console/<rig>.log (default ./reports)")
    p.set_defaults(run=run)


class LineSource:
    """Lines read from a file descriptor on one thread; :meth:`take` hands them over in rig time."""

    def __init__(self, fd: int, encoding: str = "utf-8") -> None:
        self.fd = fd
        self.encoding = encoding
        self._cond = threading.Condition()
        self._lines: deque[str] = deque()
        self._eof = False
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="console-stdin", daemon=True)

    def start(self) -> "LineSource":
        self._thread.start()
        return self

    def stop(self, timeout_real_s: float = 5.0) -> None:
        """Stop and join the reading thread, close the stop pipe. Idempotent."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout_real_s)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_r = self._stop_w = -1

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def take(self, clock: Clock, deadline: Deadline) -> list[str] | None:
        """The lines read so far (waiting until ``deadline`` for one); None once EOF came and all were taken."""
        with self._cond:
            clock.wait_for(self._cond, lambda: bool(self._lines) or self._eof, deadline)
            if not self._lines and self._eof:
                return None
            lines = list(self._lines)
            self._lines.clear()
            return lines

    def _run(self) -> None:
        partial = b""
        try:
            while True:
                ready, _, _ = select.select([self.fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                data = os.read(self.fd, 4096)
                if not data:
                    break
                *complete, partial = (partial + data).split(b"\n")
                self._add([raw.rstrip(b"\r").decode(self.encoding, "replace") for raw in complete])
            if partial:
                self._add([partial.rstrip(b"\r").decode(self.encoding, "replace")])
        except (OSError, ValueError):  # stdin closed under us: same as EOF
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _add(self, lines: list[str]) -> None:
        if lines:
            with self._cond:
                self._lines.extend(lines)
                self._cond.notify_all()


class Printer:
    """Prints console lines as the transcript shows them (rig time, direction, keys masked), one
    writer at a time (the console's reader thread and the main thread both print)."""

    def __init__(self, console: Any, out: TextIO) -> None:
        self.console = console
        self.out = out
        self._lock = threading.Lock()

    def line(self, time: float, direction: str, text: str) -> None:
        from drivers.console.expect import TranscriptEntry

        self._print(str(TranscriptEntry(time, direction, self.console.transcript.redact(text))))

    def note(self, text: str) -> None:
        self._print(f"# {self.console.transcript.redact(text)}")

    def received(self, rx: Any) -> None:
        """An ExpectEngine listener (reader thread)."""
        self.line(rx.time, "<", rx.text)

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)


def interact(console: Any, source: LineSource, printer: Printer | None, clock: Clock, *,
             slice_s: float, quiet_s: float = QUIET_S) -> int:
    """Send each line from ``source`` to the DUT until EOF; after each (but an empty one), wait
    until the answer has gone quiet for ``quiet_s`` rig seconds (at most the dialect's command
    timeout). ``printer`` (if given) shows the lines sent. Returns how many lines were sent.

    ``slice_s``: rig seconds between wake-ups while waiting for input. ConsolePortError (a rig
    fault) if the port is lost."""
    sent = 0
    while True:
        lines = source.take(clock, Deadline.after(clock, slice_s))
        if lines is None:
            return sent
        for text in lines:
            since = console.engine.mark()
            if printer is not None:
                printer.line(clock.now(), ">", text)
            console.send_line(text)
            sent += 1
            if text.strip():
                console.engine.collect(since, Deadline.after(clock, console.profile.command_timeout_s), quiet_s)


def run(args: argparse.Namespace) -> int:
    from hil.cli import UsageError
    from hil.plugin.session import RigSession

    log_to_stderr()
    out = sys.stdout
    with sigterm_as_interrupt():
        try:
            session = RigSession(rig_ref(args.rig), wait_s=args.rig_wait, reports_dir=args.reports_dir)
        except RigFileError as exc:
            raise UsageError(one_line(exc)) from None
        except Exception as exc:  # e.g. the lock folder cannot be created
            print(f"error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
            return 1
        try:
            session.start()
        except Exception as exc:  # busy, or the bring-up failed (start() has closed what it opened)
            print(f"error: rig {session.rig_file.name}: {one_line(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        code = 0
        opened: list[Any] = []  # the console, once open
        try:
            _session(session, args, out, opened)
        except KeyboardInterrupt:
            print("# interrupted", file=out, flush=True)
        except RigFault as exc:
            print(f"error: rig fault: {one_line(exc)}", file=sys.stderr)
            code = 1
        finally:
            session.close()  # safe state (supply off), console and rig closed, lock freed
            failures = safe_state_failures(session)
            if opened:
                print(f"# transcript saved: {opened[0].transcript.path}", file=out, flush=True)
            print("# rig left safe" + (f", except: {'; '.join(failures)}" if failures else
                                       ": supply off" if session.rig_file.psu is not None else ""),
                  file=out, flush=True)
        return code


def _session(session: Any, args: argparse.Namespace, out: TextIO, opened: list[Any]) -> None:
    """Power, open the console (appended to ``opened``), wait for the DUT, then copy stdin to it until EOF."""
    rig = session.rig
    clock: Clock = session.clock
    if args.no_power:
        power = "DUT not powered by this command (--no-power)"
    elif rig.psu is None:
        power = "no psu in the rig: the DUT is assumed powered"
    else:
        session.psu().output(True)
        power = f"DUT powered through the psu ({rig.psu.voltage:g} V, {rig.psu.current_limit:g} A limit)"
    console = session.console()
    opened.append(console)
    printer = Printer(console, out)
    printer.note(f"rig {rig.name}: {power}")
    printer.note(f"transcript: {console.transcript.path}")
    remove = console.engine.add_listener(printer.received)
    try:
        probe = console.profile.probe.send
        printer.note(f"console {rig.dut.console.port} ({console.profile.name}): waiting for the DUT to answer {probe!r}")
        try:
            console.wait_ready(Deadline.after(clock, READY_S))
            printer.note("the DUT answers; each line typed goes to it; Ctrl-D (EOF) or Ctrl-C ends")
        except AssertionError:
            printer.note(f"the DUT did not answer {probe!r} within {READY_S:g} rig s; lines typed go to it anyway")
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # no stdin at all: nothing to send
            printer.note("no stdin: nothing to send")
            return
        source = LineSource(fd).start()
        try:
            echo = printer if not os.isatty(fd) else None  # a terminal shows what was typed already
            interact(console, source, echo, clock, slice_s=SLICE_REAL_S * rig.time_scale)
        finally:
            source.stop()
    finally:
        remove()
