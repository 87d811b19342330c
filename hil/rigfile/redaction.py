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

# Candidates in a text: runs of hex digits (bytes optionally separated by ':', '-' or ' ') and
# runs of base64 characters, at least as long as the shortest recorded form. Each candidate is
# looked up in sets of the recorded keys' forms, so the cost of masking a line does not grow with
# the number of keys (a provisioning line records one or two per unit, thousands in a shift).
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = re.compile(r"[:\- ]")


def _hex_run(min_digits: int) -> re.Pattern[str]:
    return re.compile(rf"[0-9A-Fa-f](?:[:\- ]?[0-9A-Fa-f]){{{max(1, min_digits - 1)},}}")


def _b64_run(min_chars: int) -> re.Pattern[str]:
    return re.compile(rf"[A-Za-z0-9+/_\-]{{{max(1, min_chars - 2)},}}={{0,2}}")


class Redactor:
    """Remembers secret values and masks them in text. Thread-safe; recording is idempotent.

    Keys are masked as hex (any case, bytes optionally separated by ``:``, ``-`` or a space),
    base64 (standard or URL-safe, padded or not) and Python bytes repr; texts as written. Masking
    costs about the same with 5 keys or 5,000 (a set lookup per candidate run, see
    ``bench/bench_redaction.py``).
    """

    def __init__(self, mask: str = REDACTED) -> None:
        self.mask = mask
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        # Changed only under the lock; readers take snapshots (list(...)) of what they iterate.
        self._forms: set[tuple[str, str]] = set()  # (kind, value); kind "hex", "b64", "repr" or "text"
        self._hex: dict[int, set[str]] = {}  # length -> lower-case hex of keys
        self._b64: dict[int, set[str]] = {}  # length -> base64 forms
        self._reprs: list[str] = []  # bytes reprs with a backslash: looked for only in text that has one
        self._literals: list[str] = []  # secret texts and backslash-free reprs, longest first
        self._hex_run: re.Pattern[str] | None = None
        self._b64_run: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._forms)

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self)} patterns)"

    # -- recording ---------------------------------------------------------------------------------

    def add_bytes(self, data: bytes) -> None:
        """Record binary key material: its hex (any case, bytes optionally separated), base64 and repr."""
        if len(data) < 2:
            return
        forms = {("hex", data.hex())}
        for encoded in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
            forms |= {("b64", encoded), ("b64", encoded.rstrip("="))}
        forms.add(("repr", repr(bytes(data))[2:-1]))
        self._add(forms)

    def add_text(self, text: str) -> None:
        """Record a password or other secret text, masked exactly as written."""
        if len(text) >= MIN_SECRET_CHARS:
            self._add({("text", text)})

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
            self._clear()

    def snapshot(self) -> frozenset[tuple[str, str]]:
        """What is recorded now, for :meth:`restore` (tests only)."""
        with self._lock:
            return frozenset(self._forms)

    def restore(self, snapshot: frozenset[tuple[str, str]]) -> None:
        """Record exactly what :meth:`snapshot` returned (tests only: a test's own dummy keys go)."""
        with self._lock:
            if self._forms != snapshot:
                self._clear()
                self._insert(set(snapshot))

    def _add(self, forms: set[tuple[str, str]]) -> None:
        with self._lock:
            self._insert(forms - self._forms)

    def _insert(self, forms: set[tuple[str, str]]) -> None:
        if not forms:
            return
        literals = list(self._literals)
        reprs = list(self._reprs)
        for kind, value in forms:
            if kind == "hex":
                self._hex.setdefault(len(value), set()).add(value)
            elif kind == "b64":
                self._b64.setdefault(len(value), set()).add(value)
            elif kind == "repr" and "\\" in value:
                reprs.append(value)
            else:
                literals.append(value)
        self._forms |= forms
        self._reprs = reprs  # new lists: a reader iterating the old ones is not disturbed
        self._literals = sorted(literals, key=len, reverse=True)
        self._hex_run = _hex_run(min(self._hex)) if self._hex else None
        self._b64_run = _b64_run(min(self._b64)) if self._b64 else None

    # -- masking -----------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every recorded secret replaced by the mask."""
        if not text or not self._forms:
            return text
        spans: list[tuple[int, int]] = []
        hex_run, b64_run = self._hex_run, self._b64_run
        if hex_run is not None:
            spans += _hex_spans(text, hex_run, list(self._hex.items()))
        if b64_run is not None:
            spans += _window_spans(text, b64_run, list(self._b64.items()))
        literals = self._literals + self._reprs if "\\" in text else self._literals
        for literal in literals:
            at = text.find(literal)
            while at >= 0:
                spans.append((at, at + len(literal)))
                at = text.find(literal, at + 1)
        if not spans:
            return text
        out: list[str] = []
        position = 0
        for start, end in _merged(spans):
            out += [text[position:start], self.mask]
            position = end
        out.append(text[position:])
        return "".join(out)


def _hex_spans(text: str, runs: re.Pattern[str], by_len: list[tuple[int, set[str]]]) -> Iterable[tuple[int, int]]:
    """Where a recorded key's hex is in ``text``: in any case, its bytes optionally separated."""
    for run in runs.finditer(text):
        digits = _SEPARATORS.sub("", run.group()).lower()
        positions: list[int] | None = None  # where each digit is in text, worked out on a hit only
        for length, values in by_len:
            for i in range(len(digits) - length + 1):
                if digits[i : i + length] in values:
                    if positions is None:
                        positions = [j for j in range(run.start(), run.end()) if text[j] in _HEX_DIGITS]
                    yield positions[i], positions[i + length - 1] + 1


def _window_spans(text: str, runs: re.Pattern[str], by_len: list[tuple[int, set[str]]]) -> Iterable[tuple[int, int]]:
    """Where a recorded form of one of the lengths in ``by_len`` is inside a run of ``runs``."""
    for run in runs.finditer(text):
        start, word = run.start(), run.group()
        for length, values in by_len:
            for i in range(len(word) - length + 1):
                if word[i : i + length] in values:
                    yield start + i, start + i + length


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching spans as one, in order."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


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
