"""Rig-file secrets: literal, ${env:..} or key file; never shown in a repr, str or error."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hil.rigfile import REDACTOR, RigFileError, load_rig, redact
from tests.unit.test_rigfile_support import APP_KEY, BASE, NWK_KEY, PASSPHRASE, ROOT, load, merged, write_rig

ENV_KEY = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"


def _forms(hex_key: str) -> list[str]:
    raw = bytes.fromhex(hex_key)
    return [hex_key.lower(), hex_key.upper(), base64.b64encode(raw).decode()]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def test_key_from_environment(tmp_path: Path) -> None:
    rig = load(tmp_path, {"dut": {"lorawan": {"app_key": "${env:DUT_APP_KEY}"}}}, env={"DUT_APP_KEY": ENV_KEY})
    assert rig.dut.lorawan is not None and rig.dut.lorawan.app_key is not None
    assert rig.dut.lorawan.app_key.reveal_hex() == ENV_KEY


def test_missing_variable_is_named_never_valued(tmp_path: Path) -> None:
    changes = {"dut": {"lorawan": {"app_key": "${env:DUT_APP_KEY}"}, "relay": {"passphrase": "${env:RELAY_PASS}"}}}
    with pytest.raises(RigFileError) as info:
        load(tmp_path, changes, env={"RELAY_PASS": "only-the-relay-passphrase"})
    text = str(info.value)
    assert "dut.lorawan.app_key: environment variable DUT_APP_KEY is not set" in text
    assert "only-the-relay-passphrase" not in text and len(text.splitlines()) == 1


def test_empty_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RigFileError, match="environment variable RELAY_PASS is empty"):
        load(tmp_path, {"dut": {"relay": {"passphrase": "${env:RELAY_PASS}"}}}, env={"RELAY_PASS": "  "})


@pytest.mark.parametrize("form", ["mapping", "reference"])
def test_key_file_relative_to_rig_file(tmp_path: Path, form: str) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "bench.key").write_text(f"# AppKey of bench 7, provisioned 2024-05\n\n  {ENV_KEY}  \n# end\n")
    value = {"file": "keys/bench.key"} if form == "mapping" else "${file:keys/bench.key}"
    rig = load(tmp_path, {"dut": {"lorawan": {"app_key": value}}})
    assert rig.dut.lorawan is not None and rig.dut.lorawan.app_key is not None
    assert rig.dut.lorawan.app_key.reveal_hex() == ENV_KEY


def test_passphrase_from_key_file(tmp_path: Path) -> None:
    (tmp_path / "relay.pass").write_text("a passphrase with spaces\n")
    rig = load(tmp_path, {"dut": {"relay": {"passphrase": {"file": "relay.pass"}}}})
    assert rig.dut.relay is not None and rig.dut.relay.passphrase.get_secret_value() == "a passphrase with spaces"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "key file keys/none.key for app_key does not exist"), ("# only a comment\n\n", "holds no value")],
)
def test_key_file_problems(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "none.key").write_text(content)
    with pytest.raises(RigFileError) as info:
        load(tmp_path, {"dut": {"lorawan": {"app_key": {"file": "keys/none.key"}}}})
    assert "dut.lorawan.app_key: " in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("zz" + APP_KEY[2:], {}, "app_key is not hex (value not shown)"),
        (APP_KEY[:20], {}, "app_key must be 16 bytes (32 hex digits), got 10 bytes"),
        ("${env:SHORT}", {"SHORT": APP_KEY[:31]}, "app_key is not hex"),
        ("${env:WRONG}", {"WRONG": APP_KEY + "00"}, "must be 16 bytes"),
        (12345678901234567890, {}, "quote it"),
        ({"path": "x.key"}, {}, "a mapping must be exactly {file: path}"),
        ("${vault:secret/app}", {}, "is not a secret source"),
        ("${env:NOT A NAME}", {}, "not a valid environment variable name"),
    ],
)
def test_bad_key_never_echoes_material(tmp_path: Path, value: object, env: dict[str, str], expected: str) -> None:
    with pytest.raises(RigFileError) as info:
        load(tmp_path, {"dut": {"lorawan": {"app_key": value}}}, env=env)
    text = str(info.value)
    assert "dut.lorawan.app_key: " in text and expected in text, text
    material = [APP_KEY[:20], APP_KEY[2:], APP_KEY[:31], "12345678901234567890"]
    assert not _leaks(text.lower(), material), text


def test_misnamed_secret_key_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(RigFileError) as info:
        load(tmp_path, {"dut": {"lorawan": {"appkey": NWK_KEY}}})
    assert "dut.lorawan.appkey: unknown key" in str(info.value) and NWK_KEY not in str(info.value)


def test_secrets_never_in_repr_str_dump_or_errors(tmp_path: Path) -> None:
    body = merged(BASE, {
        "dut": {"lorawan": {"version": "1.1", "nwk_key": NWK_KEY}},
        "gateway": {"transport": "chirpstack-mqtt", "broker": "mqtts://lab.example", "password": "mqtt-password-9"},
        "sim": {"dut": {"app_key": APP_KEY, "relay_passphrase": PASSPHRASE}},
    })
    rig = load(tmp_path, body)
    secrets = _forms(APP_KEY) + _forms(NWK_KEY) + [PASSPHRASE, "mqtt-password-9"]
    assert rig.dut.lorawan is not None
    texts = [repr(rig), str(rig), repr(rig.model_dump()), repr(rig.dut), str(rig.dut.lorawan.device_config())]
    for text in texts:
        assert not _leaks(text, secrets), text
    # an error in a file full of secrets shows none of them
    with pytest.raises(RigFileError) as info:
        load(tmp_path, merged(body, {"psu": {"resource": "nowhere", "voltage": "x", "current_limit": 0}}))
    assert not _leaks(str(info.value), secrets) and "psu.resource" in str(info.value)


def test_loaded_secrets_are_recorded_with_the_redactor(tmp_path: Path) -> None:
    key = "5f5e5d5c5b5a59585756555453525150"
    load(tmp_path, {"dut": {"lorawan": {"app_key": "${env:K}"}, "relay": {"passphrase": "${env:P}"}}},
         env={"K": key, "P": "recorded-relay-pass"})
    line = f"AT+APPKEY={key.upper()} and passphrase recorded-relay-pass"
    assert redact(line) == "AT+APPKEY=**** and passphrase ****"


def test_bench_example_secrets_are_masked(tmp_path: Path) -> None:
    env = {"HIL_APP_KEY": "0f0e0d0c0b0a09080706050403020100", "HIL_RELAY_PASSPHRASE": "example-bench-pass",
           "HIL_MQTT_PASSWORD": "example-mqtt-pw"}
    rig = load_rig(ROOT / "rigs" / "bench-example.yaml", env=env)
    assert not _leaks(repr(rig), list(env.values()))
    assert redact(" ".join(env.values())) == "**** **** ****"
    assert len(REDACTOR) > 0


def test_sim_section_keys_accept_references(tmp_path: Path) -> None:
    path = write_rig(tmp_path, merged(BASE, {"sim": {"dut": {"app_key": "${env:SIM_KEY}"}}}))
    rig = load_rig(path, env={"SIM_KEY": ENV_KEY}, profiles_dir=None)
    assert rig.sim is not None and rig.sim.dut.app_key.reveal_hex() == ENV_KEY
    with pytest.raises(RigFileError) as info:
        load_rig(path, env={}, profiles_dir=None)
    assert ": sim.dut.app_key: environment variable SIM_KEY is not set" in str(info.value)
