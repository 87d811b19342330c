"""Instrument profiles as data: what a bench supply or DMM of one family says, and how to read it.

A profile is a YAML file under ``rigs/profiles/`` (``scpi/<dialect>.yaml`` for supplies,
``dmm/<dialect>.yaml`` for multimeters), validated into the models below. It holds:

* ``connection``: terminations, timeouts and the pacing a slow instrument needs (a delay after
  every write of ``write_delay_s + len(command) * write_delay_per_char_s``, and ``query_delay_s``
  between a query and its read; the driver waits them on the rig clock);
* ``replies``: how numbers and states come back (units to strip, words for on/off, an overload
  value, a status word whose bits are the outputs);
* ``errors``: the error-queue query and the patterns of its "no error" and error replies;
* ``channels`` (supplies) with their limits, ``ac_ranges`` (DMMs);
* ``commands``: one template (a query) or a list of templates (a setting, sent in order) per
  operation, with fields ``{channel}``, ``{value}`` and ``{limit}`` (the present current limit).
  Numbers are formatted by ``value_format`` before they go into a template.

A new instrument whose difference is only syntax is a new profile file, not new code. Every
error names the file and the key path: ``rigs/profiles/scpi/x.yaml: commands.set_voltage: ...``.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_PROFILES_DIR",
    "ConnectionSettings",
    "DmmCommands",
    "DmmProfile",
    "DmmRange",
    "ErrorQueueFormat",
    "ProfileError",
    "PsuChannelLimits",
    "PsuCommands",
    "PsuProfile",
    "ReplyFormat",
    "known_dialects",
    "load_dmm_profile",
    "load_psu_profile",
]

#: ``rigs/profiles`` of this checkout (the drivers are installed editable, next to ``rigs/``).
DEFAULT_PROFILES_DIR = Path(__file__).resolve().parents[2] / "rigs" / "profiles"

_SUBDIRS = {"psu": "scpi", "dmm": "dmm"}
_FIELDS = {"channel", "value", "limit"}


class ProfileError(ValueError):
    """A profile is missing or invalid; the message names the file, the key path and what was expected."""


# -- templates ------------------------------------------------------------------------------------


def _fields(template: str) -> set[str]:
    """The ``{fields}`` of a command template; ValueError on anything but plain known names."""
    names: set[str] = set()
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template {template!r}: {exc} (a literal brace is written {{{{ or }}}})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in _FIELDS:
            raise ValueError(f"template {template!r}: unknown field {{{name}}}; expected {sorted(_FIELDS)}")
        if spec or conversion:
            raise ValueError(f"template {template!r}: {{{name}}} takes no format spec (numbers use value_format)")
        names.add(name)
    return names


def _setting_list(value: Any) -> Any:
    """A setting operation is one command or a list of them, sent in order."""
    return [value] if isinstance(value, str) else value


def _check_setting(templates: list[str]) -> list[str]:
    if not templates:
        raise ValueError("expected at least one command")
    for t in templates:
        if not t.strip():
            raise ValueError("empty command")
        if "?" in t:
            raise ValueError(f"{t!r} is a query; a setting operation sends commands without a reply")
        _fields(t)
    return templates


def _check_query(template: str) -> str:
    if "?" not in template:
        raise ValueError(f"{template!r} is not a query (no '?'); a query operation reads one reply")
    _fields(template)
    return template


Setting = Annotated[list[str], BeforeValidator(_setting_list)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- shared parts ---------------------------------------------------------------------------------


class ConnectionSettings(_Model):
    """How to open the VISA resource and pace the conversation."""

    read_termination: str = "\n"
    write_termination: str = "\n"
    timeout_ms: int = Field(2000, gt=0)
    open_timeout_ms: int = Field(2000, gt=0)
    write_delay_s: float = Field(0.0, ge=0)
    write_delay_per_char_s: float = Field(0.0, ge=0)
    query_delay_s: float = Field(0.0, ge=0)

    def delay_after_write(self, command: str) -> float:
        """Rig seconds to wait after writing ``command`` before the next one."""
        return self.write_delay_s + len(command) * self.write_delay_per_char_s


class ReplyFormat(_Model):
    """How replies are read: numbers (units stripped), on/off words, overload, output status bits."""

    strip_units: list[str] = []
    true_values: list[str] = ["1", "ON"]
    false_values: list[str] = ["0", "OFF"]
    overload_at: float | None = Field(None, gt=0)
    output_status_bits: dict[int, int] | None = None  # channel -> bit of an integer (0x.. hex) status word

    @model_validator(mode="after")
    def _words_apart(self) -> "ReplyFormat":
        both = {w.upper() for w in self.true_values} & {w.upper() for w in self.false_values}
        if both:
            raise ValueError(f"true_values and false_values share {sorted(both)}")
        return self

    def number(self, reply: str) -> float:
        """A numeric reply as a float; ValueError naming the reply if it is not one."""
        text = reply.strip()
        for unit in sorted(self.strip_units, key=len, reverse=True):
            if unit and text.upper().endswith(unit.upper()):
                text = text[: -len(unit)].strip()
                break
        try:
            return float(text)
        except ValueError:
            units = f" (units stripped: {self.strip_units})" if self.strip_units else ""
            raise ValueError(f"expected a number, got {reply!r}{units}") from None

    def state(self, reply: str) -> bool:
        """An on/off (yes/no) reply as a bool; ValueError naming the words expected."""
        word = reply.strip().strip('"').upper()
        if word in (w.upper() for w in self.true_values):
            return True
        if word in (w.upper() for w in self.false_values):
            return False
        raise ValueError(f"expected one of {self.true_values + self.false_values}, got {reply!r}")

    def status_bit(self, reply: str, channel: int) -> bool:
        """Channel ``channel``'s bit of a status word (``0x0010``, ``10`` are hex)."""
        if self.output_status_bits is None or channel not in self.output_status_bits:
            raise ValueError(f"no output status bit for channel {channel}")
        text = reply.strip()
        try:
            word = int(text, 16)
        except ValueError:
            raise ValueError(f"expected a hex status word, got {reply!r}") from None
        return bool(word >> self.output_status_bits[channel] & 1)


