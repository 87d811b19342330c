"""SCPI for the virtual instruments: command patterns as data, a parser, and the error queue.

A dialect is a table ``operation -> [pattern, ...]`` (from a profile YAML). A pattern is written
the way programming guides print commands::

    [SOURce#:]VOLTage[:LEVel][:IMMediate][:AMPLitude] <value:number:V>[,<channels:chanlist>]
    OUTPut[:STATe] [<channel:channel>,]<state:bool>
    MEASure:VOLTage? [<channels:chanlist>]

* Mnemonics: upper-case letters are the short form, the whole word the long form; received
  headers match either, case-insensitively. ``[...]`` nodes are optional; ``#`` after a
  mnemonic accepts a numeric suffix (``SOUR2``), delivered as an argument named after the
  mnemonic's long form (``source=2``). A trailing ``?`` makes the pattern a query.
* Parameters ``<name:kind[:unit]>``, ``[...]`` around one (with its comma) makes it optional.
  Kinds: ``number`` (decimal with an optional unit and SI prefix, or MIN/MAX/DEF/AUTO),
  ``bool`` (ON/OFF/1/0), ``int``, ``chanlist`` (``(@1,2)``, ``(@1:3)``), ``word``,
  ``string`` (quoted); an instrument may add kinds (a PSU adds ``channel``: CH1...).

:class:`ScpiEngine` executes a line (``;``-separated units, a unit without a leading ``:``
resolved relative to the previous header's path first), keeps the standard error queue
(``SYST:ERR?`` -> ``+0,"No error"``) and the IEEE 488.2 common commands (``*IDN?``,
``*RST``, ``*CLS``, ``*OPC?``, ``*ESR?``...). Bad input is answered as an instrument does:
an error in the queue, no reply, never an exception out of :meth:`ScpiEngine.execute`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

#: Standard SCPI error messages (SCPI-99 vol. 2, ch. 21) used by the virtual instruments.
STANDARD_ERRORS: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -131: "Invalid suffix",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -300: "Device-specific error",
    -350: "Queue overflow",
}

NUMERIC_KEYWORDS: dict[str, str] = {
    "MIN": "MIN", "MINIMUM": "MIN", "MAX": "MAX", "MAXIMUM": "MAX", "DEF": "DEF", "DEFAULT": "DEF", "AUTO": "AUTO",
}

_SI_PREFIX: dict[str, float] = {
    "EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3, "": 1.0, "M": 1e-3, "U": 1e-6, "N": 1e-9,
    "P": 1e-12,
}


class ScpiError(Exception):
    """A SCPI error an instrument puts in its queue: ``code`` and the standard message.

    ``detail`` says what was wrong and where (for logs; the queue carries the standard text).
    """

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.message = STANDARD_ERRORS.get(code, "Error")
        self.detail = detail
        super().__init__(f"{code},{self.message}" + (f": {detail}" if detail else ""))


class ProfileError(ValueError):
    """An instrument profile (or a command pattern in it) is invalid; the message names the file and entry."""


# -- patterns -------------------------------------------------------------------------------------

_MNEMONIC = re.compile(r"[A-Z][A-Z0-9]*[a-z0-9]*")
_HEADER_TOKEN = re.compile(r"\[:?([A-Za-z][A-Za-z0-9]*)(#?):?\]|:?([A-Za-z][A-Za-z0-9]*)(#?)")
_PARAM_TOKEN = re.compile(r"\[\s*,?\s*<([^<>]+)>\s*,?\s*\]|<([^<>]+)>")


@dataclass(frozen=True, slots=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool

    def accept(self, received: str) -> tuple[bool, int | None]:
        word = received.upper()
        if self.suffix:
            m = re.fullmatch(r"([A-Z]+)(\d*)", word)
            if m is None or m.group(1) not in (self.short, self.long):
                return False, None
            return True, int(m.group(2)) if m.group(2) else None
        return word in (self.short, self.long), None


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    kind: str
    unit: str | None
    optional: bool


@dataclass(frozen=True, slots=True)
class CommandPattern:
    """One way of writing an operation's command (compiled from its text in a profile)."""

    operation: str
    text: str
    nodes: tuple[_Node, ...]
    query: bool
    params: tuple[_Param, ...]
    common: bool = False

    @classmethod
    def parse(cls, operation: str, text: str) -> "CommandPattern":
        """Compile ``text``; raises :class:`ProfileError` naming the operation and what is wrong."""
        where = f"operation {operation!r}, pattern {text!r}"
        header, _, param_spec = text.strip().partition(" ")
        if not header:
            raise ProfileError(f"{where}: empty pattern")
        query = header.endswith("?")
        spec = header[:-1] if query else header
        if spec.startswith("*"):
            if not re.fullmatch(r"\*[A-Z]+", spec):
                raise ProfileError(f"{where}: a common command is '*' and upper-case letters")
            nodes: tuple[_Node, ...] = (_Node(spec, spec, False, False),)
            common = True
        else:
            common = False
            found: list[_Node] = []
            pos = 0
            while pos < len(spec):
                m = _HEADER_TOKEN.match(spec, pos)
                if m is None or m.end() == pos:
                    raise ProfileError(f"{where}: cannot read the header at {spec[pos:]!r}")
                word = m.group(1) or m.group(3)
                if not _MNEMONIC.fullmatch(word):
                    raise ProfileError(f"{where}: mnemonic {word!r} must be upper-case short form + lower-case rest")
                short = "".join(ch for ch in word if not ch.islower())
                found.append(_Node(short, word.upper(), m.group(1) is not None, bool(m.group(2) or m.group(4))))
                pos = m.end()
            if not any(not n.optional for n in found):
                raise ProfileError(f"{where}: the header needs at least one required mnemonic")
            nodes = tuple(found)
        params: list[_Param] = []
        rest = _PARAM_TOKEN.sub("", param_spec)
        if rest.replace(",", "").strip():
            raise ProfileError(f"{where}: unexpected text {rest.strip()!r} in the parameters")
        for m in _PARAM_TOKEN.finditer(param_spec):
            optional = m.group(1) is not None
            parts = (m.group(1) or m.group(2)).split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ProfileError(f"{where}: a parameter is <name:kind> or <name:kind:unit>, got <{':'.join(parts)}>")
            params.append(_Param(parts[0], parts[1], parts[2].upper() if len(parts) == 3 else None, optional))
        return cls(operation, text, nodes, query, tuple(params), common)

    def match_header(self, received: Sequence[str], query: bool) -> dict[str, int | None] | None:
        """The numeric suffixes captured if ``received`` (mnemonics) names this pattern, else None."""
        if query != self.query:
            return None
        captured: dict[str, int | None] = {}
        return captured if _match_nodes(self.nodes, 0, received, 0, captured) else None

    def bind(self, texts: Sequence[str], kinds: Mapping[str, "ParamKind"]) -> dict[str, Any]:
        """Parse the received parameter texts into named values; optional ones may be skipped.

        An optional parameter is taken when its text parses and the rest still fits, else
        skipped (``OUTP ON`` and ``OUTP CH1,ON`` both fit ``[<channel>,]<state>``).
        """
        return self._bind(0, texts, 0, kinds)

    def _bind(self, i: int, texts: Sequence[str], k: int, kinds: Mapping[str, "ParamKind"]) -> dict[str, Any]:
        if i == len(self.params):
            if k < len(texts):
                raise ScpiError(-108, f"{len(texts) - k} extra parameter(s) for {self.text!r}")
            return {}
        p = self.params[i]
        taken_error: ScpiError | None = None
        if k < len(texts):
            try:
                value = kinds[p.kind](texts[k], p.unit)
            except ScpiError as exc:
                if not p.optional:
                    raise
                taken_error = exc
            else:
                try:
                    return {p.name: value, **self._bind(i + 1, texts, k + 1, kinds)}
                except ScpiError as exc:
                    if not p.optional:
                        raise
                    taken_error = exc
        elif not p.optional:
            raise ScpiError(-109, f"{p.name} missing in {self.text!r}")
        try:
            return {p.name: None, **self._bind(i + 1, texts, k, kinds)}
        except ScpiError as exc:
            # report a bad value rather than a count mismatch caused by trying the other reading
            if taken_error is None or (taken_error.code in (-108, -109) and exc.code not in (-108, -109)):
                raise
            raise taken_error from None


