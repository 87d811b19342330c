"""AT dialect profiles: what a LoRaWAN module's console says, as data (``rigs/profiles/at/*.yaml``).

A profile gives the line ending and default baud, the command of each operation (identity,
EUIs, keys, activation, class, join, join status, uplinks, reading a downlink, reset, factory
reset, frame counters) and the regular expressions that recognise the answers (ok, error with
its ``code`` group, join success/failure, TX done, confirmed ok/failed, the downlink report with
``port``/``payload``/``slot``/``rssi``/``snr`` groups, the end of the boot banner). A new module
is a new profile file, not new code. An operation a module does not have is left out (or null).

Commands are templates: ``{value}`` in a setting, ``{activation}`` in the join command,
``{port}``, ``{hex}``, ``{confirmed}`` and ``{length}`` in uplink steps. Regexes are matched
(``re.search``) against one received line at a time.

:func:`load_profile` validates a file strictly (unknown keys are errors) and every error names
the file and the key.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.console import ProfileError

DEFAULT_PROFILES_DIR = Path(__file__).resolve().parents[2] / "rigs" / "profiles" / "at"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Placeholders each kind of template may use.
SETTING_FIELDS = frozenset({"value"})
JOIN_FIELDS = frozenset({"activation"})
SEND_FIELDS = frozenset({"port", "hex", "confirmed", "length"})


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


def groups(pattern: str) -> frozenset[str]:
    """The named groups of a regex."""
    return frozenset(re.compile(pattern).groupindex)


def template_fields(template: str) -> frozenset[str]:
    """The ``{placeholders}`` a command template uses."""
    try:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)
    except ValueError as exc:
        raise ValueError(f"not a valid command template ({exc}): {template!r}") from None


def render(template: str, values: Mapping[str, object]) -> str:
    """A command template filled in."""
    return template.format_map(dict(values))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Model):
    """One command: send ``send``; wait for ``reply`` (its groups are the answer) if given, then
    for the profile's ``ok`` line if ``ok``. ``reboots``: the module restarts afterwards."""

    send: str
    reply: Regex | None = None
    ok: bool = True
    reboots: bool = False

    @model_validator(mode="after")
    def _ends(self) -> "Step":
        if self.reply is None and not self.ok and not self.reboots:
            raise ValueError(f"{self.send!r}: nothing ends this command (no reply, ok: false, no reboot)")
        return self


class Query(Step):
    """A query whose ``reply`` has a ``value`` group; ``format`` hex/colon normalises an EUI."""

    format: Literal["text", "hex", "colon"] = "text"


class Setting(_Model):
    """A setting: ``send`` with ``{value}``; ``values`` maps the driver's words (``otaa``, ``A``)
    to the module's; ``format`` renders EUIs/keys (hex: ``70B3D5...``, colon: ``70:B3:D5:...``);
    ``secret``: the value is a key and is masked in the transcript. Without ``send`` (activation
    on modules that take it in the join command) the value is only remembered."""

    send: str | None = None
    reply: Regex | None = None
    ok: bool = True
    values: dict[str, str] | None = None
    format: Literal["text", "hex", "colon"] = "text"
    secret: bool = False

    @model_validator(mode="after")
    def _ends(self) -> "Setting":
        if self.send is not None and self.reply is None and not self.ok:
            raise ValueError(f"{self.send!r}: nothing ends this command (no reply, ok: false)")
        return self

    def step(self) -> Step:
        assert self.send is not None
        return Step(send=self.send, reply=self.reply, ok=self.ok)


class JoinSpec(_Model):
    command: Step
    joined: Regex
    failed: Regex


class JoinStatusSpec(_Model):
    """``command``'s reply has a ``value`` group; joined when ``joined`` fully matches it."""

    command: Step
    joined: Regex


class SendSpec(_Model):
    """Uplink steps and outcome lines. ``tx_done`` None: the last step's answer ends an
    unconfirmed uplink. ``confirmed_failed`` None: no ack by the deadline means not acked.
    ``end``: the line that closes the transaction (waited for after the outcome)."""

    unconfirmed: tuple[Step, ...] = Field(min_length=1)
    confirmed: tuple[Step, ...] = Field(min_length=1)
    tx_done: Regex | None = None
    tx_failed: Regex | None = None
    confirmed_ok: Regex
    confirmed_failed: Regex | None = None
    end: Regex | None = None


