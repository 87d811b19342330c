"""drivers.gateway.chirpstack_mqtt against a real broker (mosquitto via hil.sim.broker) and a raw
paho client playing a ChirpStack Gateway Bridge v4 with the JSON marshaler (lorawan-facts §10)."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.gateway import ChirpStackMqttTransport, TransportConnectError, TransportError
from drivers.gateway.chirpstack_mqtt import decode_conn_state, decode_tx_ack, decode_uplink, encode_downlink
from hil.protojson import ProtoJsonError
from hil.clock import ScaledClock
from hil.lorawan.frames import EncryptedJoinAccept, JoinRequest, decode
from hil.network import DownlinkFrame, DownlinkItem, NetworkServer, TransportClosedError, TxAck, UplinkFrame
from hil.sim.broker import start_broker
from tests.unit.gateway_support import WAIT_S, Inbox, Observed
from tests.unit.network_support import EU868, NET_ID, otaa_config

GW = "0016c001f153a14c"
PREFIX = "eu868/"

# lorawan-facts §10, verbatim from the ChirpStack docs.
UP_EXAMPLE = (b'{"phyPayload":"gKb+agGABQABOIc6cwQ=","txInfo":{"frequency":867300000,"modulation":{"lora":'
              b'{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5"}}},"rxInfo":{"gatewayId":'
              b'"0016c001f153a14c","uplinkId":7895,"time":"2022-08-03T14:37:43.383634108Z","rssi":-52,'
              b'"snr":13.75,"context":"xwx0GQ=="}}')
DOWN_EXAMPLE = (
    '{"downlinkId":894104280,"items":[{"phyPayload":"YKb+agGgAwCSzNbb","txInfo":{"frequency":867300000,"power":14,'
    '"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5","polarizationInversion":true}},'
    '"timing":{"delay":{"delay":"1s"}},"context":"xwx0GQ=="}},{"phyPayload":"YKb+agGgAwCSzNbb","txInfo":{"frequency":'
    '869525000,"power":27,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":12,"codeRate":"CR_4_5",'
    '"polarizationInversion":true}},"timing":{"delay":{"delay":"2s"}},"context":"xwx0GQ=="}}],'
    '"gatewayId":"0016c001f153a14c"}'
)
ACK_EXAMPLE = b'{"gatewayId":"0016c001f153a14c","downlinkId":894104280,"items":[{"status":"OK"},{}]}'
CTX = bytes.fromhex("c70c7419")


def _example_frame() -> DownlinkFrame:
    phy = bytes.fromhex("60a6fe6a01a0030092ccd6db")
    return DownlinkFrame(894104280, GW, [
        DownlinkItem(phy, 867_300_000, 7, 125_000, 14, 1.0, CTX),
        DownlinkItem(phy, 869_525_000, 12, 125_000, 27, 2.0, CTX),
    ])


# -- codec ---------------------------------------------------------------------------------------


def test_encode_downlink_is_the_documented_json():
    assert encode_downlink(_example_frame()) == json.loads(DOWN_EXAMPLE)


def test_encode_downlink_immediately_and_defaults_omitted():
    frame = DownlinkFrame(0, GW.upper(), [DownlinkItem(b"\x60", 869_525_000, 12, 125_000, 0, None, b"",
                                                       polarization_inversion=False)])
    body = encode_downlink(frame)
    assert body == {"gatewayId": GW, "items": [{"phyPayload": "YA==", "txInfo": {
        "frequency": 869525000,
        "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 12, "codeRate": "CR_4_5"}},
        "timing": {"immediately": {}}}}]}
    half = DownlinkFrame(1, GW, [DownlinkItem(b"\x60", 868_100_000, 7, 125_000, 14.4, 1.5, CTX)])
    assert encode_downlink(half)["items"][0]["txInfo"]["timing"] == {"delay": {"delay": "1.500s"}}
    assert encode_downlink(half)["items"][0]["txInfo"]["power"] == 14


@pytest.mark.parametrize("frame, match", [
    (DownlinkFrame(1, "gw-1", []), "gateway_id: expected a gateway ID of 16 hex digits"),
    (DownlinkFrame(2**32, GW, []), r"downlink_id: expected an integer in 0\.\.4294967295"),
    (DownlinkFrame(1, GW, [DownlinkItem(b"\x60", 868_100_000, 7, 125_000, 14, 1.0, code_rate="4/9")]), "4/9"),
])
def test_encode_downlink_rejects_what_gw_proto_cannot_carry(frame, match):
    with pytest.raises(ProtoJsonError, match=match):
        encode_downlink(frame)


def test_decode_documented_uplink():
    up = decode_uplink(UP_EXAMPLE, topic_gateway_id=GW, now=12.5)
    assert up == UplinkFrame(bytes.fromhex("80a6fe6a018005000138873a7304"), 867_300_000, 7,
                             125_000, "4/5", -52, 13.75, GW, CTX, 7895, 12.5)


def test_decode_uplink_tolerates_omitted_defaults_proto_names_and_numbers():
    payload = json.dumps({"phy_payload": "QAEC", "tx_info": {"frequency": "868100000", "modulation": {"lora": {
        "bandwidth": 125000, "spreading_factor": 9, "code_rate": 2}}}, "rx_info": {"gateway_id": GW.upper()}})
    up = decode_uplink(payload.encode(), topic_gateway_id="ffffffffffffffff", now=None)
    assert (up.frequency_hz, up.spreading_factor, up.code_rate) == (868_100_000, 9, "4/6")
    assert (up.rssi, up.snr, up.context, up.uplink_id, up.gateway_id) == (0, 0.0, b"", 0, GW)
    legacy = json.dumps({"phyPayload": "QAEC", "txInfo": {"frequency": 868100000, "modulation": {"lora": {
        "bandwidth": 125000, "spreadingFactor": 7, "codeRateLegacy": "4/5"}}}})
    assert decode_uplink(legacy.encode(), topic_gateway_id=GW).gateway_id == GW  # from the topic


def _up(**changes: Any) -> bytes:
    body = json.loads(UP_EXAMPLE)
    for path, value in changes.items():
        node = body
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize("payload, match", [
    (_up(phyPayload="gKb+ag!!"), "phyPayload: expected base64"),
    (_up(phyPayload=""), "phyPayload: missing"),
    (_up(txInfo__frequency="868.1"), r"txInfo\.frequency: expected an integer"),
    (_up(txInfo__modulation={"fsk": {"datarate": 50000}}), "fsk modulation; the network server takes LoRa"),
    (_up(txInfo__modulation__lora__spreadingFactor=0), "spreadingFactor/bandwidth: missing"),
    (_up(txInfo__modulation__lora__codeRate="4/5"), r"txInfo\.modulation\.lora\.codeRate: expected one of"),
    (_up(rxInfo__rssi="loud"), r"rxInfo\.rssi: expected an integer"),
    (_up(rxInfo__context=17), r"rxInfo\.context: expected base64"),
    (_up(rxInfo__gatewayId="0016c0"), r"rxInfo\.gatewayId: expected a gateway ID"),
    (_up(rxInfo__crcStatus="BAD_CRC"), "BAD_CRC"),
    (b"\x0a\x0c\x80\xa6\xfe\x6a\x01\x80\x05\x00\x01\x38\x87\x3a", "marshaler"),
])
def test_decode_uplink_errors_name_the_field(payload, match):
    with pytest.raises(ProtoJsonError, match=match):
        decode_uplink(payload, topic_gateway_id=GW)


def test_decode_documented_ack_and_conn_state():
    assert decode_tx_ack(ACK_EXAMPLE, topic_gateway_id=GW) == TxAck(894104280, ["OK", "IGNORED"], GW)
    assert decode_tx_ack(b'{"gatewayId":"0016c001f153a14c","items":[{"status":2}]}', topic_gateway_id=GW) == \
        TxAck(0, ["TOO_LATE"], GW)
    assert decode_conn_state(b'{"gatewayId":"0016c001f153a14c","state":"ONLINE"}', topic_gateway_id=GW) == \
        (GW, "ONLINE")
    assert decode_conn_state(b'{"gatewayId":"0016c001f153a14c"}', topic_gateway_id=GW) == (GW, "OFFLINE")
    with pytest.raises(ProtoJsonError, match=r"items\[0\]\.status: expected one of IGNORED, OK"):
        decode_tx_ack(b'{"items":[{"status":"SENT"}]}', topic_gateway_id=GW)


# -- against a broker ----------------------------------------------------------------------------


class FakeBridge:
    """A raw paho client playing ChirpStack Gateway Bridge (JSON marshaler) for one gateway."""

    def __init__(self, broker, clock: ScaledClock, gateway_id: str = GW) -> None:
        self.topic = f"{PREFIX}gateway/{gateway_id}/"
        self.real_wait_s = clock.real_seconds(WAIT_S)
        self.commands = Inbox(clock)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bridge-{gateway_id}")
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, msg: self.commands.put((msg.topic, json.loads(msg.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{self.topic}command/#")
        self.client.loop_start()
        assert clock.wait(ready, WAIT_S), "the fake bridge was not subscribed in time"

    def publish(self, kind: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(self.topic + kind, payload, qos=1, retain=retain).wait_for_publish(self.real_wait_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()  # paho otherwise closes its wake-up socket pair only when collected


@pytest.fixture(scope="module")
def broker():
    with start_broker("auto") as b:  # mosquitto, or amqtt where it is not installed
        yield b


@pytest.fixture
def clock(compressed_clock):
    return compressed_clock(100)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks():
    """Every thread and descriptor a test opens is gone when it ends."""
    threads, fds = set(threading.enumerate()), _fds()
    yield
    left = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert _fds() <= fds, "file descriptors leaked"


@pytest.fixture
def bridge(broker, clock):
    fake = FakeBridge(broker, clock)
    yield fake
    fake.close()


def _transport(broker, clock, **kw: Any) -> tuple[ChirpStackMqttTransport, Inbox, Inbox]:
    ups, acks = Inbox(clock), Inbox(clock)
    transport = ChirpStackMqttTransport(broker.host, broker.port, topic_prefix=kw.pop("topic_prefix", "eu868"),
                                        clock=clock, **kw)
    transport.start(ups.put, acks.put)
    return transport, ups, acks


def test_uplink_downlink_ack_and_state_round_trip(broker, clock, bridge, no_leaks):
    count = threading.active_count()
    transport, ups, acks = _transport(broker, clock, client_id="ns-test")
    try:
        assert transport.topics == [f"eu868/gateway/+/{k}" for k in ("event/up", "event/ack", "state/conn")]
        before = clock.now()
        bridge.publish("event/up", UP_EXAMPLE)
        (up,) = ups.wait(1, "uplinks")
        assert up.phy_payload == bytes.fromhex("80a6fe6a018005000138873a7304")
        assert (up.frequency_hz, up.spreading_factor, up.bandwidth_hz, up.code_rate) == (867_300_000, 7, 125_000, "4/5")
        assert (up.rssi, up.snr, up.gateway_id, up.context, up.uplink_id) == (-52, 13.75, GW, CTX, 7895)
        assert before <= up.time <= clock.now() and transport.connected

        transport.send_downlink(_example_frame())
        ((topic, body),) = bridge.commands.wait(1, "commands")
        assert topic == f"eu868/gateway/{GW}/command/down"
        assert body["downlinkId"] == 894104280 and body["gatewayId"] == GW and len(body["items"]) == 2
        rx1, rx2 = body["items"]
        assert rx1["phyPayload"] == "YKb+agGgAwCSzNbb"
        assert rx1["txInfo"]["frequency"] == 867300000 and rx1["txInfo"]["power"] == 14
        assert rx1["txInfo"]["modulation"] == {"lora": {"bandwidth": 125000, "spreadingFactor": 7,
                                                        "codeRate": "CR_4_5", "polarizationInversion": True}}
        assert rx1["txInfo"]["timing"] == {"delay": {"delay": "1s"}} and rx1["txInfo"]["context"] == "xwx0GQ=="
        assert rx2["txInfo"]["frequency"] == 869525000 and rx2["txInfo"]["power"] == 27
        assert rx2["txInfo"]["modulation"]["lora"]["spreadingFactor"] == 12
        assert rx2["txInfo"]["timing"] == {"delay": {"delay": "2s"}}
        assert body == json.loads(DOWN_EXAMPLE)

        bridge.publish("event/ack", ACK_EXAMPLE)
        assert acks.wait(1, "acks") == [TxAck(894104280, ["OK", "IGNORED"], GW)]
        assert acks.items[0].sent

        bridge.publish("state/conn", f'{{"gatewayId":"{GW}","state":"ONLINE"}}', retain=True)
        bridge.publish("event/up", UP_EXAMPLE)  # in order after the state: once it is here, so is the state
        ups.wait(2, "uplinks")
        assert transport.gateway_states == {GW: "ONLINE"}
    finally:
        bridge.publish("state/conn", b"", retain=True)  # clear the retained state for the other tests
        transport.close()
    transport.close()  # idempotent
    assert threading.active_count() == count
    with pytest.raises(TransportClosedError):
        transport.send_downlink(_example_frame())


def test_malformed_messages_are_logged_and_dropped(broker, clock, bridge, caplog, no_leaks):
    transport, ups, acks = _transport(broker, clock)
    try:
        with caplog.at_level(logging.WARNING, logger="drivers.gateway.chirpstack_mqtt"):
            bridge.publish("event/up", b"{not json")
            bridge.publish("event/up", _up(rxInfo__context="@@@"))
            bridge.publish("event/up", b"\x0a\x04\x01\x02\x03\x04\xff\xfe")  # protobuf marshaler
            bridge.publish("event/ack", b'{"downlinkId":"x"}')
            bridge.publish("state/conn", b'{"state":"SLEEPING"}')
            bridge.publish("event/up", UP_EXAMPLE)  # the link survives: this one arrives
            assert len(ups.wait(1, "uplinks")) == 1
        assert acks.items == [] and transport.gateway_states == {}
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 5, messages
        topic = f"eu868/gateway/{GW}/"
        assert messages[0].startswith(f"dropped MQTT message on {topic}event/up: UplinkFrame: not JSON")
        assert "rxInfo.context: expected base64" in messages[1]
        assert "marshaler" in messages[2]
        assert messages[3].startswith(f"dropped MQTT message on {topic}event/ack: downlinkId: expected an integer")
        assert messages[4].startswith(f"dropped MQTT message on {topic}state/conn: state: expected one of OFFLINE")
    finally:
        transport.close()


def test_a_failing_handler_does_not_stop_the_link(broker, clock, bridge, caplog, no_leaks):
    seen = Inbox(clock)

    def handler(up: UplinkFrame) -> None:
        seen.put(up)
        if len(seen.items) == 1:
            raise RuntimeError("server bug")

    transport = ChirpStackMqttTransport(broker.host, broker.port, clock=clock)
    transport.start(handler, lambda ack: None)
    try:
        with caplog.at_level(logging.ERROR, logger="drivers.gateway.chirpstack_mqtt"):
            bridge.publish("event/up", UP_EXAMPLE)
            bridge.publish("event/up", UP_EXAMPLE)
            seen.wait(2, "uplinks")
        assert any("uplink handler failed" in r.getMessage() for r in caplog.records)
    finally:
        transport.close()


def test_one_gateway_only(broker, clock, bridge, no_leaks):
    other = FakeBridge(broker, clock, "0102030405060708")
    transport, ups, _ = _transport(broker, clock, gateway_id=GW.upper(), topic_prefix=PREFIX)
    try:
        assert transport.topics[0] == f"eu868/gateway/{GW}/event/up"
        other.publish("event/up", _up(rxInfo__gatewayId="0102030405060708"))
        bridge.publish("event/up", UP_EXAMPLE)
        assert [u.gateway_id for u in ups.wait(1, "uplinks")] == [GW]
    finally:
        transport.close()
        other.close()


def test_unreachable_broker_is_a_connect_error_naming_host_and_port(clock, no_leaks):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = ChirpStackMqttTransport("127.0.0.1", port, clock=clock, username="ns", password="s3cret-pw")
    with pytest.raises(TransportConnectError, match=f"cannot connect to MQTT broker 127.0.0.1:{port}") as info:
        transport.start(lambda up: None, lambda ack: None)
    assert (info.value.host, info.value.port) == ("127.0.0.1", port)
    assert "s3cret-pw" not in repr(transport) + str(info.value) and "user 'ns'" in repr(transport)
    assert not transport.connected
    with pytest.raises(TransportError, match="before start"):
        transport.send_downlink(_example_frame())
    transport.close()


def test_silent_server_times_out_in_rig_time(clock, no_leaks):
    listener = socket.socket()  # accepts TCP but never answers CONNECT
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        transport = ChirpStackMqttTransport("127.0.0.1", port, clock=clock, connect_timeout_s=20)
        t0 = clock.now()
        with pytest.raises(TransportConnectError, match=f"127.0.0.1:{port}: no CONNACK/SUBACK within 20 rig s"):
            transport.start(lambda up: None, lambda ack: None)
        assert clock.now() - t0 >= 20
        transport.close()
    finally:
        listener.close()


def test_publish_while_disconnected_raises_transport_error(clock, no_leaks):
    broker = start_broker("auto")
    try:
        transport, _, _ = _transport(broker, clock)
        lost = threading.Event()
        client = transport._client  # white box: observe paho noticing the loss, then publish
        handler = client.on_disconnect
        client.on_disconnect = lambda *args: (handler(*args), lost.set())
        broker.stop()
        assert clock.wait(lost, WAIT_S), "paho did not notice the broker going away"
        with pytest.raises(TransportError, match=f"not published .* broker {broker.host}:{broker.port}"):
            transport.send_downlink(_example_frame())
        transport.close()
    finally:
        broker.stop()


# -- end to end: the reference network server behind the transport -------------------------------


def test_network_server_answers_a_join_through_the_bridge(broker, clock, bridge, no_leaks):
    acks = Inbox(clock)
    transport = Observed(ChirpStackMqttTransport(broker.host, broker.port, clock=clock), acks)
    server = NetworkServer(EU868, clock, net_id=NET_ID, transport=transport)
    try:
        config = otaa_config(1)
        server.add_device(config)
        phy = JoinRequest(config.join_eui, config.dev_eui, 3).signed(config.root_key).to_bytes()
        up = _up(phyPayload=base64.b64encode(phy).decode(), txInfo__frequency=868100000)
        bridge.publish("event/up", up)
        ((topic, body),) = bridge.commands.wait(1, "commands")
        assert topic == f"eu868/gateway/{GW}/command/down" and body["gatewayId"] == GW
        rx1, rx2 = (item["txInfo"] for item in body["items"])
        assert rx1["frequency"] == 868100000 and rx1["timing"] == {"delay": {"delay": "5s"}}
        assert rx1["modulation"]["lora"]["spreadingFactor"] == 7 and rx1["context"] == "xwx0GQ=="
        assert rx2["frequency"] == 869525000 and rx2["timing"] == {"delay": {"delay": "6s"}}
        assert rx2["modulation"]["lora"]["spreadingFactor"] == 12 and rx2["context"] == "xwx0GQ=="
        assert body["items"][0]["phyPayload"] == body["items"][1]["phyPayload"]
        accept = decode(base64.b64decode(body["items"][0]["phyPayload"]))
        assert isinstance(accept, EncryptedJoinAccept)
        assert accept.decrypt(config.root_key).mic_valid(config.root_key)

        bridge.publish("event/ack", json.dumps({"gatewayId": GW, "downlinkId": body["downlinkId"],
                                                "items": [{"status": "OK"}, {}]}))
        acks.wait(1, "acks at the server")
        assert server.tx_acks == [TxAck(body["downlinkId"], ["OK", "IGNORED"], GW)]
        assert server.events.last(direction="up", mtype="join_request").outcome == "join_accepted"
    finally:
        server.close()
