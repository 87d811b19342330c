"""AES-128 keys with cached cipher and CMAC contexts, and a repr that never shows the key.

All AES and CMAC come from ``cryptography``. A key builds its ECB encryptor/decryptor and its
CMAC context once; ECB carries no state between blocks, so one long-lived context serves every
call as long as whole blocks are fed; the CMAC base context is only ever copied. No lock is
needed: the contexts are Rust objects whose borrow checks raise rather than interleave, and a
call that meets a busy context falls back to a fresh one. That caching is what makes frame processing fast (see
``bench/``).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from hil.lorawan.errors import KeyFormatError

REDACTED = "****"


class AESKey:
    """A 128-bit AES key. ``repr``/``str`` show ``****``; use :meth:`reveal` deliberately."""

    __slots__ = ("_key", "_enc", "_dec", "_cmac", "name")

    def __init__(self, key: bytes | bytearray | str, name: str = "key") -> None:
        if isinstance(key, str):
            text = key.strip().replace(" ", "").replace(":", "").replace("-", "")
            try:
                key = bytes.fromhex(text)
            except ValueError:
                raise KeyFormatError(f"{name} is not hex (value not shown)") from None
        if len(key) != 16:
            raise KeyFormatError(f"{name} must be 16 bytes (32 hex digits), got {len(key)} bytes")
        self._key = bytes(key)
        self.name = name
        cipher = Cipher(algorithms.AES(self._key), modes.ECB())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()
        self._cmac = CMAC(algorithms.AES(self._key))  # never updated itself: only copied

    @classmethod
    def random(cls, name: str = "key") -> "AESKey":
        """A fresh key from the operating system's CSPRNG."""
        import secrets

        return cls(secrets.token_bytes(16), name)

    def encrypt(self, blocks: bytes) -> bytes:
        """AES-128-ECB encrypt whole 16-byte blocks."""
        if len(blocks) & 15:
            raise ValueError(f"AES-ECB needs whole 16-byte blocks, got {len(blocks)} bytes")
        try:
            return self._enc.update(blocks)
        except RuntimeError:  # another thread holds the cached context (a pyo3 borrow): use a fresh one
            return Cipher(algorithms.AES(self._key), modes.ECB()).encryptor().update(blocks)

    def decrypt(self, blocks: bytes) -> bytes:
        """AES-128-ECB decrypt whole 16-byte blocks."""
        if len(blocks) & 15:
            raise ValueError(f"AES-ECB needs whole 16-byte blocks, got {len(blocks)} bytes")
        try:
            return self._dec.update(blocks)
        except RuntimeError:  # see encrypt
            return Cipher(algorithms.AES(self._key), modes.ECB()).decryptor().update(blocks)

    def cmac(self, message: bytes) -> bytes:
        """AES-CMAC (RFC 4493) of ``message``: 16 bytes."""
        ctx = self._cmac.copy()
        ctx.update(message)
        return ctx.finalize()

    def reveal(self) -> bytes:
        """The raw key bytes. Call only where the key must leave the process (CLI output, NVM)."""
        return self._key

    def reveal_hex(self) -> str:
        """The key as lowercase hex. Same caution as :meth:`reveal`."""
        return self._key.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AESKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(("AESKey", hmac.new(b"hil", self._key, "sha256").digest()))

    def __repr__(self) -> str:
        return f"AESKey({self.name}={REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> object:  # pickling would leak the key into files
        raise TypeError("AESKey cannot be pickled")