class DownlinkSpec(_Model):
    """``report`` (groups ``port``, ``payload``; maybe ``slot``, ``rssi``, ``snr``) and, for
    modules that print the radio data on the next line, ``meta`` (``slot``, ``rssi``, ``snr``)."""

    report: Regex
    meta: Regex | None = None

    @field_validator("report")
    @classmethod
    def _report_groups(cls, value: str) -> str:
        missing = {"port", "payload"} - groups(value)
        if missing:
            raise ValueError(f"needs the named group(s) {sorted(missing)}: {value!r}")
        return value


class RelaySpec(_Model):
    """The relay application's console (seed 004): its error line and the line carrying the key."""

    error: Regex = r"^error: (?P<code>.*)$"
    secret: Regex = r"^set\s+key\s+(?P<secret>.+?)\s*$"  # the sent line (not the help text's "  set key <...>")


class Profile(_Model):
    """One module's AT dialect (see the module docstring)."""

    name: str = ""  # the file's name without .yaml (set by the loader)
    path: str = ""  # where it was loaded from (set by the loader)
    description: str
    sources: tuple[str, ...] = ()
    line_ending: str = "\r\n"
    baud: int = Field(gt=0)
    command_timeout_s: float = Field(5.0, gt=0)
    probe_interval_s: float = Field(1.0, gt=0)
    boot_time_s: float = Field(0.0, ge=0)  # after a reboot with no banner: wait before probing

    probe: Step
    ok: Regex
    error: tuple[Regex, ...] = Field(min_length=1)
    boot_banner_end: Regex | None = None
    secrets: tuple[Regex, ...] = ()

    identity: dict[str, Query] = Field(default_factory=dict)
    dev_eui: Setting | None = None
    join_eui: Setting | None = None
    app_key: Setting | None = None
    nwk_key: Setting | None = None
    activation: Setting | None = None
    device_class: Setting | None = None
    join: JoinSpec | None = None
    join_status: JoinStatusSpec | None = None
    send: SendSpec | None = None
    downlink: DownlinkSpec | None = None
    read_downlink: Step | None = None
    reset: Step | None = None
    factory_reset: Step | None = None
    save: Step | None = None
    frame_counters: tuple[Step, ...] | None = None
    relay: RelaySpec = RelaySpec()

    @field_validator("error", "secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("line_ending")
    @classmethod
    def _line_ending(cls, value: str) -> str:
        if value not in ("\r\n", "\n", "\r"):
            raise ValueError(f'expected "\\r\\n", "\\n" or "\\r", got {value!r}')
        return value

    @field_validator("error")
    @classmethod
    def _error_code(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if "code" not in groups(pattern):
                raise ValueError(f"an error pattern needs a (?P<code>...) group: {pattern!r}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_group(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if "secret" not in groups(pattern):
                raise ValueError(f"a secrets pattern needs a (?P<secret>...) group: {pattern!r}")
        return value

    @field_validator("identity")
    @classmethod
    def _identity_values(cls, value: dict[str, Query]) -> dict[str, Query]:
        for field, query in value.items():
            if query.reply is None or "value" not in groups(query.reply):
                raise ValueError(f"{field}: the reply needs a (?P<value>...) group")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Profile":
        problems = list(self._template_problems())
        for key in ("dev_eui", "join_eui", "app_key", "nwk_key", "device_class"):
            setting: Setting | None = getattr(self, key)
            if setting is not None and setting.send is None:
                problems.append(f"{key}: needs a 'send' command")
        if self.activation is not None and not self.activation.values:
            problems.append("activation: needs 'values' (otaa/abp -> the module's words)")
        if self.join_status is not None:
            reply = self.join_status.command.reply
            if reply is None or "value" not in groups(reply):
                problems.append("join_status.command.reply: needs a (?P<value>...) group")
        if self.read_downlink is not None:
            reply = self.read_downlink.reply
            if reply is None or not {"port", "payload"} <= groups(reply):
                problems.append("read_downlink.reply: needs (?P<port>...) and (?P<payload>...) groups")
        if self.frame_counters is not None:
            found: set[str] = set()
            for i, step in enumerate(self.frame_counters):
                got = groups(step.reply) & {"up", "down"} if step.reply else frozenset()
                if not got:
                    problems.append(f"frame_counters[{i}].reply: needs an (?P<up>...) and/or (?P<down>...) group")
                found |= got
            if found and found != {"up", "down"}:
                problems.append("frame_counters: the replies must give both 'up' and 'down'")
        if "secret" not in groups(self.relay.secret):
            problems.append("relay.secret: needs a (?P<secret>...) group")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _template_problems(self) -> Iterable[str]:
        def check(key: str, template: str | None, allowed: frozenset[str]) -> Iterable[str]:
            if template is None:
                return
            try:
                used = template_fields(template)
            except ValueError as exc:
                yield f"{key}: {exc}"
                return
            bad = used - allowed
            if bad:
                allowed_text = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
                yield f"{key}: unknown placeholder(s) {sorted(bad)} in {template!r} (allowed here: {allowed_text})"

        yield from check("probe.send", self.probe.send, frozenset())
        for field, query in self.identity.items():
            yield from check(f"identity.{field}.send", query.send, frozenset())
        for key in ("dev_eui", "join_eui", "app_key", "nwk_key", "activation", "device_class"):
            setting: Setting | None = getattr(self, key)
            if setting is not None:
                yield from check(f"{key}.send", setting.send, SETTING_FIELDS)
        if self.join is not None:
            yield from check("join.command.send", self.join.command.send, JOIN_FIELDS)
        if self.join_status is not None:
            yield from check("join_status.command.send", self.join_status.command.send, frozenset())
        if self.send is not None:
            for kind in ("unconfirmed", "confirmed"):
                for i, step in enumerate(getattr(self.send, kind)):
                    yield from check(f"send.{kind}[{i}].send", step.send, SEND_FIELDS)
        for key in ("read_downlink", "reset", "factory_reset", "save"):
            step: Step | None = getattr(self, key)
            if step is not None:
                yield from check(f"{key}.send", step.send, frozenset())
        for i, step in enumerate(self.frame_counters or ()):
            yield from check(f"frame_counters[{i}].send", step.send, frozenset())


# -- loading ------------------------------------------------------------------------------------


def available_profiles(profiles_dir: str | Path | None = None) -> tuple[str, ...]:
    """The profile names in ``profiles_dir`` (default ``rigs/profiles/at``)."""
    folder = Path(profiles_dir) if profiles_dir is not None else DEFAULT_PROFILES_DIR
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_profile(name: str, profiles_dir: str | Path | None = None) -> Profile:
    """The profile ``<profiles_dir>/<name>.yaml`` (or ``name`` itself if it is a path to a .yaml).

    Raises :class:`~drivers.console.ProfileError` naming the file and the key for a missing
    file, bad YAML, an unknown or missing key, a bad regex or template.
    """
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
    else:
        if not _NAME.match(name):
            raise ProfileError(f"{name!r} is not a profile name (letters, digits, '-', '_', '.') "
                               f"nor a path to a .yaml file")
        folder = Path(profiles_dir) if profiles_dir is not None else DEFAULT_PROFILES_DIR
        path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(path.parent)) or "none"
        raise ProfileError(f"{path}: no such AT dialect profile (profiles in {path.parent}: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of profile keys, got {type(data).__name__}")
    for key in ("name", "path"):
        if key in data:
            raise ProfileError(f"{path}: {key}: not a profile key (the {key} comes from the file)")
    try:
        return Profile.model_validate({**data, "name": path.stem, "path": str(path)})
    except ValidationError as exc:
        problems = "; ".join(f"{_where(tuple(e['loc']))}: {_message(e)}" for e in exc.errors())
        raise ProfileError(f"{path}: {problems}") from None


def _message(error: Any) -> str:
    msg = str(error.get("msg", ""))
    if error.get("type") == "extra_forbidden":
        return "unknown key (not part of an AT dialect profile)"
    if error.get("type") == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")