def _match_nodes(nodes: Sequence[_Node], i: int, received: Sequence[str], j: int, captured: dict[str, int | None]) -> bool:
    if i == len(nodes):
        return j == len(received)
    node = nodes[i]
    if j < len(received):
        ok, suffix = node.accept(received[j])
        if ok and _match_nodes(nodes, i + 1, received, j + 1, captured):
            if node.suffix:
                captured[node.long.lower()] = suffix
            return True
    if node.optional:
        if node.suffix:
            captured.setdefault(node.long.lower(), None)
        return _match_nodes(nodes, i + 1, received, j, captured)
    return False


class CommandTable:
    """An instrument's commands: operation name -> compiled patterns, matched in order."""

    def __init__(self, commands: Mapping[str, Sequence[str]]) -> None:
        self.patterns: list[CommandPattern] = []
        for operation, texts in commands.items():
            if isinstance(texts, str):
                texts = [texts]
            for text in texts:
                self.patterns.append(CommandPattern.parse(operation, text))

    @property
    def operations(self) -> set[str]:
        return {p.operation for p in self.patterns}

    def kinds_used(self) -> set[str]:
        return {p.kind for pattern in self.patterns for p in pattern.params}

    def resolve(self, nodes: Sequence[str], query: bool, common: bool, texts: Sequence[str],
                kinds: Mapping[str, "ParamKind"]) -> tuple[CommandPattern, dict[str, Any]] | None:
        """The first pattern whose header and parameters fit; None if no header fits.

        When headers fit but no parameter list does, raises the first pattern's parameter error.
        """
        first_error: ScpiError | None = None
        for pattern in self.patterns:
            if pattern.common != common:
                continue
            captured = pattern.match_header(nodes, query)
            if captured is None:
                continue
            try:
                args = pattern.bind(texts, kinds)
            except ScpiError as exc:
                first_error = first_error or exc
                continue
            return pattern, {**captured, **args}
        if first_error is not None:
            raise first_error
        return None


