"""No key reaches a result file: a run on a rig with fresh keys, whose test tries every way to leak
them (stdout, logging, an assertion message, a step, an attachment, a parameter, a test id), is
scanned whole (every file of the Allure results, the JUnit XML, the console transcript file) for
each configured key in hex of any case (also byte-separated) and in base64 (standard and URL-safe,
padded or not), and for the relay passphrase and the key derived from it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path


from tests.unit.report.support import SIM, attachment, by_name, run_inner


def key_forms(raw: bytes) -> list[re.Pattern[bytes]]:
    """Every way a key may be written: hex in any case, with or without byte separators; base64."""
    hex_any = rb"[:\- ]?".join(re.escape(f"{b:02x}".encode()) for b in raw)
    forms = [re.compile(hex_any, re.IGNORECASE)]
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms += [re.compile(re.escape(encoded)), re.compile(re.escape(encoded.rstrip(b"=")))]
    return forms


def leaks(paths: list[Path], secrets_: dict[str, list[re.Pattern[bytes]]]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        for name, forms in secrets_.items():
            for form in forms:
                if form.search(data):
                    found.append(f"{name} ({form.pattern[:40]!r}...) in {path}")
    return found


def test_the_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    raw = bytes(range(16))
    forms = {"k": key_forms(raw)}
    samples = [raw.hex().upper(), ":".join(f"{b:02X}" for b in raw), base64.b64encode(raw).decode(),
               base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    for i, sample in enumerate(samples):
        (tmp_path / f"{i}.json").write_text(f'{{"m": "x {sample} y"}}', encoding="utf-8")
    assert len({line.rsplit(" in ", 1)[1] for line in leaks(sorted(tmp_path.iterdir()), forms)}) == len(samples)


LEAKY = '''
import base64
import logging

import allure
import pytest

from hil.clock import Deadline
from hil.report.steps import rig_step

APP_KEY = "{app_key}"


@pytest.mark.join
@pytest.mark.parametrize("key_id", [APP_KEY])
def test_leaks_everywhere(rig, dut, network, relay, key_id):
    lw = rig.rig.dut.lorawan
    app, nwk = lw.app_key.reveal(), lw.nwk_key.reveal()
    phrase = rig.rig.dut.relay.passphrase.get_secret_value()
    b64 = base64.b64encode(nwk).decode()
    print("stdout:", app.hex(), app.hex().upper(), b64, phrase)
    logging.getLogger("inner").warning("log: %s %s %s", app.hex(), nwk.hex(), phrase)
    dut.set_app_key(app)
    dut.set_nwk_key(nwk)
    with rig_step(f"step with {{app.hex()}}", rig.clock, key=nwk.hex(), phrase=phrase):
        pass
    allure.attach(f"attachment {{app.hex()}} {{b64}} {{phrase}}", "leak", allure.attachment_type.TEXT)
    allure.dynamic.parameter("nwk", nwk.hex().upper())
    allure.dynamic.description(f"description {{phrase}}")
    assert key_id == "", f"assertion {{app.hex()}} {{b64}} {{phrase}} {{nwk!r}}"


@pytest.mark.relay
def test_passes_with_evidence(rig, dut, psu):
    assert dut.identity()["dev_eui"]
'''


def fresh_rig(tmp: Path, app_key: bytes, nwk_key: bytes, phrase: str) -> Path:
    """rigs/sim.yaml as a LoRaWAN 1.1 device with these keys (the virtual DUT and the tests share them)."""
    text = SIM.read_text(encoding="utf-8")
    for old, new in [
        ('lorawan_version: &sim_version "1.0.4"', 'lorawan_version: &sim_version "1.1"'),
        ("app_key: &sim_app_key 2b7e151628aed2a6abf7158809cf4f3c",
         f"app_key: &sim_app_key {app_key.hex()}\n    nwk_key: &sim_nwk_key {nwk_key.hex()}"),
        ("    app_key: *sim_app_key", "    app_key: *sim_app_key\n    nwk_key: *sim_nwk_key"),
        ("relay_passphrase: &sim_relay_passphrase hil-virtual-relay", f"relay_passphrase: &sim_relay_passphrase {phrase}"),
    ]:
        assert old in text, f"rigs/sim.yaml changed: no {old!r}"
        text = text.replace(old, new)
    path = tmp / "sim-keys.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_configured_secret_reaches_any_result_file(tmp_path: Path) -> None:
    app_key, nwk_key = secrets.token_bytes(16), secrets.token_bytes(16)
    phrase = "relay-" + secrets.token_hex(8)
    rig = fresh_rig(tmp_path, app_key, nwk_key, phrase)
    done = run_inner(tmp_path, LEAKY.format(app_key=app_key.hex()), f"--rig={rig}", "--alluredir", "allure-results",
                     "--junitxml", "junit.xml", "-o", "hil_evidence=all")
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]

    folder = tmp_path / "allure-results"
    # the evidence and the leak attempts did reach the results, masked
    leaky = next(r for name, r in by_name(folder).items() if name.startswith("test_leaks_everywhere"))
    transcript = attachment(folder, leaky, "DUT console transcript").read_text(encoding="utf-8")
    assert "AT+APPKEY=****" in transcript and "AT+NWKKEY=****" in transcript
    assert attachment(folder, leaky, "leak").read_text(encoding="utf-8") == "attachment **** **** ****"
    assert leaky["statusDetails"]["message"].startswith("AssertionError: assertion **** **** ****")
    assert any(a["name"] == "timeline" for a in by_name(folder)["test_passes_with_evidence"]["attachments"])

    files = [p for p in folder.rglob("*") if p.is_file()]
    files += [tmp_path / "junit.xml", *(tmp_path / "reports" / "console").glob("*.log")]
    assert len(files) > 20 and (tmp_path / "junit.xml") in files
    derived = hashlib.sha256(phrase.encode()).digest()
    wanted = {
        "AppKey": key_forms(app_key), "NwkKey": key_forms(nwk_key), "relay key K": key_forms(derived),
        "relay passphrase": [re.compile(re.escape(phrase.encode()))],
    }
    assert leaks(files, wanted) == []
    # the test id carried the key in: only the last pass over the files could mask it there
    assert "hil: masked secrets that reached" in done.stdout + done.stderr
