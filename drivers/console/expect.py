"""Send/expect on a console: one reader thread, a transcript, patterns matched per received line.

The reader thread splits what arrives into lines (CR, LF or CRLF; empty lines dropped), stamps
each with the rig clock's time, writes it to the :class:`Transcript` and makes it visible to
:meth:`ExpectEngine.expect`, which waits on a condition with ``clock.wait_for`` until a line
matches or the :class:`~hil.clock.Deadline` passes. A line is matched once: expecting moves a
cursor past the matching line, and :meth:`ExpectEngine.flush` skips what nobody waited for
(call it before sending a command, so an old ``OK`` cannot answer a new command).

A timeout raises :class:`~drivers.console.ConsoleTimeout` (the DUT's failure) showing the
pattern(s), the cleaned tail of the transcript and the transcript's path; a lost port raises
:class:`~drivers.console.ConsolePortError` (a rig fault) at once instead of waiting it out.

The transcript holds every line both ways, redacted by the ``redact`` function it is given
(keys never reach memory, file or error messages) and with control characters escaped.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

from drivers.console import ConsolePortError, ConsoleTimeout
from drivers.console.transport import SerialTransport
from hil.clock import Clock, Deadline

log = logging.getLogger(__name__)

Pattern = str | re.Pattern[str]
Redactor = Callable[[str], str]

_EOL = re.compile(rb"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINE_BYTES = 64 * 1024  # a "line" longer than this without an end is cut (a flood must not eat memory)
TAIL_LINES = 10


def clean(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x1b``, ``\\x00``...)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _identity(text: str) -> str:
    return text


def compile_pattern(pattern: Pattern) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)


# -- transcript ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One transcript line: rig time, direction (``>`` sent, ``<`` received, ``#`` note), text."""

    time: float
    direction: str
    text: str

    def __str__(self) -> str:
        return f"[{self.time:11.3f}] {self.direction} {self.text}"