class ErrorQueueFormat(_Model):
    """The error queue: its query, the reply meaning "empty", and how an error reply reads."""

    query: str = "SYST:ERR?"
    no_error: str = r'^\s*\+?0\s*(,|\s|$)'
    pattern: str = r'^\s*(?P<code>[+-]?\d+)\s*,\s*"?(?P<message>[^"]*)"?\s*$'
    max_reads: int = Field(32, ge=1)

    @field_validator("query")
    @classmethod
    def _is_query(cls, value: str) -> str:
        return _check_query(value)

    @field_validator("no_error", "pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("pattern")
    @classmethod
    def _has_groups(cls, value: str) -> str:
        groups = set(re.compile(value).groupindex)
        if not {"code", "message"} <= groups:
            raise ValueError(f"needs named groups (?P<code>...) and (?P<message>...), has {sorted(groups)}")
        return value

    def is_empty(self, reply: str) -> bool:
        return re.search(self.no_error, reply) is not None

    def parse(self, reply: str) -> tuple[int | None, str]:
        """(code, message) of an error reply; (None, reply) when it does not match the pattern."""
        m = re.search(self.pattern, reply)
        if m is None:
            return None, reply.strip()
        return int(m.group("code")), m.group("message").strip()


class _InstrumentProfile(_Model):
    name: str
    kind: str
    description: str = ""
    connection: ConnectionSettings = ConnectionSettings()
    replies: ReplyFormat = ReplyFormat()
    errors: ErrorQueueFormat = ErrorQueueFormat()
    value_format: str = "{:.6g}"
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> str:
        """The file the profile came from (for messages), or its name if built in code."""
        return str(self._source) if self._source is not None else f"profile {self.name}"

    @field_validator("value_format")
    @classmethod
    def _formats_numbers(cls, value: str) -> str:
        try:
            value.format(1.5)
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"expected a format string for one number like '{{:.6g}}': {exc}") from None
        return value

    def format_value(self, value: float) -> str:
        return self.value_format.format(value)


