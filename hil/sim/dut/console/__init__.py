"""The virtual DUT's UART console: a pty that pyserial opens like any ``/dev/tty*``.

::

    console = open_console("rak3172", firmware, scheduler)
    ser = serial.Serial(console.path, 115200, timeout=1)   # open before powering the DUT
    ...
    console.close()

The console talks only to :class:`~hil.sim.dut.interfaces.FirmwareApi`. Lines end in ``\\r``,
``\\n`` or ``\\r\\n``. A line starting with ``AT`` goes to the dialect (``rak3172``, ``lora-e5``),
a relay command (``help``, ``set ...``, ``get ...``, seed 004) to :mod:`.relay_commands`, anything
else gets the dialect's error. While ``firmware.running`` is False the UART is dead: input is
dropped and nothing is printed.

Threads: everything the console does runs on its pty's I/O thread, in order: input lines as they
arrive, and firmware events, which the scheduler thread only hands over. So a reply is always
printed before the events its command caused, and nothing blocks the scheduler thread.
The transcript of the session is the driver's job; this package never logs what was typed.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Callable

from hil.sim.dut.console.dialect import (
    ConsoleError,
    Dialect,
    DialectDataError,
    UnknownDialectError,
    command_name,
    dialect_class,
    known_dialects,
    register,
)
from hil.sim.dut.console.pty_port import PtyPort
from hil.sim.dut.console.relay_commands import RelayCommands
from hil.sim.dut.console import lora_e5 as _lora_e5  # noqa: F401  (registers the dialect)
from hil.sim.dut.console import rak3172 as _rak3172  # noqa: F401  (registers the dialect)
from hil.sim.dut.interfaces import Booted, DutEvent, FirmwareApi
from hil.sim.scheduler import Scheduler

__all__ = [
    "Console",
    "ConsoleError",
    "Dialect",
    "DialectDataError",
    "LineAssembler",
    "PtyPort",
    "RelayCommands",
    "UnknownDialectError",
    "known_dialects",
    "open_console",
    "register",
]

log = logging.getLogger(__name__)

_LINE_END = re.compile(rb"\r|\n")


class Overlong:
    """Marks a line that was longer than the dialect's limit (its text is dropped)."""

    def __repr__(self) -> str:
        return "OVERLONG"


OVERLONG = Overlong()


class LineAssembler:
    """Splits received bytes into lines ending in CR, LF or CRLF; empty lines are skipped.

    A line longer than ``max_line`` characters is discarded up to its end and reported once as
    :data:`OVERLONG`, so a flood of garbage costs no memory.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str | Overlong]:
        pieces = _LINE_END.split(data)
        items: list[str | Overlong] = []
        for piece in pieces[:-1]:
            self._add(piece)
            item = self._take()
            if item is not None:
                items.append(item)
        self._add(pieces[-1])
        return items

    def reset(self) -> None:
        """Forget a partial line (the DUT rebooted or lost power)."""
        self._buf.clear()
        self._overflow = False

    def _add(self, piece: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(piece) > self.max_line:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += piece

    def _take(self) -> str | Overlong | None:
        if self._overflow:
            self._overflow = False
            return OVERLONG
        if not self._buf:
            return None
        line = self._buf.decode("utf-8", "replace")
        self._buf.clear()
        return line


class Console:
    """One DUT's UART: a :class:`PtyPort` speaking a dialect to the firmware."""

    def __init__(self, dialect: str, firmware: FirmwareApi, scheduler: Scheduler, name: str | None = None) -> None:
        cls = dialect_class(dialect)
        self.firmware = firmware
        self.dialect_name = cls.name
        self.dialect: Dialect = cls(firmware, scheduler, self._post)
        self.relay = RelayCommands(firmware)
        self._lines = LineAssembler(self.dialect.max_line)
        self._received = 0
        self._received_cond = threading.Condition()
        self._port = PtyPort(name or f"{cls.name}-console", on_data=self._on_data)
        try:
            self._unsubscribe: Callable[[], None] | None = firmware.subscribe(self._on_firmware_event)
        except BaseException:
            self._port.close()
            raise

    # -- API -----------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The pty slave's path: what ``serial.Serial`` opens."""
        return self._port.path

    @property
    def port(self) -> PtyPort:
        return self._port

    @property
    def bytes_received(self) -> int:
        """Bytes received from the client and dealt with (answered or dropped)."""
        with self._received_cond:
            return self._received

    def wait_received(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` bytes have been dealt with; ``timeout`` in real seconds (a sync
        point for tests and drivers: e.g. "the line sent to an unpowered DUT is gone")."""
        with self._received_cond:
            return self._received_cond.wait_for(lambda: self._received >= count, timeout)

    def close(self) -> None:
        """Stop listening to the firmware, stop the pty thread, close every descriptor."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._port.close()
        self.dialect.close()

    def __enter__(self) -> "Console":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Console({self.dialect_name!r}, path={self.path!r})"

    # -- on the pty thread ---------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        try:
            for item in self._lines.feed(data) if self.firmware.running else ():
                if not self.firmware.running:  # a command just reset it: the rest is lost
                    break
                self._handle_line(item)
            if not self.firmware.running:
                self._lines.reset()
        finally:
            with self._received_cond:
                self._received += len(data)
                self._received_cond.notify_all()

    def _handle_line(self, item: str | Overlong) -> None:
        dialect = self.dialect
        line = "" if isinstance(item, Overlong) else item.strip()
        try:
            if isinstance(item, Overlong):
                reply = dialect.overlong()
            elif not line:
                return
            elif line[:2].upper() == "AT":
                reply = dialect.handle_at(line)
            elif RelayCommands.handles(line):
                reply = self.relay.handle(line)
            else:
                reply = dialect.handle_other(line)
        except Exception as exc:  # a rig bug must not kill the console; never log the arguments
            tb = sys.exc_info()[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
            log.error("console %s: %r failed: %s at %s", self.dialect_name, _describe(line), type(exc).__name__, where)
            reply = dialect.internal_error()
        self._port.write(reply.encode("utf-8"))

    def _on_firmware_event(self, event: DutEvent) -> None:
        # scheduler thread: hand over, never block it. A dead DUT's events print nothing.
        if isinstance(event, Booted) or self.firmware.running:
            self._port.submit(lambda: self._handle_event(event))

    def _handle_event(self, event: DutEvent) -> None:
        if isinstance(event, Booted):
            # Booted is proof of life: its banner prints even if the flag lags behind.
            self._lines.reset()
            text = self.dialect.on_boot(event)
        else:
            text = self.dialect.on_event(event)
            if not self.firmware.running:
                return
        self._port.write(text.encode("utf-8"))

    def _post(self, fn: Callable[[], str]) -> None:
        """Run ``fn`` on the pty thread and print what it returns (dialects' timed work)."""

        def job() -> None:
            text = fn()
            if text and self.firmware.running:
                self._port.write(text.encode("utf-8"))

        self._port.submit(job)


def _describe(line: str) -> str:
    """What a log line may say about an input line: the AT command's name, or a relay verb."""
    if line[:2].upper() == "AT":
        return command_name(line)
    words = line.split(None, 1)
    return re.sub(r"[^a-z]", "", words[0].lower())[:8] if words else ""


def open_console(dialect_name: str, firmware: FirmwareApi, scheduler: Scheduler, name: str | None = None) -> Console:
    """A console for ``firmware`` in dialect ``dialect_name`` on a fresh pty.

    Raises :class:`UnknownDialectError` (listing the known names) for an unknown dialect.
    """
    return Console(dialect_name, firmware, scheduler, name)
