"""Talking SCPI to an instrument: a VISA resource opened by name, paced and error-checked.

* :class:`VisaTransport` opens one resource with pyvisa (``ResourceManager("@py")``, the
  pure-Python backend) by its name, with the profile's terminations and timeouts. Resources are
  never listed: listing resources broadcasts on the LAN.
* :class:`ScpiSession` is the conversation over any :class:`Transport`: it waits the profile's
  pacing on the rig clock (a slow instrument's delay after every write, its query delay), reads
  the error queue after every setting command (:meth:`ScpiSession.write_checked`) and keeps a
  transcript with rig times for the report.

Anything that goes wrong talking to the instrument (it cannot be reached, a timeout, a broken
connection, an error in its queue) is an :class:`InstrumentError`: a rig fault, never a
product failure. Messages name the instrument, the resource and the command.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.instruments.profiles import ConnectionSettings, ErrorQueueFormat
from hil.clock import Clock
from hil.faults import RigFault

log = logging.getLogger(__name__)

__all__ = [
    "InstrumentError",
    "OperationNotSupported",
    "ScpiSession",
    "TranscriptLine",
    "Transport",
    "VisaTransport",
    "connect",
]


class InstrumentError(RigFault):
    """An instrument could not be reached or reported an error: a rig fault, not a product failure.

    ``resource`` says where, ``command`` what was sent, ``code``/``error_message`` what the
    instrument's error queue said (None for I/O failures); ``errors`` lists every queued error.
    """

    def __init__(
        self,
        message: str,
        *,
        resource: str,
        command: str | None = None,
        code: int | None = None,
        error_message: str | None = None,
        errors: list[tuple[int | None, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.resource = resource
        self.command = command
        self.code = code
        self.error_message = error_message
        self.errors = errors or []


class OperationNotSupported(InstrumentError):
    """The instrument's profile has no command for an operation the rig asked for (e.g. OVP on a Siglent)."""


class Transport(Protocol):
    """Lines to and from one instrument (a VISA resource, or an in-process fake in tests)."""

    resource: str

    def write(self, command: str) -> None:
        """Send one command (the transport adds the write termination)."""
        ...

    def read(self) -> str:
        """One reply line without its termination; raises on timeout."""
        ...

    def close(self) -> None:
        ...


