"""The console driver against the virtual DUT's console (a pty), RAK3172 RUI3 and LoRa-E5 dialects,
with the reference network server behind the virtual ChirpStack gateway for joins and downlinks.

Each rig is started once per module; before each test the DUT is factory reset and re-registered
with the network, so tests do not depend on their order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from drivers.console import (
    ConsoleCommandError,
    ConsoleTimeout,
    ConsoleUnsupported,
    DutConsole,
)
from drivers.gateway.chirpstack_mqtt import ChirpStackMqttTransport
from hil.clock import Deadline
from hil.lorawan.crypto import AESKey
from hil.lorawan.region import get_region
from hil.network import DeviceConfig, NetworkServer
from hil.network.application import ApplicationUplink
from hil.network.faults import Fault
from hil.sim.bench import sim_config
from hil.sim.config import SimConfig
from hil.sim.rig import VirtualRig

MODEL = "hil-relay-l0"  # the virtual DUT's hardware model: the test redactor hides it
# rig seconds per real second: the sim.yaml default. Faster rigs miss RX1 (1 rig s after an uplink)
# when the machine is loaded, because the network server answers in real time over MQTT.
TIME_SCALE = 20


@dataclass
class VirtualDut:
    """A virtual rig, its network server and our console on the DUT's pty."""

    rig: VirtualRig
    ns: NetworkServer
    console: DutConsole
    config: SimConfig
    uplinks: list[ApplicationUplink] = field(default_factory=list)

    def deadline(self, seconds: float) -> Deadline:
        return Deadline.after(self.rig.clock, seconds)

    def power(self, on: bool) -> None:
        assert self.rig.psu is not None
        channel = self.rig.psu.channel(1)
        channel.configure(voltage=5.0, current_limit=0.5)
        channel.set_output(on)

    def device_config(self) -> DeviceConfig:
        d = self.config.dut
        return DeviceConfig(dev_eui=d.dev_eui, join_eui=d.join_eui, version=d.lorawan_version,
                            device_class=d.device_class, app_key=d.app_key)

    def fresh(self) -> "VirtualDut":
        """Factory defaults on the DUT, a fresh registration on the network (DevNonces forgotten)."""
        self.ns.join_server.join_policy = None
        self.ns.faults.clear()
        if not self.console.is_open:
            self.console.open(self.deadline(10))
        self.power(True)
        self.console.wait_ready(self.deadline(20))
        self.console.factory_reset(self.deadline(20))
        self.console.clear_downlinks()
        self.ns.remove_device(self.config.dut.dev_eui)
        self.ns.add_device(self.device_config())
        self.uplinks.clear()
        return self


def _virtual_dut(dialect: str, folder: Path) -> Iterator[VirtualDut]:
    # Class A: a queued downlink goes out in the receive windows of the next uplink. No relay
    # passphrase: the relay application stays quiet, the console's uplinks are the only ones.
    config = sim_config(time_scale=TIME_SCALE, dialect=dialect, device_class="A", relay_passphrase=None)
    rig = VirtualRig(config)
    opened: list[NetworkServer | DutConsole] = []
    try:
        endpoints = rig.start()
        assert endpoints.mqtt_url is not None
        host, port = endpoints.mqtt_url.removeprefix("mqtt://").split(":")
        transport = ChirpStackMqttTransport(host, int(port), topic_prefix=config.gateway.topic_prefix, clock=rig.clock)
        ns = NetworkServer(get_region(config.dut.region), rig.clock, net_id=0x000013, transport=transport)
        opened.append(ns)
        console = DutConsole(endpoints.console_path, dialect, rig.clock, transcript_path=folder / f"{dialect}.log",
                             redact=lambda line: line.replace(MODEL, "<model>"))
        opened.append(console)
        console.open(Deadline.after(rig.clock, 10))
        dut = VirtualDut(rig, ns, console, config)
        ns.add_device(dut.device_config())
        ns.on_uplink(dut.uplinks.append)
        yield dut
    finally:
        for thing in reversed(opened):
            thing.close()
        rig.stop()


@pytest.fixture(scope="module")
def rak_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualDut]:
    yield from _virtual_dut("rak3172", tmp_path_factory.mktemp("rak3172"))


