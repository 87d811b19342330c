"""AT dialect profiles: loading, validation messages, and the modules no virtual DUT speaks
(STM32WL AT_Slave, RN2483), driven through the real driver by a scripted module on a pty that
answers with sample lines from dialects.md §1."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from drivers.console import (
    ConsoleCommandError,
    ConsoleUnsupported,
    DutConsole,
    ProfileError,
    available_profiles,
    load_profile,
)
from hil.clock import Deadline, ScaledClock
from hil.sim.dut.console import PtyPort

KEY_HEX = "2B7E151628AED2A6ABF7158809CF4F3C"
PROFILES = ("lora-e5", "rak3172", "rn2483", "stm32wl-at-slave")


# -- loading and validation ------------------------------------------------------------------------


def test_every_shipped_profile_loads() -> None:
    assert set(PROFILES) <= set(available_profiles())
    bauds = {name: load_profile(name).baud for name in PROFILES}
    assert bauds == {"rak3172": 115200, "lora-e5": 9600, "stm32wl-at-slave": 9600, "rn2483": 57600}
    for name in PROFILES:
        profile = load_profile(name)
        assert profile.name == name and profile.line_ending == "\r\n"
        assert profile.join is not None and profile.send is not None and profile.downlink is not None
        assert {"version", "dev_eui", "join_eui"} <= set(profile.identity)


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("rak3172", "+EVT:RX_1:-79:13:UNICAST:1:48656c6c6f", {"port": "1", "payload": "48656c6c6f", "slot": "1",
                                                            "rssi": "-79", "snr": "13"}),
        ("rak3172", "+EVT:RX_C:-60:7:MULTICAST:10:", {"port": "10", "payload": "", "slot": "C"}),
        ("lora-e5", '+MSGHEX: PORT: 1; RX: "48656C6C6F"', {"port": "1", "payload": "48656C6C6F"}),
        ("lora-e5", '+CMSGHEX: PORT: 8; RX: "00"', {"port": "8", "payload": "00"}),
        ("stm32wl-at-slave", "+EVT:2:05:48656C6C6F", {"port": "2", "length": "05", "payload": "48656C6C6F"}),
        ("rn2483", "mac_rx 1 48656c6c6f", {"port": "1", "payload": "48656c6c6f"}),
    ],
)
def test_downlink_reports_parse(name: str, line: str, expected: dict[str, str]) -> None:
    spec = load_profile(name).downlink
    assert spec is not None
    match = re.search(spec.report, line)
    assert match is not None and {k: match.group(k) for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "line", "groups"),
    [
        ("lora-e5", "+MSGHEX: RXWIN1, RSSI -79, SNR 13.0", {"slot": "1", "rssi": "-79", "snr": "13.0"}),
        ("stm32wl-at-slave", "+EVT:RX_C_MC, PORT 2, DR 5, RSSI -60, SNR 7", {"slot": "C_MC", "rssi": "-60"}),
        ("stm32wl-at-slave", "+EVT:RX_2, DR 0, RSSI -110, SNR -5", {"slot": "2", "snr": "-5"}),  # older CubeWL
    ],
)
def test_downlink_radio_lines_parse(name: str, line: str, groups: dict[str, str]) -> None:
    spec = load_profile(name).downlink
    assert spec is not None and spec.meta is not None
    match = re.search(spec.meta, line)
    assert match is not None and {k: match.group(k) for k in groups} == groups


@pytest.mark.parametrize(
    ("name", "line", "which"),
    [
        ("rak3172", "+EVT:JOINED", "joined"),
        ("rak3172", "+EVT:JOIN_FAILED_RX_TIMEOUT", "failed"),
        ("rak3172", "+EVT:JOIN FAILED", "failed"),  # RUI3 v3.x docs spelling
        ("lora-e5", "+JOIN: Network joined", "joined"),
        ("lora-e5", "+JOIN: Joined already", "joined"),
        ("lora-e5", "+JOIN: Join failed", "failed"),
        ("stm32wl-at-slave", "+EVT:JOINED", "joined"),
        ("stm32wl-at-slave", "+EVT:JOIN FAILED", "failed"),
        ("rn2483", "accepted", "joined"),
        ("rn2483", "denied", "failed"),
    ],
)
def test_join_reports_parse(name: str, line: str, which: str) -> None:
    spec = load_profile(name).join
    assert spec is not None
    other = "failed" if which == "joined" else "joined"
    assert re.search(getattr(spec, which), line) and not re.search(getattr(spec, other), line)


@pytest.mark.parametrize(
    ("name", "line", "code"),
    [
        ("rak3172", "AT_PARAM_ERROR", "AT_PARAM_ERROR"),
        ("rak3172", "AT_NO_NETWORK_JOINED", "AT_NO_NETWORK_JOINED"),
        ("lora-e5", "+KEY: ERROR(-1)", "-1"),
        ("lora-e5", "+MODE: ERROR(-12)", "-12"),
        ("lora-e5", "+MSGHEX: Please join network first", "Please join network first"),
        ("stm32wl-at-slave", "AT_BUSY_ERROR", "AT_BUSY_ERROR"),
        ("rn2483", "invalid_param", "invalid_param"),
        ("rn2483", "keys_not_init", "keys_not_init"),
    ],
)
def test_error_replies_give_their_code(name: str, line: str, code: str) -> None:
    profile = load_profile(name)
    codes = [m.group("code") for p in profile.error if (m := re.search(p, line))]
    assert codes == [code]
    assert not re.search(profile.ok, line)


def test_rui3_spelling_drift_is_accepted() -> None:
    send = load_profile("rak3172").send
    assert send is not None
    for line in ("+EVT:SEND_CONFIRMED_OK", "+EVT: SEND CONFIRMED OK"):
        assert re.search(send.confirmed_ok, line)
    assert re.search(send.confirmed_failed or "", "+EVT:SEND_CONFIRMED_FAILED(4)").group("code") == "4"  # type: ignore[union-attr]


def _write(tmp_path: Path, body: str, name: str = "mymodule") -> Path:
    base = (Path(load_profile("rak3172").path)).read_text()
    path = tmp_path / f"{name}.yaml"
    path.write_text(base + "\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize(
    ("extra", "where", "what"),
    [
        ("colour: blue\n", "colour", "unknown key"),
        ("ok: '^(OK$'\n", "ok", "not a valid regular expression"),
        ("error: '^AT_ERROR$'\n", "error", "(?P<code>...)"),
        ("dev_eui: {send: 'AT+DEVEUI={eui}'}\n", "dev_eui.send", "unknown placeholder"),
        ("join: {command: {send: AT+JOIN}, joined: x}\n", "join.failed", "required key is missing"),
        ("downlink: {report: '^RX:(?P<port>\\d+)$'}\n", "downlink.report", "payload"),
        ("reset: {send: ATZ, ok: false}\n", "reset", "nothing ends this command"),
        ("dev_eui: {send: 'AT+DEVEUI={value}', ok: false}\n", "dev_eui", "nothing ends this command"),
        ("baud: fast\n", "baud", "integer"),
        ("line_ending: ';'\n", "line_ending", "expected"),
    ],
)
def test_a_bad_profile_names_file_and_key(tmp_path: Path, extra: str, where: str, what: str) -> None:
    path = _write(tmp_path, extra)
    with pytest.raises(ProfileError) as caught:
        load_profile("mymodule", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and where in message and what in message


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="no such AT dialect profile.*lora-e5, rak3172"):
        load_profile("sx1276")
    with pytest.raises(ProfileError, match="not a profile name"):
        load_profile("../../etc/passwd")


def test_bad_yaml_and_a_profile_by_path(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("ok: [unclosed\n")
    with pytest.raises(ProfileError, match="broken.yaml: not valid YAML"):
        load_profile("broken", tmp_path)
    assert load_profile(str(Path(load_profile("rn2483").path))).name == "rn2483"


# -- scripted modules (no virtual DUT speaks these dialects) ---------------------------------------

Script = dict[str, list[str] | Callable[[], list[str]]]


class ScriptedModule:
    """A pty that answers each command line with canned lines (CRLF-terminated), like a module."""

    def __init__(self, script: Script, unknown: str) -> None:
        self.script = script
        self.unknown = unknown
        self.received: list[str] = []
        self._buf = b""
        self.pty = PtyPort("scripted-module", on_data=self._on_data)

    def _on_data(self, data: bytes) -> None:
        self._buf += data
        while b"\r\n" in self._buf:
            raw, self._buf = self._buf.split(b"\r\n", 1)
            line = raw.decode()
            self.received.append(line)
            reply = self.script.get(line, [self.unknown])
            lines = reply() if callable(reply) else reply
            self.pty.write("".join(f"{text}\r\n" for text in lines).encode())

    def close(self) -> None:
        self.pty.close()


@pytest.fixture
def clock(compressed_clock: Any) -> ScaledClock:
    return compressed_clock(50)


def _console(module: ScriptedModule, dialect: str, clock: ScaledClock, tmp_path: Path) -> Iterator[DutConsole]:
    console = DutConsole(module.pty.path, dialect, clock, transcript_path=tmp_path / f"{dialect}.log")
    console.open(Deadline.after(clock, 10))
    try:
        yield console
    finally:
        console.close()
        module.close()


@pytest.fixture
def stm32(clock: ScaledClock, tmp_path: Path) -> Iterator[tuple[DutConsole, ScriptedModule]]:
    script: Script = {
        "AT": ["", "OK"],
        "AT+VER=?": ["APPLICATION_VERSION: V1.3.0", "MW_LORAWAN_VERSION:  V2.5.0", "MW_RADIO_VERSION:    V1.3.0",
                     "L2_SPEC_VERSION:     V1.0.4", "RP_SPEC_VERSION:     V2-1.0.3", "", "OK"],
        "AT+DEUI=?": ["70:B3:D5:7E:D0:00:00:01", "", "OK"],
        "AT+APPEUI=?": ["70:B3:D5:7E:D0:00:00:FF", "", "OK"],
        "AT+DEUI=00:11:22:33:44:55:66:77": ["", "OK"],
        "AT+APPKEY=" + ":".join(KEY_HEX[i:i + 2] for i in range(0, 32, 2)): ["", "OK"],
        "AT+APPKEY=?": [":".join(KEY_HEX[i:i + 2] for i in range(0, 32, 2)), "", "OK"],
        "AT+CLASS=C": ["", "OK"],
        "AT+JOIN=1": ["", "OK", "+EVT:JOINED"],
        "AT+JOIN=0": ["", "OK", "+EVT:JOIN FAILED"],
        "AT+SEND=2:1:0102": ["", "OK", "+EVT:2:02:CAFE", "+EVT:RX_1, PORT 2, DR 5, RSSI -60, SNR 7",
                             "+EVT:SEND_CONFIRMED"],
        "AT+SEND=2:0:0102": ["", "OK"],
        "AT+SEND=4:1:00": ["", "OK"],  # no ack: CubeWL prints nothing
        "AT+SEND=5:0:00": ["", "AT_NO_NETWORK_JOINED"],
        "AT+RECV=?": ["2:CAFE", "", "OK"],
        "ATZ": ["ATtention command interface", "AT? to list all available functions"],
        "AT+RFS": ["ATtention command interface", "AT? to list all available functions"],
    }
    module = ScriptedModule(script, unknown="AT_ERROR")
    for console in _console(module, "stm32wl-at-slave", clock, tmp_path):
        yield console, module


@pytest.fixture
def rn2483(clock: ScaledClock, tmp_path: Path) -> Iterator[tuple[DutConsole, ScriptedModule]]:
    joins = iter([["ok", "denied"], ["ok", "accepted"]])
    version = ["RN2483 1.0.5 Oct 31 2018 15:06:52"]
    script: Script = {
        "sys get ver": version,
        "sys get hweui": ["0004A30B001A2B3C"],
        "mac get deveui": ["0004A30B001A2B3C"],
        "mac get appeui": ["70B3D57ED00000FF"],
        f"mac set appkey {KEY_HEX}": ["ok"],
        "mac set class c": ["ok"],
        "mac join otaa": lambda: next(joins),
        "mac get status": ["00000001"],
        "mac tx uncnf 2 0102": ["ok", "mac_tx_ok"],
        "mac tx cnf 2 0102": ["ok", "mac_rx 5 CAFE"],
        "mac tx cnf 3 00": ["ok", "mac_err"],
        "mac tx uncnf 2 FF": ["not_joined"],
        "mac tx uncnf 4 00": ["ok", "invalid_data_len"],  # the second reply can be an error too
        "mac get upctr": ["3"],
        "mac get dnctr": ["1"],
        "mac save": ["ok"],
        "sys reset": version,
    }
    module = ScriptedModule(script, unknown="invalid_param")
    for console in _console(module, "rn2483", clock, tmp_path):
        yield console, module


def test_stm32wl_identity_keys_join_and_uplinks(stm32: tuple[DutConsole, ScriptedModule], clock: ScaledClock) -> None:
    console, module = stm32
    d = lambda s: Deadline.after(clock, s)  # noqa: E731
    console.wait_ready(d(5))
    assert console.identity() == {"version": "V1.3.0", "lorawan_version": "V1.0.4",
                                  "dev_eui": "70b3d57ed0000001", "join_eui": "70b3d57ed00000ff"}
    console.set_dev_eui("0011223344556677")
    console.set_app_key(KEY_HEX)
    console.command("AT+APPKEY=?")  # the module prints the key back
    console.set_class("C")
    assert console.join(d(30)).joined
    console.set_activation("abp")  # given in the join command: AT+JOIN=0
    result = console.join(d(30))
    assert not result.joined and result.line == "+EVT:JOIN FAILED"
    console.set_activation("otaa")

    acked = console.send_uplink(2, b"\x01\x02", True, d(30))
    assert acked.status == "acked" and acked.acked is True
    assert acked.downlinks == tuple(console.downlinks())
    (downlink,) = console.downlinks()
    assert (downlink.port, downlink.payload, downlink.slot, downlink.rssi, downlink.snr) == (2, b"\xca\xfe", "1", -60, 7)
    assert console.send_uplink(2, b"\x01\x02", False, d(30)).status == "sent"  # OK ends it
    no_ack = console.send_uplink(4, b"\x00", True, d(2))  # nothing printed without an ack
    assert no_ack.status == "not_acked" and no_ack.acked is False
    with pytest.raises(ConsoleCommandError) as caught:
        console.send_uplink(5, b"\x00", False, d(30))
    assert caught.value.code == "AT_NO_NETWORK_JOINED"
    assert console.read_downlink() == (2, b"\xca\xfe")
    console.reset(d(10))
    console.factory_reset(d(10))
    with pytest.raises(ConsoleUnsupported, match="frame counter"):
        console.frame_counters()
    with pytest.raises(ConsoleUnsupported, match="join status"):
        console.join_status()

    assert "AT+DEUI=00:11:22:33:44:55:66:77" in module.received
    text = console.transcript.text()
    colon_key = ":".join(KEY_HEX[i:i + 2] for i in range(0, 32, 2))
    assert colon_key not in text and KEY_HEX not in text and "> AT+APPKEY=****" in text and "< ****" in text


def test_rn2483_words_not_at(rn2483: tuple[DutConsole, ScriptedModule], clock: ScaledClock) -> None:
    console, module = rn2483
    d = lambda s: Deadline.after(clock, s)  # noqa: E731
    console.wait_ready(d(5))
    identity = console.identity()
    assert identity["version"].startswith("RN2483 1.0.5") and identity["dev_eui"] == "0004a30b001a2b3c"
    console.set_app_key(KEY_HEX)
    console.set_class("C")
    with pytest.raises(ConsoleUnsupported, match="'B' is not available"):
        console.set_class("B")
    denied = console.join(d(30))
    assert not denied.joined and denied.reason == "denied"
    assert console.join(d(30)).joined and console.join_status()
    assert console.send_uplink(2, b"\x01\x02", False, d(30)).status == "sent"
    acked = console.send_uplink(2, b"\x01\x02", True, d(30))
    assert acked.status == "acked" and [(x.port, x.payload) for x in acked.downlinks] == [(5, b"\xca\xfe")]
    assert acked.downlinks[0].rssi is None  # the RN2483 prints no radio data
    assert console.send_uplink(3, b"\x00", True, d(30)).status == "not_acked"
    with pytest.raises(ConsoleCommandError) as caught:
        console.send_uplink(2, b"\xff", False, d(30))
    assert caught.value.code == "not_joined" and caught.value.command == "mac tx uncnf 2 FF"
    with pytest.raises(ConsoleCommandError) as caught:
        console.send_uplink(4, b"\x00", False, d(30))
    assert caught.value.code == "invalid_data_len" and caught.value.command == "mac tx uncnf 4 00"
    counters = console.frame_counters()
    assert (counters.up, counters.down) == (3, 1)
    console.save()
    console.reset(d(10))  # the version line is both the reply and the end of the boot banner
    with pytest.raises(ConsoleUnsupported, match="nwk_key"):
        console.set_nwk_key(KEY_HEX)
    assert "mac join otaa" in module.received
    assert KEY_HEX not in console.transcript.text() and "> mac set appkey ****" in console.transcript.text()
