"""The unit handler role: who puts the next unit in the test fixture and takes it out again.

On a provisioning line this is an automated handler (pick-and-place with a pogo-pin fixture,
bins and a label scanner) remote-controlled over SCPI, or, with none, the operator at the
station's terminal. Both implement :class:`UnitHandler`; the station asks for the role, never
for the kind. ``open_handler(rig.handler, clock)`` builds the right one from the rig file.

:class:`ScpiUnitHandler` speaks the command set in :data:`DEFAULT_COMMANDS` (the virtual
handler's, ``hil/sim/instruments/profiles/handler_hil_fixture.yaml``); a real handler's words go
in the rig file (``handler.commands``). Every setting command is followed by an error-queue read
(:mod:`drivers.instruments.visa`); a refused move, an empty tray or a unit that never arrives is
an :class:`~drivers.instruments.visa.InstrumentError`: a rig fault, not the DUT's.

:class:`OperatorHandler` prints an instruction and waits (bounded) for the operator's line: the
scanned label, or Enter.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import SimpleNamespace
from typing import Any, Literal, Mapping, Protocol, TextIO

from drivers.instruments.profiles import ConnectionSettings, ErrorQueueFormat
from drivers.instruments.visa import InstrumentError, ScpiSession, Transport, VisaTransport, connect
from hil.clock import Clock, Deadline
from hil.faults import RigFault

__all__ = ["DEFAULT_COMMANDS", "Bin", "OperatorHandler", "ScpiUnitHandler", "UnitHandler", "open_handler"]

log = logging.getLogger(__name__)
steps = logging.getLogger("hil.steps")

Bin = Literal["pass", "fail", "reject"]

DEFAULT_COMMANDS: dict[str, str] = {
    "identify": "*IDN?",
    "load": "UNIT:LOAD",  # next unit from the input tray
    "reload": "UNIT:LOAD {serial}",  # a unit back from a bin (retest, rework)
    "present": "UNIT:PRES?",  # 1 when a unit sits in the fixture
    "busy": "UNIT:BUSY?",  # 1 while the handler moves a unit
    "serial": "UNIT:SER?",  # the handler's number of that unit
    "label": "UNIT:LAB?",  # the scanner's reading, quoted; "" without a label
    "bin": "UNIT:BIN {bin}",  # {bin}: PASS, FAIL or REJECT
}
POLL_S = 0.1  # rig seconds between "is the unit there yet?" queries


class UnitHandler(Protocol):
    """Puts units in the fixture and takes them out."""

    name: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def unit_present(self) -> bool:
        """Whether a unit sits in the fixture now (e.g. left there by an interrupted run)."""
        ...

    def load_next(self, deadline: Deadline) -> None:
        """Put the next untested unit in the fixture; returns once it is there (the DUT unpowered)."""
        ...

    def scan_label(self) -> str | None:
        """The text of the unit's label as scanned, or None when it has none."""
        ...

    def unload(self, bin: Bin, deadline: Deadline) -> None:
        """Take the unit out into the ``pass``, ``fail`` or ``reject`` bin."""
        ...


