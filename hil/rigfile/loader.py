"""Reading a rig file: YAML to a validated :class:`~hil.rigfile.model.Rig`, and bringing it up.

``load_rig("bench-07")`` reads ``rigs/bench-07.yaml`` of the repository; ``load_rig("x/y.yaml")``
reads that path. Every problem is reported at once as ``file:line: key.path: what was expected``
in a :class:`RigFileError`; duplicate keys are errors (YAML would silently keep the last). No
message shows a secret's value.

``${provider:name}`` placeholders stay in the loaded model (each is checked to name a provider
section the rig has, and a value that provider hands out). :func:`bring_up` starts each provider
section present, per :data:`PROVIDERS` (``{"sim": "hil.sim.provider:SimProvider"}``: only hil.sim
knows what "sim" means), fills the values in and returns a :class:`RigUp` that stops them again.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hil.clock import Clock
from hil.rigfile.overrides import OverrideError, apply_overrides
from hil.rigfile.model import PLACEHOLDER, Placeholder, Rig, RigFileError
from hil.rigfile.secrets import SECRET_FIELDS, LoadContext

__all__ = [
    "PROFILES_DIR",
    "PROVIDERS",
    "RIGS_DIR",
    "PlaceholderError",
    "Provider",
    "RigUp",
    "bring_up",
    "load_rig",
    "parse_rig",
    "resolve_rig_path",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
RIGS_DIR = REPO_ROOT / "rigs"
PROFILES_DIR = RIGS_DIR / "profiles"

PROVIDERS: dict[str, str] = {"sim": "hil.sim.provider:SimProvider"}
"""Top-level section → provider class (``module:Class``), constructed with the section's model."""


class PlaceholderError(RigFileError):
    """A ``${provider:name}`` names no provider, a section the rig lacks, or a value nobody provides."""


class Provider(Protocol):
    """Something that brings part of a rig to life (the virtual rig) and hands out its endpoints."""

    def provides(self) -> frozenset[str]:
        """The placeholder names :meth:`start` will fill in (known before starting)."""

    def start(self) -> dict[str, str]:
        """Start; the value of each placeholder name."""

    def stop(self) -> None:
        """Stop everything started; safe to call twice and after a failed start."""


# -- reading ---------------------------------------------------------------------------------------

def resolve_rig_path(path_or_name: str | os.PathLike[str]) -> Path:
    """A bare name (no folder, no .yaml) is ``rigs/<name>.yaml`` of the repository; anything else a path."""
    text = os.fspath(path_or_name)
    bare = "/" not in text and os.sep not in text and not text.endswith((".yaml", ".yml"))
    if isinstance(path_or_name, str) and bare:
        return RIGS_DIR / f"{text}.yaml"
    return Path(text)


