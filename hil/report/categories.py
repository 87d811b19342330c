"""Failure categories: Product defect, Rig fault, Timing, Test error (rules in ``categories.yaml``).

Allure sorts a failed or broken result into a category by its status and a regular expression
over its message, which allure-pytest writes as ``<exception type>: <text>``. The groups of
exception types in the YAML become alternations of qualified type names, each type with every
subclass loaded when the rules are built, so ``drivers.instruments.visa.InstrumentError`` (a
:class:`~hil.faults.RigFault`) lands in "Rig fault". The same rules, as plain data, go to
``categories.json`` (Allure 2), to Allure 3's config, and to :func:`classify` (the release gate).
The patterns use only syntax that Java, JavaScript and Python read alike (``[\\s\\S]``, ``(?!…)``).
"""

from __future__ import annotations

import importlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hil.files import write_atomically

__all__ = [
    "CATEGORIES_FILE",
    "CategoryError",
    "classify",
    "exception_name",
    "load_rules",
    "rules_from_json",
    "type_names",
    "write_categories",
]

CATEGORIES_FILE = Path(__file__).with_name("categories.yaml")
Status = Literal["failed", "broken", "passed", "skipped", "unknown"]


class CategoryError(ValueError):
    """The categories file is invalid (the message names the file and the key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Group(_Model):
    types: list[str] = []
    prefixes: list[str] = []


class Category(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    statuses: list[Status] = Field(min_length=1)
    raised: list[str] = []
    not_raised: list[str] = []


class CategoriesFile(_Model):
    groups: dict[str, Group]
    categories: list[Category] = Field(min_length=1)


def exception_name(cls: type) -> str:
    """The type's name as a traceback shows it: ``pkg.mod.Name``, bare for builtins."""
    module = getattr(cls, "__module__", "builtins")
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _resolve(name: str) -> type | None:
    module, _, attr = name.rpartition(".")
    try:
        obj: Any = importlib.import_module(module or "builtins")
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) else None


def _subclasses(cls: type) -> Iterable[type]:
    seen: set[type] = set()
    stack = [cls]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        try:
            stack.extend(current.__subclasses__())
        except TypeError:  # type.__subclasses__ needs an argument
            continue


def type_names(names: Sequence[str]) -> list[str]:
    """Each named type and its loaded subclasses, as tracebacks name them (sorted, unique).
    A name that does not import is kept as given (its messages still start with it)."""
    found: set[str] = set()
    for name in names:
        cls = _resolve(name)
        if cls is None:
            found.add(name)
            continue
        found.update(exception_name(sub) for sub in _subclasses(cls))
    return sorted(found)


_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\/])")


def _escape(text: str) -> str:
    """``text`` as a literal in Java, JavaScript and Python regexes alike (only their special characters escaped)."""
    return _SPECIAL.sub(r"\\\1", text)


def _group_pattern(group: Group) -> str:
    items = [f"{_escape(name)}(?::[\\s\\S]*)?\\s*$" for name in type_names(group.types)]
    items += [f"{_escape(prefix)}[\\s\\S]*$" for prefix in group.prefixes]
    return "(?:" + "|".join(items) + ")" if items else "(?!)"


def _load(path: Path) -> CategoriesFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = CategoriesFile.model_validate(data)
    except OSError as exc:
        raise CategoryError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CategoryError(f"{path}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CategoryError(f"{path}: {where}") from None
    for category in parsed.categories:
        for group in (*category.raised, *category.not_raised):
            if group not in parsed.groups:
                raise CategoryError(f"{path}: categories[{category.name}]: no group {group!r} "
                                    f"(groups: {', '.join(parsed.groups)})")
    return parsed


def load_rules(path: Path = CATEGORIES_FILE, extra: dict[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """The categories as Allure's JSON objects (``name``, ``description``, ``matchedStatuses``,
    ``messageRegex``). ``extra`` adds type names to groups (e.g. rig faults seen during the run)."""
    spec = _load(path)
    groups = {name: Group(types=[*g.types, *(extra or {}).get(name, ())], prefixes=g.prefixes)
              for name, g in spec.groups.items()}
    rules = []
    for category in spec.categories:
        regex = "^"
        if category.not_raised:
            excluded = "|".join(_group_pattern(groups[g]) for g in category.not_raised)
            regex += f"(?!{excluded})"
        if category.raised:
            regex += "(?:" + "|".join(_group_pattern(groups[g]) for g in category.raised) + ")"
        else:
            regex += "[\\s\\S]*$"
        rules.append({"name": category.name, "description": category.description,
                      "matchedStatuses": list(category.statuses), "messageRegex": regex})
    return rules


def write_categories(results_dir: Path, rules: list[dict[str, Any]]) -> Path:
    """Write ``categories.json`` into an Allure results folder (atomically)."""
    target = results_dir / "categories.json"
    write_atomically(target, json.dumps(rules, indent=2) + "\n")
    return target


def rules_from_json(path: Path) -> list[dict[str, Any]]:
    """Rules read back from a ``categories.json`` (CategoryError naming the file if it is bad)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CategoryError(f"{path}: unreadable categories ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) and "name" in r for r in data):
        raise CategoryError(f"{path}: expected a list of categories with a 'name' each")
    return data


@lru_cache(maxsize=256)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def classify(status: str, message: str | None, rules: Sequence[dict[str, Any]]) -> str | None:
    """The first category whose statuses include ``status`` and whose regex matches ``message``."""
    for rule in rules:
        if status not in rule.get("matchedStatuses", ()):
            continue
        regex = rule.get("messageRegex")
        try:
            if regex is None or _compiled(regex).search(message or ""):
                return str(rule["name"])
        except re.error:
            continue
    return None
