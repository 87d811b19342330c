"""Rig steps: one context manager that is an Allure step stamped with rig time, and a step log.

::

    with rig_step("power cycle", clock, off_s=2.0):
        ...

Inside an Allure run (``pytest --alluredir ...``) this is an Allure step titled
``power cycle @ 12.345 rig s`` whose parameters are the keyword arguments (secrets masked) and
the rig time; outside one it only records. Either way the step goes to :data:`STEP_LOG`, from
which the report's timeline takes the spans of the steps a test ran. A step that raises is
recorded with the exception's type and re-raises it unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from hil.clock import Clock

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["STEP_LOG", "StepLog", "StepRecord", "allure_active", "rig_step", "rig_step_method"]

MAX_STEPS = 20_000  # the log is bounded: a long campaign keeps its newest steps


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One finished rig step: rig times of start and end, its name, parameters (masked), and the
    type name of the exception that ended it ("" when it completed)."""

    start: float
    end: float
    name: str
    params: tuple[tuple[str, str], ...] = ()
    error: str = ""


class StepLog:
    """A thread-safe, bounded list of finished :class:`StepRecord`."""

    def __init__(self, maxlen: int = MAX_STEPS) -> None:
        self._records: deque[StepRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, record: StepRecord) -> None:
        with self._lock:
            self._records.append(record)

    def between(self, start: float, end: float) -> list[StepRecord]:
        """The steps that overlap the rig-time window ``[start, end]``, oldest first."""
        with self._lock:
            return [r for r in self._records if r.end >= start and r.start <= end]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


STEP_LOG = StepLog()
"""Every rig step of this process (the reporting plugin slices it per test)."""


def _hooks() -> Any:
    try:
        from allure_commons import plugin_manager
    except ImportError:  # allure-pytest not installed: steps only record
        return None
    return plugin_manager.hook


def allure_active() -> bool:
    """True when an Allure listener takes steps (pytest runs with ``--alluredir``)."""
    hooks = _hooks()
    return hooks is not None and bool(hooks.start_step.get_hookimpls())


def redact(text: str) -> str:
    """The rig's redactor, imported on first use (drivers import this module: keep it light)."""
    from hil.rigfile.redaction import redact as masked

    return masked(text)


def _shown(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return redact(text)


@contextlib.contextmanager
def rig_step(name: str, clock: Clock, **params: Any) -> Iterator[None]:
    """A rig action as an Allure step stamped with its rig time (a plain record without Allure).

    ``params`` are shown as the step's parameters, each as text with secrets masked. Reporting
    never breaks the action: an Allure hook that fails is logged and the step goes on unreported.
    """
    start = clock.now()
    shown = tuple((key, _shown(value)) for key, value in params.items())
    step_id = _start(name, start, shown)
    error = ""
    try:
        yield
    except BaseException as exc:
        error = type(exc).__name__
        _stop(step_id, exc)
        step_id = None
        raise
    finally:
        STEP_LOG.add(StepRecord(start, clock.now(), redact(name), shown, error))
        _stop(step_id, None)


def _start(name: str, start: float, shown: tuple[tuple[str, str], ...]) -> str | None:
    if not allure_active():
        return None
    step_id = str(uuid.uuid4())
    try:
        _hooks().start_step(uuid=step_id, title=redact(f"{name} @ {start:.3f} rig s"),
                            params={**dict(shown), "rig time": f"{start:.3f} s"})
    except Exception:  # e.g. a step from a background thread while no test runs
        log.debug("allure step %r not reported", name, exc_info=True)
        return None
    return step_id


def _stop(step_id: str | None, exc: BaseException | None) -> None:
    if step_id is None:
        return
    try:
        _hooks().stop_step(uuid=step_id, exc_type=type(exc) if exc is not None else None, exc_val=exc,
                           exc_tb=exc.__traceback__ if exc is not None else None)
    except Exception:
        log.debug("allure step %s not closed", step_id, exc_info=True)


def rig_step_method(name: str, *shown: str) -> Callable[[F], F]:
    """Decorator: the method runs as :func:`rig_step` on ``self.clock``.

    ``name`` may use the call's arguments (``"relay: command 0x{cmd:02x}"``); ``shown`` names the
    arguments to show as step parameters. A name that cannot be formatted is used as written.
    """

    def wrap(method: F) -> F:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                arguments = bound.arguments
            except TypeError:  # let the method raise its own error for a bad call
                return method(self, *args, **kwargs)
            try:
                title = name.format(**arguments)
            except (KeyError, IndexError, ValueError, AttributeError):
                title = name
            params = {key: _parameter(arguments[key]) for key in shown if key in arguments}
            with rig_step(title, self.clock, **params):
                return method(self, *args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


def _parameter(value: Any) -> Any:
    """How an argument shows: bytes as hex, a deadline as its rig time."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    at = getattr(value, "at", None)
    if isinstance(at, float) and hasattr(value, "clock"):
        return f"rig {at:.3f} s"
    return value