def load_rig(path_or_name: str | os.PathLike[str], *, env: Mapping[str, str] = os.environ,
             profiles_dir: Path | None = PROFILES_DIR, overrides: Sequence[str] = ()) -> Rig:
    """Read and validate a rig file (``env`` feeds ``${env:NAME}``). RigFileError on any problem.

    ``overrides`` (``"sim.dut.defects=[rx1_late]"``, see :mod:`hil.rigfile.overrides`) change the
    file's values before validation.
    """
    path = resolve_rig_path(path_or_name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = sorted(p.stem for p in RIGS_DIR.glob("*.yaml"))
        hint = f" (rig names in {RIGS_DIR}: {', '.join(known)})" if known and path.parent == RIGS_DIR else ""
        raise RigFileError(path, [f"{path}: no such rig file{hint}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RigFileError(path, [f"{path}: cannot read the rig file ({reason})"]) from None
    return parse_rig(text, path, env=env, profiles_dir=profiles_dir, overrides=overrides)


def parse_rig(text: str, path: Path | str, *, env: Mapping[str, str] = os.environ,
              profiles_dir: Path | None = PROFILES_DIR, overrides: Sequence[str] = ()) -> Rig:
    """Validate rig-file text; ``path`` names it in errors and anchors relative paths (key files, ca_file)."""
    path = Path(path)
    root, data = _parse_yaml(text, path)
    if not isinstance(data, dict):
        raise RigFileError(path, [f"{path}: expected a mapping of sections (name, dut, gateway, psu, ...)"])
    try:
        changed = apply_overrides(data, overrides)
    except OverrideError as exc:
        raise RigFileError(path, [f"{path}: {exc}"]) from None
    context = LoadContext(env=env, base_dir=path.parent.resolve(), profiles_dir=profiles_dir)
    try:
        rig = Rig.model_validate(data, context={"rigfile": context})
    except ValidationError as exc:
        raise RigFileError(path, _problems(exc, path, root)) from None
    rig._path = path
    rig._overrides = tuple(changed)
    rig._context = LoadContext(env={}, base_dir=context.base_dir, profiles_dir=profiles_dir)  # secrets are resolved
    _check_placeholders(rig, root)
    return rig


def _parse_yaml(text: str, path: Path) -> tuple[Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _refuse_duplicate_keys(root, path)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:  # problem and position only: a snippet of the line could hold a key
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        context = f" ({exc.context})" if exc.context else ""
        raise RigFileError(path, [f"{where}: not valid YAML: {exc.problem}{context}"]) from None
    except yaml.YAMLError as exc:
        raise RigFileError(path, [f"{path}: not valid YAML: {type(exc).__name__}"]) from None
    finally:
        loader.dispose()
    return root, data


def _refuse_duplicate_keys(node: Node, path: Path, seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: already checked
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value != "<<":
                if key.value in keys:
                    raise RigFileError(path, [f"{path}:{key.start_mark.line + 1}: {key.value}: duplicate key "
                                              "(YAML would silently keep only the last)"])
                keys.add(key.value)
            _refuse_duplicate_keys(value, path, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, path, seen)


# -- error messages ----------------------------------------------------------------------------------

def _problems(exc: ValidationError, path: Path | None, root: Node | None, note: str = "") -> list[str]:
    problems = []
    for error in exc.errors():
        loc, _ = _walk(error["loc"])
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        kind = error["type"]
        if kind == "extra_forbidden":
            model = _walk(error["loc"][:-1])[1]
            expected = f" (expected one of: {', '.join(model.model_fields)})" if model is not None else ""
            message = f"unknown key{expected}"
        elif kind == "missing":
            message = "required key missing"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            ctx = error.get("ctx") or {}
            loc = loc + (ctx.get("discriminator", "").strip("'"),)
            tags = ctx.get("expected_tags") or ", ".join(repr(t) for t in _tags(loc[:-1]))
            message = f"expected one of {tags}" + ("" if kind == "union_tag_invalid" else " (key missing)")
        if not loc:  # a check over the whole file names its key in the message
            match = re.match(r"^([\w.]+): (.*)$", message, re.DOTALL)
            if match:
                loc, message = tuple(match[1].split(".")), match[2]
        problems.append(f"{_where(path, root, loc)}: {'.'.join(map(str, loc)) or '(top level)'}: "
                        f"{note}{message}{'' if 'got ' in message else _got(error, loc)}")
    return problems


def _where(path: Path | None, root: Node | None, loc: tuple[Any, ...]) -> str:
    line = _line_of(root, loc) if root is not None else None
    return f"{path}:{line}" if line else str(path)


def _line_of(root: Node, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest key of ``loc`` present in the file."""
    node, line = root, None
    for part in loc:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                break
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _got(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    """`` (got 'x')`` for a plain value outside any secret field; nothing otherwise."""
    if error["type"] in ("extra_forbidden", "missing") or any(str(p) in SECRET_FIELDS for p in loc):
        return ""
    value = error.get("input")
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 80):
        return f" (got {value!r})"
    return ""


def _candidates(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows (Optional, unions and Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _candidates(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _candidates(arg)]
    return [annotation]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag_of(model: type[BaseModel]) -> tuple[str, ...]:
    for name in ("transport", "kind"):
        field = model.model_fields.get(name)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return tuple(typing.get_args(field.annotation))
    return ()


def _walk(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """``loc`` without discriminator tags, and the model found at its end (None if not one model)."""
    clean: list[Any] = []
    annotation: Any = Rig
    for index, part in enumerate(loc):
        nxt: Any = None
        for tp in _candidates(annotation):
            if _is_model(tp) and part in tp.model_fields:
                nxt = tp.model_fields[part].annotation
                clean.append(part)
                break
            if _is_model(tp) and part in _tag_of(tp):
                nxt = tp  # a union member chosen by its tag: not a key of the file
                break
            if typing.get_origin(tp) is dict:
                nxt = typing.get_args(tp)[1]
                clean.append(part)
                break
        if nxt is None:  # outside what we can follow: keep the rest as is
            return tuple(clean) + tuple(loc[index:]), None
        annotation = nxt
    models = [tp for tp in _candidates(annotation) if _is_model(tp)]
    return tuple(clean), models[0] if len(models) == 1 else None


def _tags(loc: tuple[Any, ...]) -> list[str]:
    annotation: Any = Rig
    for part in loc:
        for tp in _candidates(annotation):
            if _is_model(tp) and part in tp.model_fields:
                annotation = tp.model_fields[part].annotation
                break
    return [tag for tp in _candidates(annotation) if _is_model(tp) for tag in _tag_of(tp)]


# -- placeholders and bring-up ----------------------------------------------------------------------

def _provider(spec: str, section: Any) -> Provider:
    module_name, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(section)


def _check_placeholders(rig: Rig, root: Node | None, providers: Mapping[str, str] = PROVIDERS) -> None:
    problems: list[str] = []
    names: dict[str, frozenset[str]] = {}
    for ph in rig.placeholders():
        problem = _placeholder_problem(rig, ph, providers, names)
        if problem:
            problems.append(f"{_where(rig.path, root, tuple(ph.path.split('.')))}: {ph.path}: {problem}")
    if problems:
        raise PlaceholderError(rig.path, problems)


def _placeholder_problem(rig: Rig, ph: Placeholder, providers: Mapping[str, str],
                         names: dict[str, frozenset[str]]) -> str | None:
    if ph.provider in ("env", "file"):
        return f"{ph.text}: ${{{ph.provider}:...}} is read only in secret fields (keys, passphrase, password)"
    if ph.provider not in providers:
        return f"{ph.text}: unknown placeholder provider {ph.provider!r} (known: {', '.join(providers)})"
    section = getattr(rig, ph.provider, None)
    if section is None:
        return f"{ph.text} needs a {ph.provider}: section, and this rig has none"
    if ph.provider not in names:
        names[ph.provider] = _provider(providers[ph.provider], section).provides()
    if ph.name not in names[ph.provider]:
        return (f"{ph.text}: the {ph.provider}: section provides no {ph.name!r} "
                f"(it provides: {', '.join(sorted(names[ph.provider]))})")
    return None


class RigUp:
    """A rig with its placeholders filled in and its providers running. ``close()`` stops them."""

    def __init__(self, rig: Rig, providers: dict[str, Provider], values: dict[str, dict[str, str]]) -> None:
        self.rig = rig
        self.providers = providers
        self.values = values
        self._closed = False

    @property
    def clock(self) -> Clock | None:
        """The clock a provider dictates (a virtual rig's scaled clock), or None on a real rig."""
        for provider in self.providers.values():
            clock = getattr(provider, "clock", None)
            if clock is not None:
                return clock
        return None

    def close(self) -> None:
        """Stop every provider, last started first. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for name, provider in reversed(list(self.providers.items())):
            try:
                provider.stop()
            except Exception:  # one provider failing to stop must not keep the others running
                log.exception("rig %s: stopping provider %r failed", self.rig.name, name)

    def __enter__(self) -> RigUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "up"
        return f"RigUp({self.rig.name!r}, providers={list(self.providers)}, {state})"


def bring_up(rig: Rig, *, providers: Mapping[str, str] = PROVIDERS) -> RigUp:
    """Start each provider section the rig has and fill in its placeholders.

    On any failure the providers already started are stopped before the error propagates.
    """
    started: dict[str, Provider] = {}
    try:
        values: dict[str, dict[str, str]] = {}
        for section, spec in providers.items():
            config = getattr(rig, section, None)
            if config is None:
                continue
            started[section] = _provider(spec, config)
            values[section] = dict(started[section].start())
        resolved = _substitute(rig, values)
    except BaseException:
        for provider in reversed(list(started.values())):
            try:
                provider.stop()
            except Exception:
                log.exception("rig %s: stopping a provider after a failed bring-up failed", rig.name)
        raise
    return RigUp(resolved, started, values)


def _substitute(rig: Rig, values: Mapping[str, Mapping[str, str]]) -> Rig:
    problems: list[str] = []

    def fill(path: str, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            provided = values.get(match["provider"])
            if provided is None or match["name"] not in provided:
                problems.append(f"{rig.path}: {path}: {match[0]} was not provided at bring-up")
                return match[0]
            return provided[match["name"]]
        return PLACEHOLDER.sub(one, text)

    if not rig.placeholders():
        return rig
    data = _map_strings(rig.model_dump(), "", fill)
    if problems:
        raise PlaceholderError(rig.path, problems)
    context = rig._context or LoadContext(env={})
    try:
        resolved = Rig.model_validate(data, context={"rigfile": context})
    except ValidationError as exc:
        raise PlaceholderError(rig.path, _problems(exc, rig.path, None, note="after bring-up: ")) from None
    resolved._path, resolved._context = rig._path, rig._context
    return resolved


def _map_strings(node: Any, path: str, fn: Callable[[str, str], str]) -> Any:
    if isinstance(node, str):
        return fn(path, node)
    if isinstance(node, dict):
        return {k: _map_strings(v, f"{path}.{k}" if path else str(k), fn) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_map_strings(v, f"{path}.{i}", fn) for i, v in enumerate(node))
    return node