# -- parameter kinds ------------------------------------------------------------------------------

ParamKind = Callable[[str, "str | None"], Any]
"""Parses one parameter's text (and the unit the pattern allows); raises :class:`ScpiError`."""

_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)")


def parse_number(text: str, unit: str | None = None) -> float | str:
    """A decimal number with an optional unit (``100mA``, ``5 V``) or a keyword (MIN, MAX, DEF, AUTO)."""
    word = text.strip().upper()
    if word in NUMERIC_KEYWORDS:
        return NUMERIC_KEYWORDS[word]
    m = _NUMBER.fullmatch(text.strip())
    if m is None:
        raise ScpiError(-104, f"expected a number, got {text!r}")
    value = float(m.group(1))
    suffix = m.group(2).upper()
    if not suffix:
        return value
    if unit is None or not suffix.endswith(unit):
        raise ScpiError(-131, f"suffix {m.group(2)!r} not allowed here" + (f" (unit {unit})" if unit else ""))
    prefix = suffix[: -len(unit)]
    if unit == "HZ" and prefix == "M":
        prefix = "MA"  # SCPI: MHZ is megahertz
    if prefix not in _SI_PREFIX:
        raise ScpiError(-131, f"unknown multiplier {prefix!r} in {text!r}")
    return value * _SI_PREFIX[prefix]


def parse_bool(text: str, unit: str | None = None) -> bool:
    """ON/OFF or a number (non-zero is ON, as SCPI rounds it)."""
    word = text.strip().upper()
    if word == "ON":
        return True
    if word == "OFF":
        return False
    try:
        return round(float(word)) != 0
    except ValueError:
        raise ScpiError(-224, f"expected ON, OFF, 1 or 0, got {text!r}") from None


def parse_int(text: str, unit: str | None = None) -> int:
    word = text.strip()
    if not re.fullmatch(r"[+-]?\d+", word):
        raise ScpiError(-104, f"expected an integer, got {text!r}")
    return int(word)


def parse_chanlist(text: str, unit: str | None = None) -> list[int]:
    """``(@1)``, ``(@1,3)``, ``(@1:3)`` -> channel numbers in order."""
    m = re.fullmatch(r"\(\s*@([^()]*)\)", text.strip())
    if m is None:
        raise ScpiError(-104, f"expected a channel list like (@1,2), got {text!r}")
    channels: list[int] = []
    for item in m.group(1).split(","):
        lo, sep, hi = item.strip().partition(":")
        if not lo.isdigit() or (sep and not hi.strip().isdigit()):
            raise ScpiError(-224, f"bad channel list entry {item.strip()!r} in {text!r}")
        first, last = int(lo), int(hi) if sep else int(lo)
        channels.extend(range(first, last + 1) if last >= first else range(first, last - 1, -1))
    return channels