@pytest.fixture(scope="module")
def e5_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualDut]:
    yield from _virtual_dut("lora-e5", tmp_path_factory.mktemp("lora-e5"))


@pytest.fixture
def rak(rak_rig: VirtualDut) -> VirtualDut:
    return rak_rig.fresh()


@pytest.fixture
def e5(e5_rig: VirtualDut) -> VirtualDut:
    return e5_rig.fresh()


# -- RAK3172 RUI3 -------------------------------------------------------------------------------------


def test_wait_ready_after_power_up(rak: VirtualDut) -> None:
    fw = rak.rig.firmware
    assert fw is not None
    rak.power(False)
    settle = rak.deadline(10)
    while fw.running and not settle.expired:
        rak.rig.clock.sleep(0.1)
    with pytest.raises(ConsoleTimeout):  # an unpowered DUT answers nothing
        rak.console.wait_ready(rak.deadline(2))
    mark = len(rak.console.transcript.entries())
    rak.power(True)
    rak.console.wait_ready(rak.deadline(10))
    probes = [e for e in rak.console.transcript.entries()[mark:] if e.direction == ">"]
    assert probes and all(e.text == "AT" for e in probes)
    assert rak.console.identity()["version"] == fw.firmware_version


def test_identity_and_the_callers_redactor(rak: VirtualDut) -> None:
    identity = rak.console.identity()
    d = rak.config.dut
    assert identity["dev_eui"] == str(d.dev_eui) and identity["join_eui"] == str(d.join_eui)
    assert identity["hardware_model"] == MODEL  # the caller gets the value...
    text = rak.console.transcript.text()
    assert "AT+HWMODEL=<model>" in text and MODEL not in text  # ...the transcript what the redactor left


def test_set_and_read_euis(rak: VirtualDut) -> None:
    rak.console.set_dev_eui("00-11-22-33-44-55-66-77")
    rak.console.set_join_eui(0x0102030405060708)
    identity = rak.console.identity()
    assert (identity["dev_eui"], identity["join_eui"]) == ("0011223344556677", "0102030405060708")
    assert "> AT+DEVEUI=0011223344556677" in rak.console.transcript.text()
    rak.console.factory_reset(rak.deadline(20))
    assert rak.console.identity()["dev_eui"] == str(rak.config.dut.dev_eui)


def test_keys_are_masked_in_transcript_and_log(rak: VirtualDut) -> None:
    app_key = rak.config.dut.app_key
    nwk_key = AESKey(bytes(range(16)), name="NwkKey")
    rak.console.set_app_key(app_key)
    rak.console.set_nwk_key(nwk_key)
    answer = rak.console.command("AT+APPKEY=?", expect=r"^AT\+APPKEY=(?P<key>\w+)$")  # RUI3 prints it back
    assert answer.group("key").lower() == app_key.reveal_hex().lower()
    for text in (rak.console.transcript.text(), Path(str(rak.console.transcript.path)).read_text()):
        for key in (app_key, nwk_key):
            assert key.reveal_hex().lower() not in text.lower()
        assert "> AT+APPKEY=****" in text and "> AT+NWKKEY=****" in text and "< AT+APPKEY=****" in text


def test_join_success(rak: VirtualDut) -> None:
    rak.console.set_app_key(rak.config.dut.app_key)
    result = rak.console.join(rak.deadline(120))
    assert result.joined and result.line == "+EVT:JOINED" and result.reason is None
    assert rak.console.join_status()
    assert any(e.mtype == "join_accept" and e.time >= result.time - 10 for e in rak.ns.events.events())


def test_join_denied_reports_failure_after_the_modules_attempts(rak: VirtualDut) -> None:
    fw = rak.rig.firmware
    assert fw is not None
    # The virtual module tries 8 times (about 90 rig s); 2 keep the test short. The MAC reads the
    # number at boot, hence the reset; the next test's factory reset boots with the default again.
    default_attempts = fw.join_attempts
    fw.join_attempts = 2
    try:
        rak.console.reset(rak.deadline(20))
        rak.ns.join_server.join_policy = lambda device: False
        start = rak.rig.clock.now()
        result = rak.console.join(rak.deadline(600))
    finally:
        fw.join_attempts = default_attempts
    assert not result.joined and result.line.startswith("+EVT:JOIN_FAILED") and result.reason == "RX_TIMEOUT"
    events = [e for e in rak.ns.events.events() if e.time >= start]
    requests = [e for e in events if e.mtype == "join_request"]
    assert len(requests) == 2  # one failure report, after all the module's attempts
    assert not any(e.mtype == "join_accept" for e in events)
    assert not rak.console.join_status()


