"""Masking of every secret the process has loaded, in any text that leaves it.

The rig-file loader records each key, passphrase and password it reads in one process-wide
:class:`Redactor` (``REDACTOR``); the console transcript, logs and reports pass their text through
:func:`redact`, which writes ``****`` wherever a recorded secret appears: a key as hex in either
case (also with ``:``, ``-`` or space between bytes), as base64 (standard or URL-safe, padded or
not) or as a Python bytes repr; a passphrase or password as itself. A relay passphrase is recorded
with its derived key K = SHA-256(passphrase) too. :func:`install_log_redaction` puts a
:class:`RedactingFilter` on the root logger's handlers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from typing import Any, Callable, Iterable

from pydantic import SecretStr

from hil.lorawan.crypto import REDACTED, AESKey

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "install_log_redaction",
    "redact",
]

MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words everywhere; they protect nothing anyway
_BYTE_SEPARATOR = r"[:\- ]?"


class Redactor:
    """Remembers secret values and masks them in text. Thread-safe; recording is idempotent."""

    def __init__(self, mask: str = REDACTED) -> None:
        self.mask = mask
        self._lock = threading.Lock()
        self._patterns: set[str] = set()
        self._regex: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._patterns)

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self)} patterns)"

    # -- recording ---------------------------------------------------------------------------------

    def add_bytes(self, data: bytes) -> None:
        """Record binary key material: its hex (any case, bytes optionally separated), base64 and repr."""
        if len(data) < 2:
            return
        hex_form = _BYTE_SEPARATOR.join(f"{b:02x}" for b in data)
        forms = [f"(?i:{hex_form})"]
        for encoded in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
            forms += [re.escape(encoded), re.escape(encoded.rstrip("="))]
        forms.append(re.escape(repr(bytes(data))[2:-1]))
        self._add(forms)

    def add_text(self, text: str) -> None:
        """Record a password or other secret text, masked exactly as written."""
        if len(text) >= MIN_SECRET_CHARS:
            self._add([re.escape(text)])

    def add_passphrase(self, passphrase: str) -> None:
        """Record a relay passphrase and the key derived from it (K = SHA-256(passphrase))."""
        self.add_text(passphrase)
        if passphrase:
            self.add_bytes(hashlib.sha256(passphrase.encode("utf-8")).digest())

    def add_key(self, key: AESKey) -> None:
        """Record an AES key."""
        self.add_bytes(key.reveal())

    def add(self, secret: AESKey | SecretStr | str | bytes | None) -> None:
        """Record whatever kind of secret is given (None is ignored)."""
        if secret is None:
            return
        if isinstance(secret, AESKey):
            self.add_key(secret)
        elif isinstance(secret, SecretStr):
            self.add_text(secret.get_secret_value())
        elif isinstance(secret, (bytes, bytearray)):
            self.add_bytes(bytes(secret))
        else:
            self.add_text(str(secret))

    def clear(self) -> None:
        """Forget every recorded secret (tests only: a process keeps what it loaded)."""
        with self._lock:
            self._patterns.clear()
            self._regex = None

    def snapshot(self) -> frozenset[str]:
        """What is recorded now, for :meth:`restore` (tests only)."""
        with self._lock:
            return frozenset(self._patterns)

    def restore(self, snapshot: frozenset[str]) -> None:
        """Record exactly what :meth:`snapshot` returned (tests only: a test's own dummy keys go)."""
        with self._lock:
            if self._patterns != snapshot:
                self._patterns = set(snapshot)
                self._regex = None

    def _add(self, forms: Iterable[str]) -> None:
        with self._lock:
            before = len(self._patterns)
            self._patterns.update(forms)
            if len(self._patterns) != before:
                self._regex = None

    # -- masking -----------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every recorded secret replaced by the mask."""
        regex = self._compiled()
        if regex is None or not text:
            return text
        return regex.sub(self.mask, text)

    def _compiled(self) -> re.Pattern[str] | None:
        regex = self._regex
        if regex is not None or not self._patterns:
            return regex
        with self._lock:
            if self._regex is None and self._patterns:
                # longest first, so a secret that contains another is masked whole
                self._regex = re.compile("|".join(sorted(self._patterns, key=len, reverse=True)))
            return self._regex


REDACTOR = Redactor()
"""The process-wide redactor the rig-file loader records into."""


def redact(text: str) -> str:
    """``text`` with every secret loaded by this process masked (see :class:`Redactor`)."""
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message, arguments and traceback text."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        masked = self.redactor.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if self.redactor.redact(text) != text:  # otherwise leave the formatting to the handler
                record.exc_text = text
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def install_log_redaction(redactor: Redactor = REDACTOR, logger: logging.Logger | None = None) -> RedactingFilter:
    """Put a :class:`RedactingFilter` on ``logger`` (default: root) and each of its handlers.

    Idempotent. Handlers added later (e.g. pytest's capture handlers) need
    ``handler.addFilter(filter)`` with the filter returned.
    """
    target = logger if logger is not None else logging.getLogger()
    existing = [f for f in target.filters if isinstance(f, RedactingFilter) and f.redactor is redactor]
    found = existing[0] if existing else RedactingFilter(redactor)
    if not existing:
        target.addFilter(found)
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) and f.redactor is redactor for f in handler.filters):
            handler.addFilter(found)
    return found


_FACTORY_INSTALLED: list[Callable[..., logging.LogRecord]] = []


def install_record_redaction(redactor: Redactor = REDACTOR) -> None:
    """Mask secrets in every log record as it is created, whichever handler gets it later.

    Handler filters miss handlers added afterwards (pytest adds its capture handlers per test);
    a record factory does not. Idempotent; :func:`uninstall_record_redaction` restores logging.
    """
    if _FACTORY_INSTALLED:
        return
    base = logging.getLogRecordFactory()
    masking = RedactingFilter(redactor)

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        masking.filter(record)
        return record

    _FACTORY_INSTALLED.append(base)
    logging.setLogRecordFactory(factory)


def uninstall_record_redaction() -> None:
    if _FACTORY_INSTALLED:
        logging.setLogRecordFactory(_FACTORY_INSTALLED.pop())
