"""What every console dialect shares: the base class, the registry by name, and dialect data.

A dialect turns one command line into the text the module prints, and a firmware event into its
asynchronous report. The :class:`~hil.sim.dut.console.Console` calls it on the console's one
thread, so a dialect needs no locks; anything timed goes through the rig's scheduler and comes
back with :meth:`Dialect.post`. Differences that are only wording (status words, error codes,
banners, help texts) live in the dialect's YAML file next to this module.

Keys: a dialect may print a key only where the real module does when asked for it (RUI3's
``AT+APPKEY=?``, the E5's ``+KEY: APPKEY`` confirmation); it never logs a command's arguments.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from importlib import resources
from typing import Any, Callable, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hil.lorawan.crypto import AESKey
from hil.lorawan.region import Region, RegionError, get_region
from hil.sim.dut.interfaces import Booted, DutEvent, FirmwareApi
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

CRLF = "\r\n"
_HEX = re.compile(r"[0-9A-Fa-f]*")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_+?=]")


class ConsoleError(Exception):
    """Base of the console's own errors."""


class UnknownDialectError(ConsoleError, ValueError):
    """A dialect name that no dialect answers to."""


class DialectDataError(ConsoleError):
    """A dialect's YAML file is missing or does not validate."""


class DialectData(BaseModel):
    """Fields every dialect's YAML has; dialects extend it. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_line: int = 512  # characters; a longer line is answered with the dialect's error
    banner: tuple[str, ...] = ()  # printed after each boot; ``{version}``, ``{model}`` filled in


D = TypeVar("D", bound=DialectData)


@functools.cache
def _load_yaml(filename: str) -> Any:
    try:
        text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
        return yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise DialectDataError(f"cannot read console data {filename}: {exc}") from exc


def load_data(filename: str, model: type[D]) -> D:
    """Load and validate ``filename`` (a YAML file in this package) into ``model``."""
    try:
        return model.model_validate(_load_yaml(filename))
    except ValidationError as exc:
        raise DialectDataError(f"{filename} does not match {model.__name__}: {exc}") from exc


# -- helpers the dialects share -----------------------------------------------------------------


def parse_hex(text: str, nbytes: int | None = None) -> bytes | None:
    """Bytes from hex digits (either case), or None if not hex or not ``nbytes`` long."""
    if len(text) % 2 or not _HEX.fullmatch(text):
        return None
    data = bytes.fromhex(text)
    if nbytes is not None and len(data) != nbytes:
        return None
    return data


def parse_int(text: str, low: int, high: int) -> int | None:
    """A decimal integer within ``low..high``, or None."""
    text = text.strip()
    if not text.isdigit() or len(text) > 6:
        return None
    value = int(text)
    return value if low <= value <= high else None


def command_name(line: str, limit: int = 24) -> str:
    """The command part of a line, safe to log or print: no arguments, no odd characters."""
    head = line.split("=", 1)[0]
    return _SAFE_NAME.sub("", head)[:limit]


def firmware_region(firmware: FirmwareApi) -> Region:
    """The firmware's LoRaWAN region: its optional ``region`` attribute (a :class:`Region` or a
    name such as ``"EU868"``); EU868 when it has none. FirmwareApi does not declare one."""
    region = getattr(firmware, "region", "EU868")
    if isinstance(region, Region):
        return region
    try:
        return get_region(str(region))
    except RegionError:
        log.warning("firmware region %r is unknown; the console assumes EU868", region)
        return get_region("EU868")


class Dialect:
    """Base of a console dialect. Subclasses set ``name`` (and ``aliases``) and register.

    Everything runs on the console's thread. ``post(fn)`` asks the console to run ``fn()`` on
    that thread later and print what it returns (used from scheduler callbacks).
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, firmware: FirmwareApi, scheduler: Scheduler, post: Callable[[Callable[[], str]], None]) -> None:
        self.firmware = firmware
        self.scheduler = scheduler
        self.post = post
        self._timers: dict[int, Timer] = {}  # by Timer.seq (timers are not hashable)
        self._timers_lock = threading.Lock()
        # Keys set through this console: the read-back of last resort when the firmware cannot
        # hand its keys back (FirmwareApi has no getter). AESKey hides its value in repr.
        self._keys_set: dict[str, AESKey] = {}

    # -- what a dialect answers --------------------------------------------------------------

    @property
    def max_line(self) -> int:
        return 512

    def handle_at(self, line: str) -> str:
        """The reply to a line starting with ``AT`` (any case)."""
        raise NotImplementedError

    def handle_other(self, line: str) -> str:
        """The reply to a line that is neither AT nor a relay command."""
        raise NotImplementedError

    def overlong(self) -> str:
        """The reply to a line longer than :attr:`max_line`."""
        raise NotImplementedError

    def internal_error(self) -> str:
        """The reply when handling a line failed inside the rig (a bug, logged)."""
        raise NotImplementedError

    def on_event(self, event: DutEvent) -> str:
        """The text an event prints (may be empty). :class:`Booted` goes to :meth:`on_boot`."""
        raise NotImplementedError

    def on_boot(self, event: Booted) -> str:
        """Forget RAM state after a boot and return the banner. Subclasses extend."""
        self.cancel_timers()
        if event.reason == "factory_reset":
            self._keys_set.clear()
        return ""

    def close(self) -> None:
        """Cancel whatever the dialect scheduled."""
        self.cancel_timers()

    # -- services for subclasses ---------------------------------------------------------------

    def call_later(self, delay: float, fn: Callable[[], str], name: str = "") -> None:
        """Run ``fn`` on the console thread after ``delay`` rig seconds and print its result."""
        self._schedule(delay, fn, name)

    def after_current_callback(self, fn: Callable[[], str]) -> None:
        """Run ``fn`` on the console thread once the scheduler callback running now has finished,
        i.e. after every event it emitted has reached the console."""
        self._schedule(0.0, fn, "")

    def cancel_timers(self) -> None:
        """Cancel everything scheduled and not yet run."""
        with self._timers_lock:
            timers, self._timers = self._timers, {}
        for timer in timers.values():
            timer.cancel()

    def _schedule(self, delay: float, fn: Callable[[], str], name: str) -> None:
        holder: list[Timer] = []

        def fire() -> None:  # scheduler thread
            with self._timers_lock:
                self._timers.pop(holder[0].seq, None)
            self.post(fn)

        with self._timers_lock:  # held so that fire() cannot run before holder is filled
            timer = self.scheduler.call_later(delay, fire, name=name or f"console-{self.name}")
            holder.append(timer)
            self._timers[timer.seq] = timer

    def remember_key(self, which: str, key: AESKey) -> None:
        self._keys_set[which] = key

    def read_key(self, which: str) -> AESKey | None:
        """The firmware's ``app_key``/``nwk_key`` if it exposes one, else the key set here."""
        key = getattr(self.firmware, which, None)
        if isinstance(key, AESKey):
            return key
        return self._keys_set.get(which)

    def banner(self, lines: tuple[str, ...]) -> str:
        """The boot banner with the firmware's identity filled in."""
        if not lines:
            return ""
        fields = {
            "version": self.firmware.firmware_version,
            "model": self.firmware.hardware_model,
            "serial": self.firmware.serial_number,
        }
        return "".join(line.format(**fields) + CRLF for line in lines)


# -- registry -----------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Dialect]] = {}

DialectT = TypeVar("DialectT", bound=type[Dialect])


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(cls: DialectT) -> DialectT:
    """Class decorator: make a dialect available by its ``name`` and ``aliases``."""
    for name in (cls.name, *cls.aliases):
        key = _key(name)
        other = _REGISTRY.get(key)
        if other is not None and other is not cls:
            raise ConsoleError(f"dialect name {name!r} is taken by {other.__name__}")
        _REGISTRY[key] = cls
    return cls


def known_dialects() -> tuple[str, ...]:
    """The primary names of the registered dialects."""
    return tuple(sorted({cls.name for cls in _REGISTRY.values()}))


def dialect_class(name: str) -> type[Dialect]:
    """The dialect registered as ``name`` (case and ``-``/``_`` do not matter)."""
    cls = _REGISTRY.get(_key(name))
    if cls is None:
        raise UnknownDialectError(f"unknown console dialect {name!r}; known: {', '.join(known_dialects())}")
    return cls
