"""AESKey: RFC 4493 CMAC, cached contexts used from threads, and no key ever shown."""

from __future__ import annotations

import pickle
import threading

import pytest

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import KeyFormatError
from hil.lorawan.security import SessionKeys, derive_session_keys_10

SECRET = "2b7e151628aed2a6abf7158809cf4f3c"


def test_cmac_rfc4493_example_2() -> None:
    # RFC 4493 §4, Example 2 (16-byte message).
    key = AESKey(SECRET)
    assert key.cmac(bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")).hex() == "070a16b46b4d4144f79bdd9dd04a287c"


def test_repr_and_str_never_show_the_key() -> None:
    key = AESKey(SECRET, "AppKey")
    for text in (repr(key), str(key), f"{key}", repr([key]), repr(SessionKeys.for_1_0(key, key))):
        assert SECRET not in text.lower() and "****" in text


def test_errors_never_show_the_key() -> None:
    with pytest.raises(KeyFormatError) as info:
        AESKey(SECRET[:-2] + "zz", "AppKey")
    assert SECRET[:20] not in str(info.value) and "AppKey" in str(info.value)
    with pytest.raises(KeyFormatError, match="16 bytes"):
        AESKey(SECRET[:30])


def test_keys_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(AESKey(SECRET))


def test_equality_and_hash() -> None:
    assert AESKey(SECRET) == AESKey(SECRET.upper())
    assert AESKey(SECRET) != AESKey(bytes(16))
    assert len({AESKey(SECRET), AESKey(SECRET)}) == 1


def test_whole_blocks_only() -> None:
    with pytest.raises(ValueError, match="16-byte blocks"):
        AESKey(SECRET).encrypt(b"short")


def test_cached_contexts_are_correct_under_threads() -> None:
    key = AESKey(SECRET)
    expected = key.encrypt(bytes(64))
    expected_mac = key.cmac(b"hello")
    errors: list[str] = []

    def work() -> None:
        for _ in range(2000):
            if key.encrypt(bytes(64)) != expected or key.cmac(b"hello") != expected_mac:
                errors.append("mismatch")
                return

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)


def test_derived_keys_are_named_and_redacted() -> None:
    keys = derive_session_keys_10(AESKey(SECRET), 1, b"\x00\x00\x13", 2)
    assert repr(keys.nwk_s_key) == "AESKey(NwkSKey=****)"
    assert repr(keys.app_s_key) == "AESKey(AppSKey=****)"
