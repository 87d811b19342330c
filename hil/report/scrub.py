"""No secret in a result file: masking at three places on the way out.

1. :func:`redact_report`: a pytest report's failure text and captured output, before anything
   (terminal, JUnit XML, Allure) reads it;
2. :class:`AllureResultRedactor`: an allure-commons plugin that masks every string of a test
   result, container or globals object just before Allure's file logger writes it (the failure
   message Allure takes from the exception itself, step titles, parameters, names);
3. :func:`scrub_files`: the last pass over the written files (results folder, JUnit XML), which
   masks whatever still got through (e.g. a test printing a key) and names each file it had to fix.

The masking is the rig's :data:`~hil.rigfile.REDACTOR`: keys in hex of any case, with or without
byte separators, base64 and bytes reprs; passphrases and passwords as written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from hil.files import write_atomically
from hil.rigfile.redaction import redact as _redact

__all__ = ["AllureResultRedactor", "redact_object", "redact_report", "scrub_files"]

log = logging.getLogger(__name__)
Redact = Callable[[str], str]
MAX_SCRUB_BYTES = 64 * 1024 * 1024  # a larger file is skipped with a warning (it is no text attachment of ours)


def redact_object(obj: Any, redact: Redact = _redact, _depth: int = 0) -> Any:
    """Mask every string inside ``obj`` (attrs or dataclass-like objects, lists, dicts) in place;
    returns the object, or the masked string when ``obj`` is one."""
    if _depth > 50:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            obj[i] = redact_object(item, redact, _depth + 1)
        return obj
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = redact_object(obj[key], redact, _depth + 1)
        return obj
    fields = getattr(type(obj), "__attrs_attrs__", None)
    if fields is not None:
        for field in fields:
            value = getattr(obj, field.name, None)
            if isinstance(value, (str, list, dict)) or hasattr(type(value), "__attrs_attrs__"):
                try:
                    setattr(obj, field.name, redact_object(value, redact, _depth + 1))
                except (AttributeError, TypeError):  # a frozen object: leave it to the file scrub
                    pass
    return obj


class AllureResultRedactor:
    """allure-commons plugin: masks results before the file logger writes them (register with
    ``allure_commons.plugin_manager.register``; runs first among the loggers)."""

    def __init__(self, redact: Redact = _redact) -> None:
        self.redact = redact

    def _mask(self, item: Any) -> None:
        try:
            redact_object(item, self.redact)
        except Exception:  # never lose a result to the masking: the file scrub still runs
            log.exception("masking an Allure result failed")

    # The hook implementations are attached below (allure_commons may be absent).


try:
    from allure_commons import hookimpl as _allure_hookimpl
except ImportError:  # pragma: no cover - allure-pytest is a dependency
    _allure_hookimpl = None

if _allure_hookimpl is not None:
    def _report_result(self: AllureResultRedactor, result: Any) -> None:
        self._mask(result)

    def _report_container(self: AllureResultRedactor, container: Any) -> None:
        self._mask(container)

    def _report_globals(self: AllureResultRedactor, globals_item: Any) -> None:
        self._mask(globals_item)

    AllureResultRedactor.report_result = _allure_hookimpl(tryfirst=True)(_report_result)  # type: ignore[attr-defined]
    AllureResultRedactor.report_container = _allure_hookimpl(tryfirst=True)(_report_container)  # type: ignore[attr-defined]
    AllureResultRedactor.report_globals = _allure_hookimpl(tryfirst=True)(_report_globals)  # type: ignore[attr-defined]


def redact_report(report: Any, redact: Redact = _redact) -> bool:
    """Mask secrets in a pytest report's failure text and captured sections; True if it had any.

    A failure text that needs masking is replaced by its masked plain text (the terminal then
    shows it without colours).
    """
    changed = False
    longrepr = getattr(report, "longrepr", None)
    if longrepr is not None and not isinstance(longrepr, tuple):
        text = str(longrepr) if isinstance(longrepr, str) else getattr(report, "longreprtext", str(longrepr))
        masked = redact(text)
        if masked != text:
            report.longrepr = masked
            changed = True
    sections = getattr(report, "sections", None)
    if sections:
        masked_sections = [(name, redact(content)) for name, content in sections]
        if masked_sections != list(sections):
            report.sections = masked_sections
            changed = True
    return changed


def _text_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            yield path


def scrub_files(paths: Iterable[Path], redact: Redact = _redact) -> list[Path]:
    """Mask secrets in every text file under ``paths`` (folders are walked); returns the files
    that had to be rewritten. Binary files (not UTF-8) are left alone."""
    fixed = []
    for path in _text_files(paths):
        try:
            if path.stat().st_size > MAX_SCRUB_BYTES:
                log.warning("%s: %d bytes, too large to check for secrets", path, path.stat().st_size)
                continue
            raw = path.read_bytes()
        except OSError:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        masked = redact(text)
        if masked != text:
            write_atomically(path, masked)
            fixed.append(path)
    return fixed