class ScpiUnitHandler:
    """An automated handler on a VISA resource (``TCPIP0::10.0.0.9::5025::SOCKET``)."""

    def __init__(self, resource: str, clock: Clock, *, commands: Mapping[str, str] | None = None,
                 load_timeout_s: float = 60.0, transport: Transport | None = None, visa_library: str = "@py",
                 name: str = "handler") -> None:
        unknown = sorted(set(commands or {}) - set(DEFAULT_COMMANDS))
        if unknown:
            raise ValueError(f"handler.commands: unknown operation(s) {unknown}; known: {sorted(DEFAULT_COMMANDS)}")
        self.commands = {**DEFAULT_COMMANDS, **(commands or {})}
        self.resource = resource
        self.clock = clock
        self.load_timeout_s = load_timeout_s
        self.name = name
        self.idn: str | None = None
        self._transport = transport
        self._visa_library = visa_library
        self._session: ScpiSession | None = None

    def open(self) -> None:
        if self._session is not None:
            return
        settings = ConnectionSettings()
        profile = SimpleNamespace(name=self.name, connection=settings, errors=ErrorQueueFormat(),
                                  commands=SimpleNamespace(identify=self.commands["identify"]))
        transport = self._transport or VisaTransport(self.resource, settings, visa_library=self._visa_library,
                                                     keep_manager=True)
        self._session, self.idn = connect(self.resource, profile, self.clock, name=self.name, transport=transport)

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def __repr__(self) -> str:
        return f"ScpiUnitHandler({self.resource!r}, {'open' if self._session else 'closed'})"

    @property
    def session(self) -> ScpiSession:
        if self._session is None:
            raise InstrumentError(f"{self.name}: {self.resource} is not open (call open())", resource=self.resource)
        return self._session

    def _flag(self, operation: str) -> bool:
        reply = self.session.query(self.commands[operation]).strip()
        if reply not in ("0", "1"):
            raise InstrumentError(f"{self.name} at {self.resource}: {self.commands[operation]!r} answered {reply!r}, "
                                  "expected 0 or 1", resource=self.resource, command=self.commands[operation])
        return reply == "1"

    def unit_present(self) -> bool:
        return self._flag("present")

    def serial(self) -> int:
        """The handler's number of the unit in the fixture (0: none)."""
        reply = self.session.query(self.commands["serial"]).strip()
        try:
            return int(reply)
        except ValueError:
            raise InstrumentError(f"{self.name}: serial query answered {reply!r}", resource=self.resource) from None

    def _wait_present(self, deadline: Deadline, what: str) -> None:
        while not self.unit_present():
            if deadline.expired:
                raise InstrumentError(f"{self.name} at {self.resource}: no unit in the fixture within the deadline "
                                      f"after {what}", resource=self.resource, command=what)
            self.clock.sleep(min(POLL_S, deadline.remaining))

    def load_next(self, deadline: Deadline) -> None:
        t = self.clock.now()
        self.session.write_checked(self.commands["load"])
        self._wait_present(deadline, self.commands["load"])
        steps.info("%s: unit loaded in %.2f rig s", self.name, self.clock.now() - t)

    def reload(self, serial: int, deadline: Deadline) -> None:
        """Put unit ``serial`` back from its bin (a retest or rework)."""
        command = self.commands["reload"].format(serial=int(serial))
        self.session.write_checked(command)
        self._wait_present(deadline, command)

    def scan_label(self) -> str | None:
        reply = self.session.query(self.commands["label"]).strip()
        if len(reply) >= 2 and reply[0] == reply[-1] == '"':
            reply = reply[1:-1]
        return reply or None

    def unload(self, bin: Bin, deadline: Deadline) -> None:
        self.session.write_checked(self.commands["bin"].format(bin=bin.upper()))
        while self._flag("busy"):  # the arm takes it out
            if deadline.expired:
                raise InstrumentError(f"{self.name}: the unit is still in the fixture after {bin} unload",
                                      resource=self.resource)
            self.clock.sleep(min(POLL_S, deadline.remaining))
        steps.info("%s: unit unloaded to %s", self.name, bin.upper())


class OperatorHandler:
    """The operator swaps units: instructions on ``output``, answers (a scanned label, Enter) from ``input``.

    A scanner in keyboard mode types the label and Enter, so a scan answers the prompt.
    Each wait is bounded by ``timeout_s`` real seconds (the operator's, not the rig's time).
    """

    def __init__(self, clock: Clock, *, input: TextIO | None = None, output: TextIO | None = None,
                 timeout_s: float = 3600.0, name: str = "operator") -> None:
        self.clock = clock
        self.input = input if input is not None else sys.stdin
        self.output = output if output is not None else sys.stderr
        self.timeout_s = timeout_s
        self.name = name
        self._label: str | None = None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def _ask(self, prompt: str) -> str:
        self.output.write(prompt)
        self.output.flush()
        box: list[str] = []
        done = threading.Event()

        def read() -> None:
            try:
                box.append(self.input.readline())
            finally:
                done.set()

        threading.Thread(target=read, name="operator-input", daemon=True).start()
        if not done.wait(self.timeout_s):
            raise RigFault(f"{self.name}: no answer within {self.timeout_s:g} s to: {prompt.strip()}")
        if not box or box[0] == "":
            raise RigFault(f"{self.name}: the operator's input is closed (no terminal?): {prompt.strip()}")
        return box[0].strip()

    def unit_present(self) -> bool:
        answer = self._ask("Is a unit still in the fixture from an interrupted run? [y/N] ")
        return answer.lower() in ("y", "yes")

    def load_next(self, deadline: Deadline) -> None:
        self._label = self._ask("Put the next unit in the fixture and close it; scan its label (or press Enter): ") or None

    def scan_label(self) -> str | None:
        if self._label is None:
            self._label = self._ask("Scan the unit's label (or press Enter if it has none): ") or None
        return self._label

    def unload(self, bin: Bin, deadline: Deadline) -> None:
        self._ask(f"Open the fixture, put the unit in the {bin.upper()} bin, then press Enter: ")
        self._label = None


def open_handler(part: Any, clock: Clock, **kwargs: Any) -> UnitHandler:
    """The handler a rig file's ``handler:`` section describes, opened."""
    handler: UnitHandler
    if part.kind == "scpi":
        handler = ScpiUnitHandler(part.resource, clock, commands=part.commands, load_timeout_s=part.load_timeout_s,
                                  **kwargs)
    elif part.kind == "operator":
        handler = OperatorHandler(clock, **kwargs)
    else:  # pragma: no cover - the rig-file model admits only these
        raise ValueError(f"unknown handler kind {part.kind!r}")
    handler.open()
    return handler