class Transcript:
    """Every line of a console session, redacted, in memory and (if ``path``) in a log file.

    The file is written line by line and flushed, so it is complete even if the test process dies.
    """

    def __init__(self, path: str | Path | None = None, redact: Redactor | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._redact = redact or _identity
        self._entries: list[TranscriptEntry] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._written = False

    def redact(self, text: str) -> str:
        """``text`` as the transcript shows it: redacted, control characters escaped."""
        try:
            return clean(self._redact(text))
        except Exception:  # a broken redactor must not leak what it failed on
            log.exception("transcript redactor failed; line withheld")
            return "<line withheld: the redactor failed>"

    def add(self, time: float, direction: str, text: str) -> TranscriptEntry:
        entry = TranscriptEntry(time, direction, self.redact(text))
        with self._lock:
            self._entries.append(entry)
            if self.path is not None:
                self._write(str(entry))
        return entry

    def note(self, time: float, text: str) -> TranscriptEntry:
        """A line of the driver's own (port opened, port lost...)."""
        return self.add(time, "#", text)

    def entries(self) -> list[TranscriptEntry]:
        with self._lock:
            return list(self._entries)

    def tail(self, count: int = TAIL_LINES) -> list[TranscriptEntry]:
        with self._lock:
            return self._entries[-count:]

    def text(self) -> str:
        """The whole transcript as the log file has it."""
        return "".join(f"{entry}\n" for entry in self.entries())

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            file.close()

    def _write(self, line: str) -> None:
        assert self.path is not None
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # the first open of this transcript starts the file; a reopen (after close) appends
                self._file = self.path.open("a" if self._written else "w", encoding="utf-8")
                self._written = True
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            log.error("console transcript %s cannot be written (%s); keeping it in memory only", self.path, exc)
            self.path = None


# -- the engine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RxLine:
    """A received line: its number in the session, rig time of arrival, text as received."""

    index: int
    time: float
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """What :meth:`ExpectEngine.expect_any` found: which pattern, its match and the line."""

    index: int
    match: re.Match[str]
    line: RxLine


class ExpectEngine:
    """Reads a :class:`SerialTransport` on one thread; sends lines; waits for patterns.

    ``name`` appears in errors (e.g. ``"rak3172 console /dev/ttyUSB0"``). Listeners added with
    :meth:`add_listener` see every received line on the reader thread, before an expect can
    see it (so a downlink report is recorded before the line after it wakes a waiting test).
    """

    def __init__(
        self,
        transport: SerialTransport,
        clock: Clock,
        transcript: Transcript,
        *,
        line_ending: str = "\r\n",
        encoding: str = "utf-8",
        name: str | None = None,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.transcript = transcript
        self.line_ending = line_ending
        self.encoding = encoding
        self.name = name or f"console {transport.url}"
        self._cond = threading.Condition()
        self._lines: list[RxLine] = []
        self._cursor = 0
        self._next_index = 0
        self._partial = b""
        self._error: ConsolePortError | None = None
        self._listeners: list[Callable[[RxLine], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        """The reader thread (None before :meth:`start` and after :meth:`stop`)."""
        return self._thread

    def start(self) -> None:
        """Start the reader thread on the (open) transport."""
        if self.running:
            return
        with self._cond:
            self._error = None
            self._partial = b""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"console-reader-{self.transport.url}", daemon=True)
        self._thread.start()

    def stop(self, timeout_real_s: float = 5.0) -> None:
        """Stop and join the reader thread (it notices within one transport poll)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_real_s)
            if thread.is_alive():
                log.error("%s: reader thread did not stop within %.1f s", self.name, timeout_real_s)
        with self._cond:
            self._cond.notify_all()

    def add_listener(self, listener: Callable[[RxLine], None]) -> Callable[[], None]:
        """Call ``listener(line)`` on the reader thread for each received line; returns an unsubscribe."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- sending -------------------------------------------------------------------------------

    def send_line(self, text: str) -> None:
        """Send ``text`` and the line ending; the transcript gets the redacted text."""
        self.transcript.add(self.clock.now(), ">", text)
        self.transport.write((text + self.line_ending).encode(self.encoding))

    # -- what arrived --------------------------------------------------------------------------

    def mark(self) -> int:
        """The index the next received line will have (for :meth:`lines`)."""
        with self._cond:
            return len(self._lines)

    def flush(self) -> None:
        """Skip every line received so far: the next expect sees only newer lines."""
        with self._cond:
            self._cursor = len(self._lines)

    def lines(self, since: int = 0) -> list[RxLine]:
        """Received lines from index ``since`` on."""
        with self._cond:
            return self._lines[since:]

    def partial(self) -> str:
        """What arrived after the last line end (a prompt, or a line still coming)."""
        with self._cond:
            return self._partial.decode(self.encoding, "replace")

    # -- expecting -----------------------------------------------------------------------------

    def expect(self, pattern: Pattern, deadline: Deadline) -> re.Match[str]:
        """The match of the first unread line that ``pattern`` matches (``re.search``), waiting
        until ``deadline``; ConsoleTimeout if none does, ConsolePortError if the port is lost."""
        return self.expect_any([pattern], deadline).match

    def expect_any(self, patterns: Sequence[Pattern], deadline: Deadline, *, what: str | None = None) -> Hit:
        """The first unread line any of ``patterns`` matches (earlier patterns win on the same
        line). ``what`` describes the wait in a timeout message (default: the patterns)."""
        compiled = [compile_pattern(p) for p in patterns]
        if not compiled:
            raise ValueError("expect_any needs at least one pattern")
        started = self.clock.now()
        found: list[Hit] = []

        def scan() -> bool:
            while self._cursor < len(self._lines):
                line = self._lines[self._cursor]
                self._cursor += 1
                for i, pattern in enumerate(compiled):
                    match = pattern.search(line.text)
                    if match is not None:
                        found.append(Hit(i, match, line))
                        return True
            return self._error is not None or self._stopped()

        with self._cond:
            self.clock.wait_for(self._cond, scan, deadline)
            error = self._error
        if found:
            return found[0]
        if error is not None:
            raise ConsolePortError(f"{self.name}: {error}; transcript: {self.transcript.path}") from None
        if self._stopped():
            raise ConsolePortError(f"{self.name}: the console is not open (expecting {self._describe(compiled)})")
        raise self.timeout_error(what or self._describe(compiled), waited=deadline.at - started,
                                 patterns=tuple(p.pattern for p in compiled))

    def collect(self, since: int, deadline: Deadline, quiet_s: float) -> list[RxLine]:
        """Lines from index ``since`` on: wait until ``deadline`` for the first, then for more as
        long as each comes within ``quiet_s`` rig seconds of the one before. Moves the cursor past them."""

        def have_more(count: int) -> Callable[[], bool]:
            return lambda: len(self._lines) > count or self._error is not None or self._stopped()

        with self._cond:
            self.clock.wait_for(self._cond, have_more(since), deadline)
            while len(self._lines) > since and self._error is None and not self._stopped():
                count = len(self._lines)
                settle = Deadline(self.clock, min(deadline.at, self.clock.now() + quiet_s))
                self.clock.wait_for(self._cond, have_more(count), settle)
                if len(self._lines) == count:  # quiet for quiet_s (or the deadline came)
                    break
            self._cursor = max(self._cursor, len(self._lines))
            error = self._error
            got = self._lines[since:]
        if (error is not None or self._stopped()) and not got:
            error = error or ConsolePortError("the console is not open")
            raise ConsolePortError(f"{self.name}: {error}; transcript: {self.transcript.path}") from None
        return got

    def tail_text(self, count: int = TAIL_LINES) -> str:
        """The last ``count`` transcript lines and any partial line, as an error message shows them."""
        lines = [f"    {entry}" for entry in self.transcript.tail(count)]
        partial = self.partial()
        if partial:
            lines.append(f"    (no line end yet) < {self.transcript.redact(partial)}")
        return "\n".join(lines) if lines else "    (nothing at all)"

    def _stopped(self) -> bool:
        return self._stop.is_set() or self._thread is None

    def _describe(self, compiled: Iterable[re.Pattern[str]]) -> str:
        return " or ".join(f"/{p.pattern}/" for p in compiled)

    def timeout_error(self, what: str, *, waited: float | None = None, patterns: tuple[str, ...] = ()) -> ConsoleTimeout:
        """The ConsoleTimeout for a wait that found nothing: what was awaited, the cleaned tail of
        the transcript and the path of the full transcript."""
        tail = self.tail_text()
        path = str(self.transcript.path) if self.transcript.path is not None else None
        within = f" within {max(waited, 0.0):.1f} rig s" if waited is not None else " by the deadline"
        message = (
            f"{self.name}: expected {what}{within}; nothing matched.\n"
            f"  last lines (rig time, > sent, < received):\n{tail}\n"
            f"  full transcript: {path or '(kept in memory only)'}"
        )
        return ConsoleTimeout(message, patterns=patterns, tail=tail, log_path=path)

    # -- reader thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data = self.transport.read()
                except ConsolePortError as exc:
                    if self._stop.is_set():
                        break
                    self.transcript.note(self.clock.now(), f"port lost: {exc}")
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return
                if data:
                    self._feed(data)
        except Exception as exc:  # a driver bug: report it to the waiting test, never die silently
            log.exception("%s: reader thread failed", self.name)
            with self._cond:
                self._error = ConsolePortError(f"the console reader failed: {type(exc).__name__}: {exc}")
                self._cond.notify_all()

    def _feed(self, data: bytes) -> None:
        now = self.clock.now()
        with self._cond:
            pieces = _EOL.split(self._partial + data)
            complete, rest = pieces[:-1], pieces[-1]
            if len(rest) > MAX_LINE_BYTES:
                complete.append(rest)
                rest = b""
            self._partial = rest
            self._cond.notify_all()  # a partial line is news for a timeout's tail, nothing else
        for raw in complete:
            if not raw:
                continue
            line = RxLine(self._next_index, now, raw.decode(self.encoding, "replace"))
            self._next_index += 1
            self.transcript.add(now, "<", line.text)
            for listener in list(self._listeners):
                try:
                    listener(line)
                except Exception:
                    log.exception("%s: a line listener failed", self.name)
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
