"""Rig-file overrides given on the command line: ``--rig-set sim.dut.defects=[rx1_late]``.

An override is ``dotted.key=value``; the value is read as YAML (``5``, ``true``, ``[a, b]``,
``"000013"``), the key path is walked through the file's mappings (missing mappings are created)
and the value replaces what the file had, before the file is validated, so an override is checked
exactly like a value in the file. It is how a CI job or a meta-test runs a rig file with one
thing changed (a firmware defect switched on, a slower time scale) without a copy of the file.
YAML anchors are resolved before overrides apply: override each key that shares an anchor.
"""

from __future__ import annotations

from typing import Any, Iterable

import yaml

__all__ = ["OverrideError", "apply_overrides", "parse_override"]


class OverrideError(ValueError):
    """An override that is not ``dotted.key=value`` or does not fit the file's structure."""


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"a.b=[1, 2]"`` → ``(("a", "b"), [1, 2])``; OverrideError naming the problem otherwise."""
    key, sep, raw = text.partition("=")
    parts = tuple(part.strip() for part in key.split("."))
    if not sep or not all(parts):
        raise OverrideError(f"rig override {text!r}: expected dotted.key=value (e.g. sim.dut.defects=[rx1_late])")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise OverrideError(f"rig override {text!r}: the value is not valid YAML ({problem})") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> list[str]:
    """Apply each override to the parsed file ``data`` in place; the keys changed, as dotted paths."""
    changed = []
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise OverrideError(f"rig override {text!r}: {where} is a {type(child).__name__}, not a section")
            node = child
        node[parts[-1]] = value
        changed.append(".".join(parts))
    return changed