# -- supplies -------------------------------------------------------------------------------------


class PsuChannelLimits(_Model):
    """What the driver lets through to one output (None: no client-side check; the instrument's own applies)."""

    max_voltage: float | None = Field(None, gt=0)
    max_current: float | None = Field(None, gt=0)
    max_ovp: float | None = Field(None, gt=0)


class PsuCommands(_Model):
    """Command templates per operation (``None``: the instrument has no such command)."""

    identify: str = "*IDN?"
    select_channel: Setting | None = None  # sent before every channel operation when given
    set_voltage: Setting
    get_voltage: str
    set_current: Setting
    get_current: str
    output_on: Setting
    output_off: Setting
    get_output: str | None = None
    measure_voltage: str
    measure_current: str
    set_ovp: Setting | None = None
    ocp_on: Setting | None = None
    ocp_off: Setting | None = None
    ovp_tripped: str | None = None
    ocp_tripped: str | None = None
    clear_protection: Setting | None = None

    @field_validator("identify", "get_voltage", "get_current", "get_output", "measure_voltage", "measure_current",
                     "ovp_tripped", "ocp_tripped")
    @classmethod
    def _queries(cls, value: str | None) -> str | None:
        return None if value is None else _check_query(value)

    @field_validator("select_channel", "set_voltage", "set_current", "output_on", "output_off", "set_ovp", "ocp_on",
                     "ocp_off", "clear_protection")
    @classmethod
    def _settings(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_setting(value)

    @model_validator(mode="after")
    def _fields_fit(self) -> "PsuCommands":
        takes = {"set_voltage": {"value"}, "set_current": {"value"}, "set_ovp": {"value"}, "ocp_on": {"limit"}}
        for op in type(self).model_fields:
            value = getattr(self, op)
            templates = [value] if isinstance(value, str) else value or []
            used = set().union(*(_fields(t) for t in templates)) if templates else set()
            extra = used - {"channel"} - takes.get(op, set())
            if extra:
                raise ValueError(f"{op}: takes no {', '.join('{%s}' % f for f in sorted(extra))}")
            if op in takes and templates and "value" in takes[op] and "value" not in used:
                raise ValueError(f"{op}: no command carries {{value}}")
        if (self.ocp_on is None) != (self.ocp_off is None):
            raise ValueError("ocp_on and ocp_off: give both or neither")
        return self


class PsuProfile(_InstrumentProfile):
    """A bench supply family's dialect, channels and limits."""

    kind: Literal["psu"]
    channels: list[PsuChannelLimits] = Field(min_length=1)
    commands: PsuCommands

    @model_validator(mode="after")
    def _status_bits_cover_channels(self) -> "PsuProfile":
        bits = self.replies.output_status_bits
        if bits is not None:
            missing = [n for n in range(1, len(self.channels) + 1) if n not in bits]
            if missing:
                raise ValueError(f"replies.output_status_bits has no bit for channel(s) {missing}")
        return self


# -- multimeters ----------------------------------------------------------------------------------


class DmmRange(_Model):
    """One AC-volts range: its full scale and the token its commands take (a value or an index)."""

    volts: float = Field(gt=0)
    token: str


class DmmCommands(_Model):
    """Command templates of a DMM reading AC volts (``{value}`` is the range token)."""

    identify: str = "*IDN?"
    configure_ac: Setting
    read_ac: str

    @field_validator("identify", "read_ac")
    @classmethod
    def _queries(cls, value: str) -> str:
        _check_query(value)
        if _fields(value):
            raise ValueError(f"{value!r}: a DMM query takes no fields")
        return value

    @field_validator("configure_ac")
    @classmethod
    def _settings(cls, value: list[str]) -> list[str]:
        _check_setting(value)
        if any(_fields(t) - {"value"} for t in value):
            raise ValueError("configure_ac takes only {value} (the range token)")
        return value


class DmmProfile(_InstrumentProfile):
    """A DMM family's dialect for AC volts at the relay output."""

    kind: Literal["dmm"]
    ac_ranges: list[DmmRange] = Field(min_length=1)
    auto_range_token: str | None = None
    commands: DmmCommands

    @field_validator("ac_ranges")
    @classmethod
    def _ascending(cls, value: list[DmmRange]) -> list[DmmRange]:
        volts = [r.volts for r in value]
        if volts != sorted(set(volts)):
            raise ValueError(f"expected ranges in ascending order of volts, got {volts}")
        return value

    def range_token(self, requested: float | str) -> str:
        """The token selecting ``requested`` (volts: the smallest range holding them; or ``"AUTO"``)."""
        if isinstance(requested, str):
            if requested.strip().upper() != "AUTO":
                raise ValueError(f"range {requested!r}: expected volts or 'AUTO'")
            if self.auto_range_token is None:
                raise ValueError(f"profile {self.name} has no auto range (auto_range_token); give volts")
            return self.auto_range_token
        for rng in self.ac_ranges:
            if requested <= rng.volts:
                return rng.token
        raise ValueError(f"range {requested:g} V above profile {self.name}'s top AC range "
                         f"{self.ac_ranges[-1].volts:g} V")


# -- loading --------------------------------------------------------------------------------------

P = TypeVar("P", bound=_InstrumentProfile)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "(top)"


def _candidates(kind: str, profiles_dir: Path) -> list[Path]:
    sub = profiles_dir / _SUBDIRS[kind]
    return [sub, profiles_dir] if sub.is_dir() else [profiles_dir]


def known_dialects(kind: Literal["psu", "dmm"], profiles_dir: Path | str | None = None) -> list[str]:
    """The dialect names of ``kind`` found in ``profiles_dir`` (default: this checkout's ``rigs/profiles``)."""
    root = Path(profiles_dir) if profiles_dir is not None else DEFAULT_PROFILES_DIR
    names: set[str] = set()
    for folder in _candidates(kind, root):
        names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


def _locate(kind: str, dialect: str | Path, profiles_dir: Path | str | None) -> Path:
    path = Path(dialect)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ProfileError(f"{path}: no such {kind} profile file")
        return path
    root = Path(profiles_dir) if profiles_dir is not None else DEFAULT_PROFILES_DIR
    for folder in _candidates(kind, root):
        found = folder / f"{dialect}.yaml"
        if found.is_file():
            return found
    known = known_dialects(kind, root)  # type: ignore[arg-type]
    raise ProfileError(f"no {kind} profile {str(dialect)!r} in {root / _SUBDIRS[kind]}; expected one of {known}")


def _load(model: type[P], kind: str, dialect: str | Path, profiles_dir: Path | str | None) -> P:
    path = _locate(kind, dialect, profiles_dir)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping at the top, got {type(data).__name__}")
    if data.get("kind") != kind:
        raise ProfileError(f"{path}: kind: expected {kind!r}, got {data.get('kind')!r}")
    try:
        profile = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             + (f" (got {e['input']!r})" if e["type"] not in ("missing", "extra_forbidden")
                                and not isinstance(e["input"], dict) else "")
                             for e in exc.errors())
        raise ProfileError(f"{path}: {problems}") from None
    if profile.name != path.stem:
        raise ProfileError(f"{path}: name: expected {path.stem!r} (the file's name), got {profile.name!r}")
    profile._source = path
    return profile


def load_psu_profile(dialect: str | Path, profiles_dir: Path | str | None = None) -> PsuProfile:
    """The supply profile ``dialect`` (``keysight-e36300``, or a path to a YAML file); ProfileError if bad."""
    return _load(PsuProfile, "psu", dialect, profiles_dir)


def load_dmm_profile(dialect: str | Path, profiles_dir: Path | str | None = None) -> DmmProfile:
    """The DMM profile ``dialect`` (``keysight-34461a``, or a path to a YAML file); ProfileError if bad."""
    return _load(DmmProfile, "dmm", dialect, profiles_dir)