def test_uplink_and_the_downlink_the_network_queued(rak: VirtualDut) -> None:
    assert rak.console.join(rak.deadline(120)).joined
    rak.ns.enqueue_downlink(rak.config.dut.dev_eui, 5, b"\xca\xfe")
    sent = rak.console.send_uplink(2, b"\x01\x02", confirmed=False, deadline=rak.deadline(60))
    assert sent.status == "sent" and sent.acked is None and sent.line == "+EVT:TX_DONE"
    (downlink,) = sent.downlinks
    assert (downlink.port, downlink.payload, downlink.slot) == (5, b"\xca\xfe", "1")
    assert isinstance(downlink.rssi, float) and isinstance(downlink.snr, float) and downlink.time <= sent.time
    assert rak.console.downlinks() == [downlink]
    assert rak.console.read_downlink() == (5, b"\xca\xfe")
    assert [(u.fport, u.payload) for u in rak.uplinks] == [(2, b"\x01\x02")]

    acked = rak.console.send_uplink(3, b"\x03", confirmed=True, deadline=rak.deadline(60))
    assert acked.status == "acked" and acked.acked and acked.downlinks == ()
    rak.ns.faults.inject(rak.config.dut.dev_eui, Fault.CORRUPT_MIC)  # the ack fails its MIC: dropped
    lost = rak.console.send_uplink(3, b"\x04", confirmed=True, deadline=rak.deadline(60))
    assert lost.status == "not_acked" and lost.acked is False and lost.line == "+EVT:SEND_CONFIRMED_FAILED(4)"
    with pytest.raises(ConsoleUnsupported, match="rak3172: the dialect has no frame counter query"):
        rak.console.frame_counters()


def test_uplink_before_join_is_a_command_error(rak: VirtualDut) -> None:
    with pytest.raises(ConsoleCommandError) as caught:
        rak.console.send_uplink(2, b"\x01", confirmed=False, deadline=rak.deadline(30))
    err = caught.value
    assert err.code == "AT_NO_NETWORK_JOINED" and err.command == "AT+SEND=2:01"
    assert "'AT+SEND=2:01' was answered 'AT_NO_NETWORK_JOINED'" in str(err) and str(rak.console.transcript.path) in str(err)


def test_command_error_names_command_reply_and_code(rak: VirtualDut) -> None:
    with pytest.raises(ConsoleCommandError) as caught:
        rak.console.command("AT+DEVEUI=XYZ")
    err = caught.value
    assert isinstance(err, AssertionError)  # a product failure
    assert (err.command, err.reply, err.code) == ("AT+DEVEUI=XYZ", "AT_PARAM_ERROR", "AT_PARAM_ERROR")
    with pytest.raises(ConsoleCommandError, match="AT_COMMAND_NOT_FOUND"):
        rak.console.command("AT+NOSUCH=1")


def test_timeout_message_names_pattern_tail_and_log(rak: VirtualDut) -> None:
    with pytest.raises(ConsoleTimeout) as caught:
        rak.console.command("AT+VER=?", expect=r"^NEVER$", deadline=rak.deadline(1))
    err = caught.value
    message = str(err)
    assert "/^NEVER$/ in reply to 'AT+VER=?'" in message and re.search(r"within [01]\.\d rig s", message)
    assert re.search(r"> AT\+VER=\?\n.*< AT\+VER=\S+\n.*< OK", message)  # the cleaned tail
    assert err.log_path == str(rak.console.transcript.path) and err.log_path in message


