"""Keys at rest: AES-256-GCM under a key-encryption key (KEK) from the environment or a key file.

Each stored key is ``nonce (12) | ciphertext (16) | tag (16)``, sealed with AES-GCM from
``cryptography``; the associated data binds it to its unit and field (``hil-provision/v1``,
the DevEUI, the field name), so a ciphertext copied to another record or column does not open.
The KEK's id (the first 8 bytes of HMAC-SHA256(KEK, "hil-provision kek id"), hex) is stored with
each record: a store opened with another KEK says so instead of failing on every record.

The KEK is 32 bytes written as 64 hex digits (or URL-safe base64), from ``${env:NAME}``, a key file
(``{file: path}``; first non-comment line) or a literal, exactly as rig-file secrets are
(:func:`hil.rigfile.secrets.resolve_secret`). It is recorded with the redactor; its repr is masked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hil.lorawan.crypto import REDACTED, AESKey
from hil.lorawan.types import EUI64
from hil.rigfile.redaction import REDACTOR
from hil.rigfile.secrets import LoadContext, SecretReferenceError, resolve_secret

__all__ = ["KekError", "KeyEncryptor", "KeyDecryptError", "load_kek", "new_kek_hex"]

_AAD_PREFIX = b"hil-provision/v1"
_NONCE = 12
SEALED_SIZE = _NONCE + 16 + 16


class KekError(ValueError):
    """The KEK is missing or malformed (the message never shows it)."""


class KeyDecryptError(ValueError):
    """A stored key does not open: another KEK, or the record was tampered with or moved."""


def new_kek_hex() -> str:
    """A fresh KEK as 64 hex digits (for a key file or an environment variable)."""
    return os.urandom(32).hex()


def _decode_kek(text: str) -> bytes:
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    raise KekError("the KEK must be 32 bytes: 64 hex digits or 43/44 base64 characters (value not shown)")


def load_kek(source: Any, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None) -> "KeyEncryptor":
    """The KEK from ``source``: ``"${env:NAME}"``, ``{"file": path}`` (relative to ``base_dir``) or a literal."""
    context = LoadContext(env=os.environ if env is None else env, base_dir=base_dir or Path.cwd())
    try:
        text = resolve_secret(source, "the key-encryption key (KEK)", context)
    except SecretReferenceError as exc:
        raise KekError(f"KEK: {exc}") from None
    return KeyEncryptor(_decode_kek(text))


class KeyEncryptor:
    """Seals and opens root keys with AES-GCM under one KEK."""

    __slots__ = ("_aead", "kek_id")

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise KekError("the KEK must be 32 bytes (value not shown)")
        REDACTOR.add_bytes(kek)
        self._aead = AESGCM(kek)
        self.kek_id = hmac.new(kek, b"hil-provision kek id", hashlib.sha256).hexdigest()[:16]

    @staticmethod
    def _aad(dev_eui: EUI64, field: str) -> bytes:
        return b"|".join((_AAD_PREFIX, str(EUI64(dev_eui)).encode(), field.encode()))

    def seal(self, key: AESKey, dev_eui: EUI64, field: str) -> bytes:
        """``key`` encrypted for ``field`` (``app_key``, ``nwk_key``) of the unit ``dev_eui``."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key.reveal(), self._aad(dev_eui, field))

    def open(self, sealed: bytes, dev_eui: EUI64, field: str, name: str = "key") -> AESKey:
        """The key sealed by :meth:`seal`; KeyDecryptError if the KEK, the unit or the field differ."""
        if len(sealed) != SEALED_SIZE:
            raise KeyDecryptError(f"stored {field} of {EUI64(dev_eui)} is {len(sealed)} bytes, expected {SEALED_SIZE}")
        try:
            raw = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._aad(dev_eui, field))
        except InvalidTag:
            raise KeyDecryptError(f"stored {field} of {EUI64(dev_eui)} does not open with this KEK "
                                  f"(id {self.kek_id}): another KEK, or the record was altered") from None
        key = AESKey(raw, name)
        REDACTOR.add_key(key)
        return key

    def __repr__(self) -> str:
        return f"KeyEncryptor(kek={REDACTED}, id={self.kek_id})"

    def __reduce__(self) -> object:
        raise TypeError("KeyEncryptor cannot be pickled")