def parse_word(text: str, unit: str | None = None) -> str:
    word = text.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", word):
        raise ScpiError(-104, f"expected character data, got {text!r}")
    return word.upper()


def parse_string(text: str, unit: str | None = None) -> str:
    word = text.strip()
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1].replace(word[0] * 2, word[0])
    raise ScpiError(-104, f"expected a quoted string, got {text!r}")


BUILTIN_KINDS: dict[str, ParamKind] = {
    "number": parse_number, "bool": parse_bool, "int": parse_int, "chanlist": parse_chanlist, "word": parse_word,
    "string": parse_string,
}


def resolve_number(value: float | str | None, *, minimum: float, maximum: float, default: float,
                   what: str, allow_auto: bool = False) -> float | str:
    """Turn a parsed number or MIN/MAX/DEF into a value in ``[minimum, maximum]`` (else -222).

    ``AUTO`` passes through when ``allow_auto`` (else -224); ``None`` (omitted) means DEF.
    """
    if value is None or value == "DEF":
        return default
    if value == "MIN":
        return minimum
    if value == "MAX":
        return maximum
    if value == "AUTO":
        if allow_auto:
            return "AUTO"
        raise ScpiError(-224, f"AUTO is not a value for {what}")
    assert isinstance(value, float)
    if not minimum - 1e-12 <= value <= maximum + 1e-12:
        raise ScpiError(-222, f"{what} {value:g} outside {minimum:g}..{maximum:g}")
    return value


# -- splitting a program message ------------------------------------------------------------------

