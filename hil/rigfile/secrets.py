"""Secret fields of a rig file: where a value may come from, and what it becomes.

Every secret field takes a literal, ``${env:NAME}`` (an environment variable), or a key file:
``{file: path}`` or ``${file:path}`` (relative to the rig file; its first line that is neither
blank nor a ``#`` comment is the value). Keys become :class:`~hil.lorawan.crypto.AESKey`, the relay
passphrase and passwords pydantic ``SecretStr``; each value is recorded with the process-wide
redactor as it is loaded. No error message carries a secret's value: a missing variable is named,
never echoed, and a malformed key is reported without its digits.

Validators read the environment and the rig file's folder from the pydantic validation context
(:class:`LoadContext` under the ``"rigfile"`` key), so the loader can pass a test environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import BeforeValidator, SecretStr, ValidationInfo

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import KeyFormatError
from hil.rigfile.redaction import REDACTOR

__all__ = [
    "LoadContext",
    "SECRET_FIELDS",
    "SecretKey",
    "SecretReferenceError",
    "SecretText",
    "load_context",
    "resolve_secret",
    "to_key",
    "to_secret_text",
]

_REFERENCE = re.compile(r"^\$\{(?P<kind>[A-Za-z_][\w-]*):(?P<arg>[^}]*)\}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMS = "a literal value, ${env:NAME}, ${file:path} or {file: path}"

SECRET_FIELDS = frozenset({
    "app_key", "nwk_key", "nwk_s_key", "app_s_key", "f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key",
    "passphrase", "relay_passphrase", "password",
})
"""Field names whose values are secrets: their input is never shown in an error."""


class SecretReferenceError(ValueError):
    """A secret's source is missing or malformed; the message names the source, never a value."""


@dataclass(frozen=True)
class LoadContext:
    """What secret and path fields need from outside the rig file."""

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    base_dir: Path = field(default_factory=Path.cwd)  # the rig file's folder
    profiles_dir: Path | None = None  # rigs/profiles; None: profile names are not checked against files


def load_context(info: ValidationInfo | None) -> LoadContext:
    """The loader's context, or the defaults (process environment, current folder)."""
    context = getattr(info, "context", None)
    found = context.get("rigfile") if isinstance(context, dict) else None
    return found if isinstance(found, LoadContext) else LoadContext()


def _read_key_file(reference: str, context: LoadContext, what: str) -> str:
    path = Path(reference).expanduser()
    if not path.is_absolute():
        path = context.base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretReferenceError(f"key file {reference} for {what} does not exist (looked for {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretReferenceError(f"key file {reference} for {what} cannot be read ({reason}; at {path})") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    raise SecretReferenceError(f"key file {reference} for {what} holds no value (only blank or # lines; at {path})")


def resolve_secret(value: Any, what: str, context: LoadContext) -> str:
    """The secret text a field's value stands for: literal, ``${env:NAME}``, ``${file:path}`` or ``{file: path}``."""
    if isinstance(value, dict):
        if set(value) != {"file"} or not isinstance(value["file"], str) or not value["file"]:
            raise SecretReferenceError(f"expected {_FORMS}; a mapping must be exactly {{file: path}}")
        return _read_key_file(value["file"], context, what)
    if isinstance(value, bool) or not isinstance(value, str):
        hint = " (quote it: YAML read the unquoted value as a number)" if isinstance(value, (int, float)) else ""
        raise SecretReferenceError(f"expected {_FORMS}, got a {type(value).__name__}{hint} (value not shown)")
    match = _REFERENCE.match(value.strip())
    if match is None:
        if value.lstrip().startswith("${"):
            raise SecretReferenceError(f"expected {_FORMS}; a reference must be the whole value (value not shown)")
        return value
    kind, arg = match["kind"], match["arg"].strip()
    if kind == "env":
        if not _ENV_NAME.match(arg):
            raise SecretReferenceError(f"${{env:{arg}}}: not a valid environment variable name")
        text = context.env.get(arg)
        if text is None:
            raise SecretReferenceError(f"environment variable {arg} is not set (it should hold {what})")
        if not text.strip():
            raise SecretReferenceError(f"environment variable {arg} is empty (it should hold {what})")
        return text.strip()
    if kind == "file":
        if not arg:
            raise SecretReferenceError("${file:} names no file")
        return _read_key_file(arg, context, what)
    raise SecretReferenceError(f"${{{kind}:...}} is not a secret source; expected {_FORMS}")


def to_key(value: Any, name: str, context: LoadContext) -> AESKey | None:
    """A key field's value as an :class:`AESKey` (recorded with the redactor)."""
    if value is None:
        return None
    if not isinstance(value, AESKey):
        text = resolve_secret(value, name, context)
        try:
            value = AESKey(text, name)
        except KeyFormatError as exc:  # its message never holds the value
            raise SecretReferenceError(str(exc)) from None
    REDACTOR.add_key(value)
    return value


def to_secret_text(value: Any, name: str, context: LoadContext) -> SecretStr | None:
    """A passphrase or password field's value as ``SecretStr`` (recorded with the redactor)."""
    if value is None:
        return None
    if not isinstance(value, SecretStr):
        value = SecretStr(resolve_secret(value, name, context))
    text = value.get_secret_value()
    if "passphrase" in name:
        REDACTOR.add_passphrase(text)
    else:
        REDACTOR.add_text(text)
    return value


def _key_field(value: Any, info: ValidationInfo) -> AESKey | None:
    return to_key(value, info.field_name or "key", load_context(info))


def _text_field(value: Any, info: ValidationInfo) -> SecretStr | None:
    return to_secret_text(value, info.field_name or "secret", load_context(info))


SecretKey = Annotated[AESKey, BeforeValidator(_key_field)]
"""An AES-128 key from a literal, ``${env:..}`` or a key file."""

SecretText = Annotated[SecretStr, BeforeValidator(_text_field)]
"""A passphrase or password from a literal, ``${env:..}`` or a key file."""
