"""The redactor masks every loaded secret in text and in log records."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from typing import Iterator

import pytest
from pydantic import SecretStr

from hil.lorawan.crypto import AESKey
from hil.rigfile.redaction import RedactingFilter, Redactor, install_log_redaction

KEY_HEX = "2b7e151628aed2a6abf7158809cf4f3c"
KEY = AESKey(KEY_HEX, "AppKey")
RAW = bytes.fromhex(KEY_HEX)
PASSPHRASE = "hil-virtual-relay"


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add(KEY)
    r.add_passphrase(PASSPHRASE)
    r.add(SecretStr("broker-password"))
    return r


@pytest.mark.parametrize(
    "form",
    [
        KEY_HEX, KEY_HEX.upper(), "2B7e1516" + KEY_HEX[8:],
        ":".join(f"{b:02X}" for b in RAW), " ".join(f"{b:02x}" for b in RAW),
        base64.b64encode(RAW).decode(), base64.b64encode(RAW).decode().rstrip("="),
        base64.urlsafe_b64encode(RAW).decode(), repr(RAW)[2:-1],
        PASSPHRASE, hashlib.sha256(PASSPHRASE.encode()).hexdigest().upper(), "broker-password",
    ],
)
def test_every_form_is_masked(redactor: Redactor, form: str) -> None:
    assert redactor.redact(f"AT+KEY=APPKEY,{form}\r\nOK") == "AT+KEY=APPKEY,****\r\nOK"


def test_text_without_secrets_is_unchanged(redactor: Redactor) -> None:
    text = "+EVT:RX_1:-70:7:UNICAST:10:00112233 hil-virtual relay 2b7e1516"
    assert redactor.redact(text) == text
    assert Redactor().redact(text) == text
    assert "2b7e" not in repr(redactor)


def test_recording_is_idempotent_and_clearable(redactor: Redactor) -> None:
    count = len(redactor)
    redactor.add(KEY)
    redactor.add(KEY_HEX.encode() and RAW)
    assert len(redactor) == count
    redactor.add_text("abc")  # too short to be a secret worth masking everywhere
    assert redactor.redact("abc") == "abc"
    redactor.clear()
    assert redactor.redact(KEY_HEX) == KEY_HEX


def test_a_key_inside_longer_text_is_masked_and_only_it(redactor: Redactor) -> None:
    assert redactor.redact(f"c007{KEY_HEX}0000") == "c007****0000"
    assert redactor.redact(f"payload a{KEY_HEX.upper()}f end") == "payload a****f end"
    b64 = base64.b64encode(RAW).decode()
    assert redactor.redact(f"blob=QUJD{b64.rstrip('=')}xyz") == "blob=QUJD****xyz"
    assert redactor.redact(f"{KEY_HEX}{PASSPHRASE}") == "****"  # touching secrets: one mask
    spaced = " ".join(f"{b:02x}" for b in RAW)
    assert redactor.redact(f"rx: 01 02 {spaced} 03") == "rx: 01 02 **** 03"


def test_thousands_of_keys_are_all_masked(redactor: Redactor) -> None:
    """A provisioning shift records a key or two per unit: every one is still masked, nothing else is."""
    import random

    rng = random.Random(7)
    keys = [rng.randbytes(16) for _ in range(2000)]
    for raw in keys:
        redactor.add_bytes(raw)
    for raw in (keys[0], keys[999], keys[-1]):
        assert redactor.redact(f"AT+APPKEY={raw.hex().upper()}") == "AT+APPKEY=****"
        assert redactor.redact(base64.urlsafe_b64encode(raw).decode()) == "****"
        assert redactor.redact(f"key={raw!r}") == f"key={repr(raw)[:2]}****{repr(raw)[-1]}"
    assert redactor.redact(KEY_HEX) == "****"  # the fixture's key among them
    plain = "+EVT:RX_1:-70:7:UNICAST:10:0011223344556677 DevNonce=0007"
    assert redactor.redact(plain) == plain


def test_recording_while_masking_on_other_threads() -> None:
    import threading

    redactor = Redactor()
    errors: list[BaseException] = []
    stop = threading.Event()

    def mask() -> None:
        try:
            while not stop.is_set():
                redactor.redact(f"{KEY_HEX} {base64.b64encode(RAW).decode()} {RAW!r}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=mask, name=f"masker-{i}") for i in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(300):
            redactor.add_bytes(i.to_bytes(2, "big") + bytes(14))
        redactor.add(KEY)
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    assert not errors, errors
    assert redactor.redact(KEY_HEX) == "****"


@pytest.fixture
def logger(redactor: Redactor) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("hil.test.redaction")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log, stream
    log.removeHandler(handler)
    log.filters.clear()
    log.propagate = True


def test_log_records_are_masked(redactor: Redactor, logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    installed = install_log_redaction(redactor, logger=log)
    assert install_log_redaction(redactor, logger=log) is installed  # idempotent
    assert sum(isinstance(f, RedactingFilter) for f in log.handlers[0].filters) == 1
    log.info("console <- AT+APPKEY=%s", KEY_HEX.upper())
    log.warning("joined with passphrase %r and %s", PASSPHRASE, {"pw": "broker-password"})
    log.debug("plain %s %d", "text", 5)
    try:
        raise ValueError(f"bad key {KEY_HEX}")
    except ValueError:
        log.exception("failed")
    out = stream.getvalue()
    assert KEY_HEX not in out.lower() and PASSPHRASE not in out and "broker-password" not in out
    assert "AT+APPKEY=****" in out and "plain text 5" in out and "ValueError: bad key ****" in out


def test_root_handlers_get_the_filter(redactor: Redactor) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    installed = None
    try:
        installed = install_log_redaction(redactor)
        logging.getLogger("hil.test.root").error("key %s", KEY_HEX)
    finally:
        root.removeHandler(handler)
        if installed is not None:
            root.removeFilter(installed)
            for h in root.handlers:
                h.removeFilter(installed)
    assert stream.getvalue().strip() == "key ****"