def split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside quotes and parentheses; -102 on unbalanced ones."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ScpiError(-102, f"unbalanced ')' in {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ScpiError(-102, f"unterminated quote or parenthesis in {text!r}")
    parts.append(text[start:])
    return parts


_HEADER = re.compile(r"(:?)([A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*)(\??)")
_COMMON_HEADER = re.compile(r"\*([A-Za-z]+)(\??)")


@dataclass(frozen=True, slots=True)
class ScpiCall:
    """One program message unit, matched: what a handler gets.

    ``args`` holds the named parameters (None when an optional one was omitted) and the numeric
    suffixes of ``#`` mnemonics (``source``: 2 for ``SOUR2:VOLT``).
    """

    operation: str
    query: bool
    args: dict[str, Any]
    text: str


Handler = Callable[[ScpiCall], "str | None"]


# -- profiles -------------------------------------------------------------------------------------

class Identity(BaseModel):
    """What ``*IDN?`` says."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    manufacturer: str
    model: str
    serial: str
    firmware: str


class ScpiProfile(BaseModel):
    """The part of an instrument profile every SCPI instrument shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    identity: Identity
    idn_format: str = "{manufacturer},{model},{serial},{firmware}"
    error_format: str = '{code:+d},"{message}"'
    error_queue_size: int = Field(default=20, ge=1)
    commands: dict[str, list[str]]

    @field_validator("commands")
    @classmethod
    def _patterns_compile(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        CommandTable(value)  # raises ProfileError (a ValueError) naming the bad pattern
        return value

    @field_validator("error_format")
    @classmethod
    def _error_format_works(cls, value: str) -> str:
        value.format(code=-113, message="Undefined header")
        return value

    def idn(self, serial: str | None = None) -> str:
        """The ``*IDN?`` answer (with ``serial`` in place of the profile's, if given)."""
        ident = self.identity.model_dump()
        if serial is not None:
            ident["serial"] = serial
        return self.idn_format.format(**ident)


P = TypeVar("P", bound=ScpiProfile)

PROFILES_PACKAGE = "hil.sim.instruments"


def load_profile(source: str | Path, model: type[P]) -> P:
    """Load a profile by name (``psu_keysight_e36300`` from ``profiles/``) or from a YAML path."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read instrument profile {where}: {exc}") from exc
    else:
        ref = resources.files(PROFILES_PACKAGE).joinpath("profiles", f"{source}.yaml")
        where = f"profiles/{source}.yaml"
        if not ref.is_file():
            known = sorted(p.name[:-5] for p in resources.files(PROFILES_PACKAGE).joinpath("profiles").iterdir()
                           if p.name.endswith(".yaml"))
            raise ProfileError(f"no instrument profile {source!r}; expected one of {known}")
        text = ref.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping at the top, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{where}: invalid {model.__name__}: {exc}") from exc


# -- the engine -----------------------------------------------------------------------------------

COMMON_COMMANDS: dict[str, list[str]] = {
    "idn": ["*IDN?"],
    "reset": ["*RST"],
    "clear_status": ["*CLS"],
    "opc": ["*OPC"],
    "opc_query": ["*OPC?"],
    "wait": ["*WAI"],
    "esr_query": ["*ESR?"],
    "ese": ["*ESE <mask:int>"],
    "ese_query": ["*ESE?"],
    "stb_query": ["*STB?"],
    "tst_query": ["*TST?"],
}
"""IEEE 488.2 common commands every virtual instrument understands."""

#: Operations the engine itself handles when a profile maps commands to them.
ENGINE_OPERATIONS = {"system_error", "system_error_count", "remote", "local", "system_version"}


@dataclass
class _Status:
    esr: int = 0
    ese: int = 0
    queue: deque[tuple[int, str]] = field(default_factory=deque)


class ScpiEngine:
    """Executes SCPI lines against handlers; owns the error queue and the common commands.

    ``handlers`` maps each operation of ``commands`` to a function of a :class:`ScpiCall`
    returning the reply text (queries) or None; a handler signals a bad value by raising
    :class:`ScpiError`. ``on_reset`` runs for ``*RST``. Thread-safe: one line at a time.
    """

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        handlers: Mapping[str, Handler],
        *,
        idn: str,
        error_format: str = '{code:+d},"{message}"',
        error_queue_size: int = 20,
        kinds: Mapping[str, ParamKind] | None = None,
        on_reset: Callable[[], None] | None = None,
        name: str = "scpi",
    ) -> None:
        self.name = name
        self.table = CommandTable({**COMMON_COMMANDS, **commands})
        self.kinds: dict[str, ParamKind] = {**BUILTIN_KINDS, **(kinds or {})}
        self.idn = idn
        self.error_format = error_format
        self.error_queue_size = error_queue_size
        self.remote = False
        self._on_reset = on_reset
        self._status = _Status()
        self._lock = threading.RLock()
        builtin: dict[str, Handler] = {
            "idn": lambda call: self.idn,
            "reset": self._reset,
            "clear_status": self._clear_status,
            "opc": lambda call: None,
            "opc_query": lambda call: "1",
            "wait": lambda call: None,
            "esr_query": self._esr_query,
            "ese": self._ese,
            "ese_query": lambda call: str(self._status.ese),
            "stb_query": self._stb_query,
            "tst_query": lambda call: "0",
            "system_error": lambda call: self.next_error(),
            "system_error_count": lambda call: str(len(self._status.queue)),
            "remote": lambda call: self._set_remote(True),
            "local": lambda call: self._set_remote(False),
            "system_version": lambda call: "1999.0",
        }
        self.handlers: dict[str, Handler] = {**builtin, **handlers}
        missing = sorted(self.table.operations - set(self.handlers))
        if missing:
            raise ProfileError(f"{name}: no handler for operation(s) {missing}; handled: {sorted(self.handlers)}")
        unknown_kinds = sorted(self.table.kinds_used() - set(self.kinds))
        if unknown_kinds:
            raise ProfileError(f"{name}: unknown parameter kind(s) {unknown_kinds}; known: {sorted(self.kinds)}")

    # -- error queue ---------------------------------------------------------------------------

    def push_error(self, code: int, detail: str = "") -> None:
        """Queue an error (the standard message); a full queue ends with -350 Queue overflow."""
        with self._lock:
            status = self._status
            queue = status.queue
            if len(queue) >= self.error_queue_size:
                queue[-1] = (-350, STANDARD_ERRORS[-350])
            else:
                queue.append((code, STANDARD_ERRORS.get(code, "Error")))
            status.esr |= _esr_bit(code)
        log.info("%s: error %d %s%s", self.name, code, STANDARD_ERRORS.get(code, "Error"),
                 f" ({detail})" if detail else "")

    def next_error(self) -> str:
        """Pop the oldest error, formatted as the instrument prints it (``+0,"No error"`` when empty)."""
        with self._lock:
            code, message = self._status.queue.popleft() if self._status.queue else (0, STANDARD_ERRORS[0])
        return self.error_format.format(code=code, message=message)

    @property
    def errors(self) -> list[tuple[int, str]]:
        """The queued errors, oldest first (not removed)."""
        with self._lock:
            return list(self._status.queue)

    # -- execution -----------------------------------------------------------------------------

    def execute(self, line: str) -> str | None:
        """Run one program message; the reply line (queries' answers joined by ``;``) or None."""
        with self._lock:
            try:
                units = split_top(line.strip(), ";")
            except ScpiError as exc:
                self.push_error(exc.code, exc.detail)
                return None
            replies: list[str] = []
            path: list[str] = []
            for unit in units:
                unit = unit.strip()
                if not unit:
                    continue
                try:
                    reply, path = self._execute_unit(unit, path)
                except ScpiError as exc:
                    self.push_error(exc.code, f"{exc.detail or exc.message} in {unit!r}")
                    if -199 <= exc.code <= -100:
                        break  # a command error ends the message's parsing, as IEEE 488.2 parsers do
                    continue
                except Exception:  # a handler bug must not take the instrument down
                    log.exception("%s: handler failed on %r", self.name, unit)
                    self.push_error(-300, f"internal error in {unit!r}")
                    continue
                if reply is not None:
                    replies.append(reply)
            return ";".join(replies) if replies else None

    def _execute_unit(self, unit: str, path: list[str]) -> tuple[str | None, list[str]]:
        header, _, params_text = unit.partition(" ")
        params_text = params_text.strip()
        if "\t" in header:
            header, _, more = header.partition("\t")
            params_text = (more + " " + params_text).strip()
        texts = [t.strip() for t in split_top(params_text, ",")] if params_text else []
        if any(t == "" for t in texts):
            raise ScpiError(-102, "empty parameter")
        common = _COMMON_HEADER.fullmatch(header)
        if common is not None:
            nodes = ["*" + common.group(1).upper()]
            found = self.table.resolve(nodes, bool(common.group(2)), True, texts, self.kinds)
            if found is None:
                raise ScpiError(-113, f"unknown common command {header!r}")
            pattern, args = found
            return self._call(pattern, args, unit), path  # common commands leave the path alone
        m = _HEADER.fullmatch(header)
        if m is None:
            raise ScpiError(-102, f"not a SCPI header: {header!r}")
        nodes = m.group(2).split(":")
        query = bool(m.group(3))
        found = None
        if not m.group(1) and path:
            found = self.table.resolve(path + nodes, query, False, texts, self.kinds)
            if found is not None:
                nodes = path + nodes
        if found is None:
            found = self.table.resolve(nodes, query, False, texts, self.kinds)
        if found is None:
            raise ScpiError(-113, f"undefined header {header!r}")
        pattern, args = found
        return self._call(pattern, args, unit), nodes[:-1]

    def _call(self, pattern: CommandPattern, args: dict[str, Any], text: str) -> str | None:
        return self.handlers[pattern.operation](ScpiCall(pattern.operation, pattern.query, args, text))

    # -- common commands -----------------------------------------------------------------------

    def _reset(self, call: ScpiCall) -> None:
        if self._on_reset is not None:
            self._on_reset()
        return None

    def _clear_status(self, call: ScpiCall) -> None:
        self._status.queue.clear()
        self._status.esr = 0
        return None

    def _esr_query(self, call: ScpiCall) -> str:
        value, self._status.esr = self._status.esr, 0
        return str(value)

    def _ese(self, call: ScpiCall) -> None:
        mask = call.args["mask"]
        if not 0 <= mask <= 255:
            raise ScpiError(-222, f"*ESE mask {mask} outside 0..255")
        self._status.ese = mask
        return None

    def _stb_query(self, call: ScpiCall) -> str:
        stb = (4 if self._status.queue else 0) | (32 if self._status.esr & self._status.ese else 0)
        return str(stb)

    def _set_remote(self, remote: bool) -> None:
        self.remote = remote
        return None


def _esr_bit(code: int) -> int:
    """The Standard Event Status bit an error sets (command 5, execution 4, device 3, query 2)."""
    if -199 <= code <= -100:
        return 32
    if -299 <= code <= -200:
        return 16
    if -399 <= code <= -300 or code > 0:
        return 8
    if -499 <= code <= -400:
        return 4
    return 0