class VisaTransport:
    """One VISA resource opened by name through pyvisa (default backend ``@py``, pyvisa-py)."""

    def __init__(self, resource: str, settings: ConnectionSettings, *, visa_library: str = "@py",
                 keep_manager: bool = False) -> None:
        """Open ``resource``; InstrumentError naming it if the backend or the resource refuse.

        A raw socket that refuses the connection may only show it at the first write: callers
        probe with a query (``*IDN?``) after opening. ``keep_manager``: closing leaves pyvisa's
        resource manager open — pyvisa-py hands every ``ResourceManager("@py")`` of a process the
        same session, so an instrument that comes and goes during a test session (the unit
        handler) must not close it under the others.
        """
        self._keep_manager = keep_manager
        import pyvisa  # here, so that profile handling never needs the VISA stack

        self.resource = resource
        self._rm: Any = None
        self._inst: Any = None
        try:
            self._rm = pyvisa.ResourceManager(visa_library)
            self._inst = self._rm.open_resource(
                resource,
                read_termination=settings.read_termination,
                write_termination=settings.write_termination,
                open_timeout=settings.open_timeout_ms,
            )
            self._inst.timeout = settings.timeout_ms
        except Exception as exc:  # pyvisa/pyvisa-py raise VisaIOError, OSError, ValueError, bare Exception
            self.close()
            raise InstrumentError(f"cannot open VISA resource {resource} (backend {visa_library}): "
                                  f"{type(exc).__name__}: {exc}", resource=resource) from None

    def write(self, command: str) -> None:
        if self._inst is None:
            raise InstrumentError(f"{self.resource} is closed", resource=self.resource, command=command)
        self._inst.write(command)

    def read(self) -> str:
        if self._inst is None:
            raise InstrumentError(f"{self.resource} is closed", resource=self.resource)
        return str(self._inst.read())

    def close(self) -> None:
        """Close the resource and its resource manager; idempotent."""
        inst, rm = self._inst, self._rm
        self._inst = self._rm = None
        for thing in (inst, None if self._keep_manager else rm):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead connection: nothing more to release
                    log.debug("closing %s failed", self.resource, exc_info=True)

    def __repr__(self) -> str:
        return f"VisaTransport({self.resource!r}, {'open' if self._inst is not None else 'closed'})"


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of the conversation: rig time, ``">"`` sent or ``"<"`` received, the text."""

    time: float
    direction: str
    text: str


class ScpiSession:
    """A paced, error-checked SCPI conversation with one instrument (thread-safe)."""

    def __init__(
        self,
        transport: Transport,
        clock: Clock,
        *,
        connection: ConnectionSettings,
        errors: ErrorQueueFormat,
        name: str,
        transcript_lines: int = 2000,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.connection = connection
        self.error_format = errors
        self.name = name
        self.transcript: deque[TranscriptLine] = deque(maxlen=transcript_lines)
        self.lock = threading.RLock()  # held across a command and its error check; callers may group more

    @property
    def resource(self) -> str:
        return self.transport.resource

    def _where(self) -> str:
        return f"{self.name} at {self.resource}"

    def _io_error(self, what: str, command: str | None, exc: BaseException) -> InstrumentError:
        return InstrumentError(f"{self._where()}: {what}: {type(exc).__name__}: {exc}", resource=self.resource,
                               command=command)

    # -- raw lines -----------------------------------------------------------------------------

    def write(self, command: str) -> None:
        """Send ``command`` and wait the profile's post-write delay (rig time); no error check."""
        with self.lock:
            self.transcript.append(TranscriptLine(self.clock.now(), ">", command))
            try:
                self.transport.write(command)
            except InstrumentError:
                raise
            except Exception as exc:
                raise self._io_error(f"cannot send {command!r}", command, exc) from None
            delay = self.connection.delay_after_write(command)
            if delay > 0:
                self.clock.sleep(delay)

    def query(self, command: str) -> str:
        """Send a query and read its reply (after the profile's query delay).

        A query the instrument does not answer raises InstrumentError with the error queue's
        content when it can be read (why it did not answer).
        """
        with self.lock:
            self.transcript.append(TranscriptLine(self.clock.now(), ">", command))
            try:
                self.transport.write(command)
            except InstrumentError:
                raise
            except Exception as exc:
                raise self._io_error(f"cannot send {command!r}", command, exc) from None
            if self.connection.query_delay_s > 0:
                self.clock.sleep(self.connection.query_delay_s)
            try:
                reply = self.transport.read()
            except InstrumentError:
                raise
            except Exception as exc:
                error = self._io_error(f"no reply to {command!r} within {self.connection.timeout_ms} ms", command,
                                       exc)
                if command.strip().upper() != self.error_format.query.strip().upper():
                    try:
                        queued = self.read_errors()
                    except InstrumentError:
                        queued = []
                    if queued:
                        error = InstrumentError(f"{error}; its error queue: {_describe(queued)}",
                                                resource=self.resource, command=command, code=queued[0][0],
                                                error_message=queued[0][1], errors=queued)
                raise error from None
            self.transcript.append(TranscriptLine(self.clock.now(), "<", reply))
            return reply

    # -- the error queue -----------------------------------------------------------------------

    def read_errors(self) -> list[tuple[int | None, str]]:
        """Read the error queue until it says "no error"; the (code, message) pairs it held."""
        found: list[tuple[int | None, str]] = []
        with self.lock:
            for _ in range(self.error_format.max_reads):
                reply = self.query(self.error_format.query)
                if self.error_format.is_empty(reply):
                    return found
                found.append(self.error_format.parse(reply))
        log.warning("%s: error queue still not empty after %d reads", self._where(), self.error_format.max_reads)
        return found

    def write_checked(self, command: str) -> None:
        """Send a setting command, then read the error queue: InstrumentError if it holds anything.

        The error names the command, the instrument's code and message, and the resource.
        """
        with self.lock:
            self.write(command)
            queued = self.read_errors()
        if queued:
            code, message = queued[0]
            more = f" (and {len(queued) - 1} more: {_describe(queued[1:])})" if len(queued) > 1 else ""
            raise InstrumentError(
                f"{self._where()}: {command!r} raised instrument error {_describe(queued[:1])}{more}",
                resource=self.resource, command=command, code=code, error_message=message, errors=queued)

    def clear_stale_errors(self) -> None:
        """Empty the error queue at the start of a session, logging what someone left in it."""
        stale = self.read_errors()
        if stale:
            log.warning("%s: error queue held %s before this session (cleared)", self._where(), _describe(stale))

    def close(self) -> None:
        with self.lock:
            self.transport.close()


def _describe(errors: list[tuple[int | None, str]]) -> str:
    return "; ".join(f'{code},"{message}"' if code is not None else repr(message) for code, message in errors)


def connect(
    resource: str,
    profile: Any,
    clock: Clock,
    *,
    name: str,
    transport: Transport | None = None,
    visa_library: str = "@py",
) -> tuple[ScpiSession, str]:
    """Open ``resource`` for an instrument with ``profile``: identify it (``*IDN?``) and empty a
    stale error queue. Returns the session and the identity; InstrumentError if unreachable."""
    session = ScpiSession(transport or VisaTransport(resource, profile.connection, visa_library=visa_library),
                          clock, connection=profile.connection, errors=profile.errors, name=f"{name} ({profile.name})")
    try:
        idn = session.query(profile.commands.identify).strip()
        session.clear_stale_errors()
    except BaseException:
        session.close()
        raise
    return session, idn
