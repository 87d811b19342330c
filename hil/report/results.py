"""Reading an Allure results folder: one outcome per test, with its suites and failure category.

allure-pytest writes one ``<uuid>-result.json`` per test run (retries of a test share its
``historyId``: the latest one counts). A test's suites are its ``feature`` labels (the reporting
plugin sets them from the suite markers). Its category comes from the folder's
``categories.json`` when present, else from the built-in rules (:mod:`hil.report.categories`).
A file that cannot be read is reported as a problem, never skipped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.report.categories import CategoryError, classify, load_rules, rules_from_json

__all__ = ["Outcome", "ResultsError", "load_category_rules", "read_results"]


class ResultsError(ValueError):
    """The results folder is missing or not a folder (the message names it)."""


@dataclass(frozen=True)
class Outcome:
    """One test's final result: ``status`` is Allure's (passed, failed, broken, skipped, unknown)."""

    name: str
    full_name: str
    status: str
    suites: tuple[str, ...]
    message: str
    category: str | None
    stop: int


def load_category_rules(results_dir: Path) -> list[dict[str, Any]]:
    """The folder's ``categories.json`` rules, or the built-in ones when it has none."""
    path = results_dir / "categories.json"
    if path.exists():
        return rules_from_json(path)
    import drivers.console  # noqa: F401  (load the types the built-in rules name, with their subclasses)
    import drivers.instruments.visa  # noqa: F401
    import hil.relay.controller  # noqa: F401

    return load_rules()


def _outcome(data: dict[str, Any], rules: list[dict[str, Any]]) -> Outcome:
    labels = data.get("labels") or []
    suites = tuple(sorted({str(l.get("value")) for l in labels if l.get("name") == "feature" and l.get("value")}))
    status = str(data.get("status") or "unknown")
    message = str((data.get("statusDetails") or {}).get("message") or "")
    category = classify(status, message, rules) if status in ("failed", "broken") else None
    return Outcome(
        name=str(data.get("name") or "?"), full_name=str(data.get("fullName") or data.get("name") or "?"),
        status=status, suites=suites, message=message, category=category, stop=int(data.get("stop") or 0),
    )


def read_results(results_dir: Path) -> tuple[list[Outcome], list[str]]:
    """Every test's latest outcome in ``results_dir``, and the problems met (unreadable files)."""
    if not results_dir.exists():
        raise ResultsError(f"results folder {results_dir} does not exist (run pytest with --alluredir {results_dir})")
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir} is not a folder")
    problems: list[str] = []
    try:
        rules = load_category_rules(results_dir)
    except CategoryError as exc:
        problems.append(str(exc))
        rules = load_rules()
    latest: dict[str, Outcome] = {}
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable result ({exc})")
            continue
        outcome = _outcome(data, rules)
        key = str(data.get("historyId") or data.get("fullName") or path.name)
        if key not in latest or outcome.stop >= latest[key].stop:
            latest[key] = outcome
    return sorted(latest.values(), key=lambda o: (o.suites, o.full_name)), problems