def test_reset_waits_for_the_banner_and_the_probe(rak: VirtualDut) -> None:
    fw = rak.rig.firmware
    assert fw is not None
    boots = len(fw.boots)
    rak.console.reset(rak.deadline(20))
    assert len(fw.boots) == boots + 1 and fw.boots[-1] == "reset"
    text = rak.console.transcript.text()
    assert re.search(r"> ATZ\n(.*\n)*.*< Current Work Mode: LoRaWAN\.\n.*> AT\n.*< OK", text)


def test_relay_commands_and_the_passphrase_mask(rak: VirtualDut) -> None:
    help_lines = rak.console.relay_command("help")
    assert help_lines[0] == "commands:" and any("set datarate" in line for line in help_lines)
    assert rak.console.relay_command("set key correct horse battery") == ["key set"]
    assert rak.console.relay_command("set datarate SF9") == ["datarate set to SF9"]
    assert rak.console.relay_command("get datarate") == ["SF9"]
    with pytest.raises(ConsoleCommandError) as caught:
        rak.console.relay_command("set txpower 99")
    assert caught.value.code == "txpower must be 2..15 dBm"
    text = rak.console.transcript.text()
    assert "correct horse battery" not in text and "> set key ****" in text
    assert "  set key <passphrase>" in text  # the help text is not mistaken for a key


# -- Seeed LoRa-E5 ------------------------------------------------------------------------------------


def test_e5_identity_key_and_join(e5: VirtualDut) -> None:
    identity = e5.console.identity()
    assert identity["dev_eui"] == str(e5.config.dut.dev_eui) and identity["version"]
    e5.console.set_app_key(e5.config.dut.app_key)
    text = e5.console.transcript.text()
    assert e5.config.dut.app_key.reveal_hex().upper() not in text.upper()
    assert '> AT+KEY=APPKEY,"****"' in text and "< +KEY: APPKEY ****" in text
    e5.console.set_activation("otaa")
    result = e5.console.join(e5.deadline(120))
    assert result.joined and result.line == "+JOIN: Network joined"
    again = e5.console.join(e5.deadline(30))  # answered at once
    assert again.joined and again.line == "+JOIN: Joined already"


def test_e5_uplink_downlink_and_counters(e5: VirtualDut) -> None:
    assert e5.console.join(e5.deadline(120)).joined
    e5.ns.enqueue_downlink(e5.config.dut.dev_eui, 7, b"\x48\x69")
    sent = e5.console.send_uplink(2, b"\x01\x02", confirmed=False, deadline=e5.deadline(60))
    assert sent.status == "sent" and sent.line == "+MSGHEX: Done"
    (downlink,) = sent.downlinks
    assert (downlink.port, downlink.payload, downlink.slot) == (7, b"Hi", "1")  # RXWIN1 from the next line
    assert downlink.rssi is not None and downlink.snr is not None
    acked = e5.console.send_uplink(2, b"\x03", confirmed=True, deadline=e5.deadline(60))
    assert acked.status == "acked" and acked.line == "+CMSGHEX: ACK Received"
    e5.ns.faults.inject(e5.config.dut.dev_eui, Fault.CORRUPT_MIC)
    lost = e5.console.send_uplink(2, b"\x04", confirmed=True, deadline=e5.deadline(60))
    assert lost.status == "not_acked" and lost.line == "+CMSGHEX: Done"  # Done with no "ACK Received"
    fw = e5.rig.firmware
    assert fw is not None
    counters = e5.console.frame_counters()
    assert (counters.up, counters.down) == (fw.fcnt_up, fw.fcnt_down) and counters.up >= 3
    assert [u.fport for u in e5.uplinks] == [2, 2, 2]


def test_e5_command_error_and_reset(e5: VirtualDut) -> None:
    with pytest.raises(ConsoleCommandError) as caught:
        e5.console.set_class("B")  # the virtual E5 has no class B
    assert caught.value.code == "-1" and caught.value.reply == "+CLASS: ERROR(-1)"
    with pytest.raises(ConsoleCommandError, match="Please join network first"):
        e5.console.send_uplink(2, b"\x01", confirmed=False, deadline=e5.deadline(30))
    with pytest.raises(ConsoleUnsupported, match="join status"):
        e5.console.join_status()
    e5.console.reset(e5.deadline(20))
    assert e5.console.identity()["dev_eui"] == str(e5.config.dut.dev_eui)
