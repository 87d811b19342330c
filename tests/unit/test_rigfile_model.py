"""Rig files: the shipped files load; every malformed file gives file, key path and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.lorawan.types import EUI64, NetID
from hil.rigfile import PlaceholderError, RigFileError, load_rig, resolve_rig_path
from hil.rigfile.loader import RIGS_DIR
from hil.rigfile.model import ChirpStackMqttGateway, DmmFeedback, SemtechUdpGateway, parse_mqtt_url, parse_udp_bind
from hil.sim.config import load_sim_config
from tests.unit.test_rigfile_support import APP_KEY, BASE, ROOT, load, merged, write_rig

BENCH_ENV = {
    "HIL_APP_KEY": "000102030405060708090a0b0c0d0e0f",
    "HIL_RELAY_PASSPHRASE": "bench-relay-passphrase",
    "HIL_MQTT_PASSWORD": "lab-mqtt-password",
}


# -- the shipped rig files ---------------------------------------------------------------------------

def test_sim_rig_loads_with_placeholders_and_shared_identity() -> None:
    rig = load_rig("sim")
    assert rig.path == ROOT / "rigs" / "sim.yaml" and rig.is_virtual and rig.time_scale == 20
    assert rig.sim is not None and rig.sim.time_scale == 20
    lw = rig.dut.lorawan
    assert lw is not None and lw.dev_eui == rig.sim.dut.dev_eui and lw.app_key == rig.sim.dut.app_key
    assert lw.version == rig.sim.dut.lorawan_version and lw.device_class == rig.sim.dut.device_class
    assert rig.dut.console.dialect == rig.sim.dut.dialect
    assert rig.dut.relay is not None and rig.sim.dut.relay_passphrase is not None
    assert rig.dut.relay.passphrase.get_secret_value() == rig.sim.dut.relay_passphrase.get_secret_value()
    assert isinstance(rig.gateway, ChirpStackMqttGateway) and rig.gateway.topic_prefix == "eu868/"
    assert isinstance(rig.feedback, DmmFeedback) and rig.feedback.dialect == "keysight-34461a"
    assert rig.psu is not None and (rig.psu.channel, rig.psu.voltage, rig.psu.current_limit) == (1, 5.0, 0.5)
    assert rig.network.net_id == NetID(0x13) and rig.network.join_policy == "allow"
    assert {(p.path, p.name) for p in rig.placeholders()} == {
        ("dut.console.port", "console"), ("gateway.broker", "mqtt"), ("gateway.gateway_id", "gateway_id"),
        ("psu.resource", "psu"), ("feedback.resource", "dmm"), ("handler.resource", "handler"),
        ("dut.swd.probe_uid", "probe_uid"), ("mains.resource", "mains"),
    }
    assert rig.parts() == ("dut.console", "dut.swd", "dut.lorawan", "dut.relay", "gateway", "psu", "mains",
                           "feedback", "handler")
    assert rig.mains is not None and (rig.mains.dialect, rig.mains.voltage, rig.mains.channel) == (
        "keysight-ac6800", rig.sim.mains.voltage_rms, 1)
    assert load_sim_config(rig.path) == rig.sim  # the sim: section reads the same through hil.sim


def test_bench_example_loads_with_secrets_from_the_environment() -> None:
    rig = load_rig(ROOT / "rigs" / "bench-example.yaml", env=BENCH_ENV)
    assert not rig.is_virtual and rig.time_scale == 1.0 and rig.placeholders() == []
    lw, swd = rig.dut.lorawan, rig.dut.swd
    assert lw is not None and lw.app_key is not None and lw.app_key.reveal_hex() == BENCH_ENV["HIL_APP_KEY"]
    assert swd is not None and swd.target == "stm32wl55jcix"
    layout = {name: (f.addr, f.type, f.length) for name, f in swd.nvm_layout.items()}
    assert layout["dev_nonce"] == (0x08080080, "u32le", 4) and layout["fcnt_up"] == (0x08080114, "u32le", 4)
    assert layout["relay_expected"] == (0x080801A0, "u32le", 4)
    assert swd.firmware is not None and swd.firmware.is_absolute()
    gw = rig.gateway
    assert isinstance(gw, ChirpStackMqttGateway) and (gw.host, gw.port, gw.tls) == ("gateway-lab.example", 8883, True)
    assert gw.password is not None and gw.password.get_secret_value() == BENCH_ENV["HIL_MQTT_PASSWORD"]
    assert gw.ca_file == ROOT / "rigs" / "certs" / "lab-ca.pem"
    assert rig.psu is not None and rig.psu.resource.startswith("TCPIP0::192.0.2.10::") and rig.psu.ocp
    assert rig.feedback is not None and rig.feedback.resource.startswith("TCPIP0::192.0.2.11::")
    assert "dut.swd" in rig.parts()
    config = lw.device_config(rig.network, name=rig.name)
    assert config.dev_eui == lw.dev_eui and config.app_key == lw.app_key and config.device_class == "C"


def test_bench_example_mains_part_loads_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "rigs" / "bench-example.yaml").read_text()
    start = text.index("#   mains:\n")
    block = text[start:text.index("\n\n", start)]
    (tmp_path / "bench.yaml").write_text(text.replace(block, "\n".join(line[4:] for line in block.splitlines())))
    rig = load_rig(tmp_path / "bench.yaml", env=BENCH_ENV)
    assert rig.mains is not None and (rig.mains.dialect, rig.mains.voltage, rig.mains.current_limit) == (
        "keysight-ac6800", 230.0, 1.0)
    assert "mains" in rig.parts() and load_rig(ROOT / "rigs" / "bench-example.yaml", env=BENCH_ENV).mains is None


def test_shipped_files_name_only_documentation_addresses() -> None:
    text = (ROOT / "rigs" / "bench-example.yaml").read_text()
    for address in re.findall(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", text):
        assert address.startswith("192.0.2.") or address == "0.0.0.0", address


def test_bare_name_resolves_in_rigs_folder(tmp_path: Path) -> None:
    assert resolve_rig_path("bench-07") == RIGS_DIR / "bench-07.yaml"
    assert resolve_rig_path("x/bench.yaml") == Path("x/bench.yaml")
    assert resolve_rig_path(tmp_path / "a") == tmp_path / "a"
    with pytest.raises(RigFileError, match=r"no such rig file \(rig names in .*sim"):
        load_rig("no-such-bench")


# -- error paths ---------------------------------------------------------------------------------------

def _error(tmp_path: Path, body: object, env: dict[str, str] | None = None) -> str:
    with pytest.raises(RigFileError) as info:
        load(tmp_path, body, env)  # type: ignore[arg-type]
    text = str(info.value)
    assert str(tmp_path / "rig.yaml") in text
    return text


@pytest.mark.parametrize(
    ("changes", "path", "expected"),
    [
        ({"colour": "red"}, "colour", "unknown key (expected one of: name, description, dut"),
        ({"dut": {"console": {"speed": 9600}}}, "dut.console.speed", "unknown key (expected one of: port, baud"),
        ({"gateway": {"transport": "semtech-udp", "bind": "0.0.0.0:1700", "broker": "mqtt://x:1"}},
         "gateway.broker", "unknown key (expected one of: transport, bind)"),
        ({"psu": {"resource": "TCPIP0::192.0.2.10::5555::SOCKET", "dialect": "rigol-dp800", "channel": "two",
                  "voltage": 5, "current_limit": 0.5}}, "psu.channel", "valid integer"),
        ({"psu": {"resource": "TCPIP0::192.0.2.10::5555::SOCKET", "dialect": "rigol-dp800", "channel": 0,
                  "voltage": 5, "current_limit": 0.5}}, "psu.channel", "greater than or equal to 1 (got 0)"),
        ({"psu": {"resource": "192.0.2.10:5555", "dialect": "rigol-dp800", "voltage": 5, "current_limit": 0.5}},
         "psu.resource", "expected a VISA resource string"),
        ({"psu": {"resource": "TCPIP0::192.0.2.10::5555::SOCKET", "dialect": "rigol-dp800", "voltage": 5,
                  "current_limit": 0.5, "ovp": 4}}, "psu", "ovp (4 V) must be above voltage (5 V)"),
        ({"mains": {"resource": "TCPIP0::192.0.2.12::5025::SOCKET", "dialect": "keysight-ac6800", "voltage": 0}},
         "mains.voltage", "greater than 0"),
        ({"mains": {"resource": "TCPIP0::192.0.2.12::5025::SOCKET", "dialect": "keysight-ac6800", "phase": 3}},
         "mains.phase", "unknown key (expected one of: resource, dialect, channel, voltage, current_limit)"),
        ({"mains": {"dialect": "keysight-ac6800"}}, "mains.resource", "required key missing"),
        ({"gateway": {"transport": "lora-magic"}}, "gateway.transport",
         "expected one of 'chirpstack-mqtt', 'semtech-udp'"),
        ({"gateway": {"bind": "0.0.0.0:1700"}}, "gateway.transport", "(key missing)"),
        ({"gateway": {"transport": "semtech-udp", "bind": "1700"}}, "gateway.bind", "expected host:port"),
        ({"gateway": {"transport": "chirpstack-mqtt", "broker": "http://x:1"}}, "gateway.broker",
         "expected mqtt://host:port"),
        ({"gateway": {"transport": "chirpstack-mqtt", "broker": "mqtt://u:pw@x:1"}}, "gateway.broker",
         "without credentials"),
        ({"gateway": {"transport": "chirpstack-mqtt", "broker": "mqtt://x:1", "gateway_id": "12"}},
         "gateway.gateway_id", "16 hex digits"),
        ({"feedback": {"kind": "dmm", "resource": "TCPIP0::h::5025::SOCKET"}}, "feedback.dialect",
         "required key missing"),
        ({"feedback": {"kind": "smart-meter", "broker": "mqtt://x", "topic_prefix": "s", "range": 5}},
         "feedback.range", "unknown key"),
        ({"dut": {"console": {"port": "ttyUSB0"}}}, "dut.console.port", "expected a pyserial port"),
        ({"dut": {"console": {"dialect": "Rak 3172"}}}, "dut.console.dialect", "expected the name of an AT profile"),
        ({"dut": {"lorawan": {"dev_eui": 1234}}}, "dut.lorawan.dev_eui", "quote it"),
        ({"dut": {"lorawan": {"dev_eui": "xyz"}}}, "dut.lorawan.dev_eui", "16 hex digits"),
        ({"dut": {"lorawan": {"version": "1.1"}}}, "dut.lorawan", "needs nwk_key as well as app_key"),
        ({"dut": {"lorawan": {"activation": "abp"}}}, "dut.lorawan", "needs an abp: section"),
        ({"dut": {"relay": {"fport": 0}}}, "dut.relay.fport", "greater than or equal to 1"),
        ({"dut": {"swd": {"probe_uid": "x", "target": "t", "nvm_layout": {"n": {"addr": "0xZZ", "type": "u8"}}}}},
         "dut.swd.nvm_layout.n.addr", "expected an address"),
        ({"dut": {"swd": {"probe_uid": "x", "target": "t", "nvm_layout": {"b": {"addr": 16, "type": "bytes"}}}}},
         "dut.swd.nvm_layout.b", "type bytes needs a size"),
        ({"dut": {"swd": {"probe_uid": "x", "target": "t", "nvm_layout": {
            "a": {"addr": "0x10", "type": "u32le"}, "b": {"addr": 18, "type": "u8"}}}}},
         "dut.swd", "nvm_layout.a and nvm_layout.b overlap"),
        ({"network": {"net_id": 13}}, "network.net_id", "quote it"),
        ({"network": {"join_policy": "maybe"}}, "network.join_policy", "'allow' or 'deny' (got 'maybe')"),
        ({"timing": {"time_scale": 20}}, "timing.time_scale", "needs a virtual rig (a sim: section)"),
        ({"dut": None}, "dut", "required key missing"),
    ],
)
def test_error_names_file_key_path_and_expectation(tmp_path: Path, changes: dict, path: str, expected: str) -> None:
    text = _error(tmp_path, changes)
    assert f": {path}: " in text and expected in text, text


def test_error_lines_point_into_the_file(tmp_path: Path) -> None:
    body = (
        "name: t\n"
        "dut:\n"
        "  console:\n"
        "    port: /dev/ttyUSB0\n"
        "    dialect: rak3172\n"
        "psu:\n"
        "  resource: TCPIP0::192.0.2.10::5555::SOCKET\n"
        "  dialect: rigol-dp800\n"
        "  channel: -1\n"
        "  voltage: 5\n"
        "  current_limit: 0.5\n"
        "  colour: red\n"
    )
    text = _error(tmp_path, body)
    rig = tmp_path / "rig.yaml"
    assert f"{rig}:9: psu.channel: " in text and f"{rig}:12: psu.colour: unknown key" in text


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = _error(tmp_path, {"dut": {"console": {"baud": "fast", "port": "x"}}, "colour": 1})
    assert len(text.splitlines()) == 3


def test_real_rig_may_state_real_time(tmp_path: Path) -> None:
    assert load(tmp_path, {"timing": {"time_scale": 1}}).time_scale == 1.0


def test_sim_time_scale_given_twice_must_agree(tmp_path: Path) -> None:
    sim = {"dut": {"app_key": APP_KEY}, "time_scale": 5}
    text = _error(tmp_path, {"timing": {"time_scale": 20}, "sim": sim})
    assert "sim.time_scale: " in text and "differs from timing.time_scale" in text


def test_sim_section_errors_come_from_sim_config(tmp_path: Path) -> None:
    text = _error(tmp_path, {"sim": {"dut": {"app_key": APP_KEY, "colour": "red"}}})
    assert ": sim.dut.colour: unknown key" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("name: [", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of sections"),
        ("name: a\nname: b\ndut: {console: {port: /dev/ttyUSB0, dialect: rak3172}}\n", ":2: name: duplicate key"),
    ],
)
def test_malformed_documents(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _error(tmp_path, body)


def test_yaml_error_shows_no_snippet_of_the_line(tmp_path: Path) -> None:
    body = f"name: t\ndut:\n  lorawan:\n    app_key: {APP_KEY}: oops\n"
    text = _error(tmp_path, body)
    assert f"{tmp_path / 'rig.yaml'}:4: not valid YAML" in text and APP_KEY not in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RigFileError, match="no such rig file"):
        load_rig(tmp_path / "nope.yaml")


# -- placeholders ---------------------------------------------------------------------------------------

SIM = {"dut": {"app_key": APP_KEY}}


@pytest.mark.parametrize(
    ("changes", "path", "expected"),
    [
        ({"sim": SIM, "dut": {"console": {"port": "${sim:bogus}"}}}, "dut.console.port",
         "${sim:bogus}: the sim: section provides no 'bogus' (it provides: console, dmm, gateway_id, mains, mqtt, probe_server, probe_uid, psu, swd_target)"),
        ({"dut": {"console": {"port": "${sim:console}"}}}, "dut.console.port",
         "${sim:console} needs a sim: section, and this rig has none"),
        ({"dut": {"console": {"port": "${lab:console}"}}}, "dut.console.port",
         "unknown placeholder provider 'lab' (known: sim)"),
        ({"gateway": {"transport": "chirpstack-mqtt", "broker": "mqtt://x", "username": "${env:USER}"}},
         "gateway.username", "is read only in secret fields"),
        ({"sim": SIM, "gateway": {"transport": "semtech-udp", "bind": "${sim:udp}"}}, "gateway.bind",
         "provides no 'udp'"),
    ],
)
def test_placeholder_errors_name_the_key(tmp_path: Path, changes: dict, path: str, expected: str) -> None:
    with pytest.raises(PlaceholderError) as info:
        load(tmp_path, changes)
    text = str(info.value)
    assert str(tmp_path / "rig.yaml") in text and f": {path}: " in text and expected in text, text


def test_placeholders_skip_format_checks_until_bring_up(tmp_path: Path) -> None:
    rig = load(tmp_path, {"sim": {"dut": {"app_key": APP_KEY}, "gateway": {"transport": "semtech-udp"}},
                          "gateway": {"transport": "semtech-udp", "bind": "${sim:udp}"}})
    assert isinstance(rig.gateway, SemtechUdpGateway) and rig.gateway.bind == "${sim:udp}"


# -- field forms -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["/dev/ttyUSB0", "/dev/serial/by-id/usb-STMicroelectronics_STLINK-V3_1-if02",
                                  "socket://192.0.2.5:4000", "rfc2217://192.0.2.5:2217", "COM7", "loop://"])
def test_console_port_forms(tmp_path: Path, port: str) -> None:
    assert load(tmp_path, {"dut": {"console": {"port": port}}}).dut.console.port == port


def test_url_and_bind_parsing() -> None:
    assert parse_mqtt_url("mqtt://broker.example") == ("broker.example", 1883, False)
    assert parse_mqtt_url("mqtts://broker.example") == ("broker.example", 8883, True)
    assert parse_udp_bind("0.0.0.0:0") == ("0.0.0.0", 0) and parse_udp_bind("[::1]:1700") == ("::1", 1700)
    with pytest.raises(ValueError):
        parse_udp_bind("host:70000")


def test_abp_device_and_nvm_forms(tmp_path: Path) -> None:
    rig = load(tmp_path, {"dut": {
        "lorawan": {"activation": "abp", "app_key": None, "abp": {
            "dev_addr": "260b1234", "nwk_s_key": APP_KEY, "app_s_key": APP_KEY, "fcnt_up": 7}},
        "swd": {"probe_uid": "066DFF", "target": "stm32wl55jcix", "firmware": "fw/app.hex", "nvm_layout": {
            "eui": {"addr": "0x08080010", "type": "eui64"}, "blob": {"addr": 0x08080100, "type": "bytes", "size": 16}}},
    }})
    lw, swd = rig.dut.lorawan, rig.dut.swd
    assert lw is not None and lw.abp is not None and int(lw.abp.dev_addr) == 0x260B1234
    assert lw.device_config().next_fcnt_up == 7
    assert swd is not None and swd.nvm_layout["eui"].addr == 0x08080010 and swd.nvm_layout["blob"].length == 16
    assert swd.firmware == tmp_path / "fw" / "app.hex"
    assert rig.gateway is None and rig.part("psu") is None and rig.part("dut.swd") is swd
    with pytest.raises(KeyError, match="no part 'scope'"):
        rig.part("scope")


def test_lorawan_1_1_keys(tmp_path: Path) -> None:
    lorawan = {"version": "1.1", "nwk_key": "00" * 16, "join_eui": "00-00-00-00-00-00-00-01"}
    rig = load(tmp_path, {"dut": {"lorawan": lorawan}})
    assert rig.dut.lorawan is not None and rig.dut.lorawan.join_eui == EUI64(1)
    text = _error(tmp_path, {"dut": {"lorawan": {"nwk_key": "00" * 16}}})
    assert "dut.lorawan: nwk_key is a LoRaWAN 1.1 key" in text


def test_profile_names_are_checked_against_profile_files(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    (profiles / "at").mkdir(parents=True)
    (profiles / "at" / "rak3172.yaml").write_text("name: rak3172\n")
    (profiles / "at" / "lora-e5.yaml").write_text("name: lora-e5\n")
    good = write_rig(tmp_path, merged(BASE, {}), "good.yaml")
    assert load_rig(good, profiles_dir=profiles).dut.console.dialect == "rak3172"
    bad = write_rig(tmp_path, merged(BASE, {"dut": {"console": {"dialect": "rak3127"}}}), "bad.yaml")
    with pytest.raises(RigFileError) as info:
        load_rig(bad, profiles_dir=profiles)
    text = str(info.value)
    assert "dut.console.dialect: no AT profile 'rak3127'" in text and "known: lora-e5, rak3172" in text
    # a kind whose folder does not exist yet is not checked
    psu = {"psu": {"resource": "TCPIP0::h::5025::SOCKET", "dialect": "any-scpi", "voltage": 3.3, "current_limit": 1}}
    assert load_rig(write_rig(tmp_path, merged(BASE, psu), "psu.yaml"), profiles_dir=profiles).psu is not None
