"""The virtual gateway's ChirpStack Gateway Bridge v4 (JSON over MQTT), against a real mosquitto
with a paho client playing ChirpStack."""

from __future__ import annotations

import base64
import itertools
import json
import random
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from hil.clock import ManualClock, ScaledClock
from hil.sim.broker import Broker, start_broker
from hil.sim.gateway import TMST_MODULO, BridgeConnectionError, ChirpStackBridge, Concentrator
from hil.sim.radio import RadioMedium
from hil.sim.scheduler import Scheduler
from tests.unit.sim.test_gateway_support import FakeDut, pump, thread_names

PREFIX = "eu868/"
_ids = itertools.count(1)


def new_gateway_id() -> str:
    return f"0016c001f153{next(_ids):04x}"


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with start_broker() as b:
        yield b


class FakeChirpStack:
    """A paho client subscribed as ChirpStack is: ``eu868/gateway/+/event/+`` and the conn state."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = (f"{PREFIX}gateway/+/event/+",)) -> None:
        self.messages: list[tuple[str, dict[str, Any] | bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fake-cs-{next(_ids)}")
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(t, 0) for t in topics])
        assert subscribed.wait(5), "fake ChirpStack did not get its SUBACK"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body: dict[str, Any] | bytes = json.loads(message.payload)
        except ValueError:
            body = message.payload
        with self.cond:
            self.messages.append((message.topic, body, bool(message.retain)))
            self.cond.notify_all()

    def bodies(self, suffix: str) -> list[Any]:
        with self.cond:
            return [body for topic, body, _ in self.messages if topic.endswith(suffix)]

    def wait_for(self, suffix: str, count: int = 1, timeout_s: float = 5.0) -> list[Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.bodies(suffix)) >= count, timeout_s), \
                f"no {count} x {suffix} within {timeout_s} s; got {self.messages}"
        return self.bodies(suffix)

    def down(self, gateway_id: str, body: dict[str, Any] | bytes, command: str = "down") -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(f"{PREFIX}gateway/{gateway_id}/command/{command}", payload).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Rig:
    def __init__(self, broker: Broker, clock: ManualClock | ScaledClock | None = None, **gw: Any) -> None:
        self.clock = clock or ManualClock(start=0.0)
        self.scheduler = Scheduler(self.clock)
        self.medium = RadioMedium(self.scheduler)
        self.gateway = Concentrator(self.medium, self.scheduler, **gw)
        self.dut = FakeDut(self.medium, self.scheduler)
        self.gateway_id = new_gateway_id()
        self.bridge = ChirpStackBridge(self.gateway, self.scheduler, broker.host, broker.port, self.gateway_id,
                                       PREFIX, rng=random.Random(7))
        self.cs = FakeChirpStack(broker)

    def uplink(self) -> tuple[Any, dict[str, Any]]:
        """The DUT sends; the gateway publishes event/up (run on the manual scheduler)."""
        before = len(self.cs.bodies("/event/up"))
        tx = self.dut.send()
        self.scheduler.run_until(tx.end)
        return tx, self.cs.wait_for("/event/up", before + 1)[-1]

    def close(self) -> None:
        self.bridge.stop()
        self.cs.close()


def downlink(context: str, *delays_s: float | None, downlink_id: int = 894104280, gateway_id: str = "") -> dict[str, Any]:
    items = []
    for n, delay in enumerate(delays_s):
        timing: dict[str, Any] = {"immediately": {}} if delay is None else {"delay": {"delay": f"{delay:g}s"}}
        items.append({
            "phyPayload": "YKb+agGgAwCSzNbb",
            "txInfo": {
                "frequency": 868100000 if n == 0 else 869525000, "power": 14,
                "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7 if n == 0 else 12,
                                        "codeRate": "CR_4_5", "polarizationInversion": True}},
                "timing": timing, "context": context,
            },
        })
    return {"downlinkId": downlink_id, "items": items, "gatewayId": gateway_id}


@pytest.fixture
def rig(broker: Broker) -> Iterator[Rig]:
    r = Rig(broker)
    r.bridge.start()
    try:
        yield r
    finally:
        r.close()


def test_uplink_is_published_as_an_uplink_frame(rig: Rig) -> None:
    rig.clock.advance(42.0)
    tx, up = rig.uplink()
    tmst = round(tx.end * 1_000_000)
    assert up["phyPayload"] == base64.b64encode(tx.phy_payload).decode()
    assert up["txInfo"] == {"frequency": 868100000,
                            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}}
    rx = up["rxInfo"]
    assert rx["gatewayId"] == rig.gateway_id and isinstance(rx["uplinkId"], int) and 0 <= rx["uplinkId"] < 2**32
    assert base64.b64decode(rx["context"]) == tmst.to_bytes(4, "big")
    assert rx["crcStatus"] == "CRC_OK" and rx["rssi"] == -76 and isinstance(rx["snr"], float)
    assert "channel" not in rx  # channel 0 is a default, omitted
    assert rx["gwTime"].endswith("Z") and rx["gwTime"].startswith("2023-11-14T22:14:")
    assert rig.bridge.uplinks_published == 1


def test_class_a_downlink_goes_out_at_uplink_end_plus_delay_exactly(rig: Rig) -> None:
    rig.clock.advance(7.0)
    tx, up = rig.uplink()
    rig.cs.down(rig.gateway_id, downlink(up["rxInfo"]["context"], 1, 2, gateway_id=rig.gateway_id))
    pump(rig.scheduler, lambda: len(rig.cs.bodies("/event/ack")) == 1)
    ack = rig.cs.wait_for("/event/ack")[0]
    assert ack == {"gatewayId": rig.gateway_id, "downlinkId": 894104280, "items": [{"status": "OK"}, {}]}
    rig.scheduler.run_until(tx.end + 3.0)
    assert len(rig.dut.heard) == 1
    down = rig.dut.heard[0].tx
    assert down.start == pytest.approx(tx.end + 1.0, abs=1e-6)
    assert (down.frequency_hz, down.spreading_factor, down.phy_payload) == (868_100_000, 7, base64.b64decode("YKb+agGgAwCSzNbb"))


def test_too_late_rx1_falls_back_to_rx2(rig: Rig) -> None:
    tx, up = rig.uplink()
    rig.clock.advance(1.0 - 0.030)  # RX1 is due in 30 ms: less than the 32.5 ms the JIT queue needs
    rig.cs.down(rig.gateway_id, downlink(up["rxInfo"]["context"], 1, 2))
    pump(rig.scheduler, lambda: len(rig.cs.bodies("/event/ack")) == 1)
    assert rig.cs.bodies("/event/ack")[0]["items"] == [{"status": "TOO_LATE"}, {"status": "OK"}]
    rig.scheduler.run_until(tx.end + 4.0)
    assert [r.tx.spreading_factor for r in rig.dut.heard] == [12]
    assert rig.dut.heard[0].tx.start == pytest.approx(tx.end + 2.0, abs=1e-6)


def test_both_windows_missed(rig: Rig) -> None:
    tx, up = rig.uplink()
    rig.clock.advance(5.0)
    rig.cs.down(rig.gateway_id, downlink(up["rxInfo"]["context"], 1, 2))
    pump(rig.scheduler, lambda: len(rig.cs.bodies("/event/ack")) == 1)
    assert rig.cs.bodies("/event/ack")[0]["items"] == [{"status": "TOO_LATE"}, {"status": "TOO_LATE"}]


def test_immediately_timing(rig: Rig) -> None:
    rig.clock.advance(3.0)
    rig.cs.down(rig.gateway_id, downlink("", None, downlink_id=5))
    pump(rig.scheduler, lambda: len(rig.cs.bodies("/event/ack")) == 1)
    assert rig.cs.bodies("/event/ack")[0]["items"] == [{"status": "OK"}]
    rig.scheduler.run_for(3.0)
    assert rig.dut.heard[0].tx.start == pytest.approx(4.0, abs=1e-6)  # JIT queue: now + 1 s


def test_context_round_trip_across_the_counter_wrap(broker: Broker) -> None:
    r = Rig(broker, tmst_offset=TMST_MODULO - 500_000)
    r.bridge.start()
    try:
        r.clock.advance(0.2)
        tx, up = r.uplink()
        context = int.from_bytes(base64.b64decode(up["rxInfo"]["context"]), "big")
        assert context > TMST_MODULO - 500_000
        r.cs.down(r.gateway_id, downlink(up["rxInfo"]["context"], 1))
        pump(r.scheduler, lambda: len(r.cs.bodies("/event/ack")) == 1)
        assert r.cs.bodies("/event/ack")[0]["items"] == [{"status": "OK"}]
        r.scheduler.run_for(2.0)
        assert r.dut.heard[0].tx.start == pytest.approx(tx.end + 1.0, abs=1e-6)
    finally:
        r.close()


def test_garbage_commands_are_dropped_and_the_bridge_lives_on(rig: Rig) -> None:
    tx, up = rig.uplink()
    ctx = up["rxInfo"]["context"]
    rig.cs.down(rig.gateway_id, b"not json at all")
    rig.cs.down(rig.gateway_id, b"[1, 2]")
    rig.cs.down(rig.gateway_id, {"downlinkId": "x"})
    bad_b64 = downlink(ctx, 1, downlink_id=11)
    bad_b64["items"][0]["phyPayload"] = "***"
    rig.cs.down(rig.gateway_id, bad_b64)
    no_freq = downlink(ctx, 1, 2, downlink_id=12)
    del no_freq["items"][1]["txInfo"]["frequency"]
    rig.cs.down(rig.gateway_id, no_freq)
    rig.cs.down(rig.gateway_id, {"downlinkId": 13, "items": []})
    short_ctx = downlink("AAE=", 1, downlink_id=14)
    rig.cs.down(rig.gateway_id, short_ctx)
    gps = downlink(ctx, 1, downlink_id=15)
    gps["items"][0]["txInfo"]["timing"] = {"gpsEpoch": {"timeSinceGpsEpoch": "1s"}}
    rig.cs.down(rig.gateway_id, gps)
    rig.cs.down(rig.gateway_id, b"{}", command="config")
    rig.cs.down(rig.gateway_id, downlink(ctx, 1, downlink_id=16))
    pump(rig.scheduler, lambda: len(rig.cs.bodies("/event/ack")) == 6)
    acks = {a["downlinkId"]: a["items"] for a in rig.cs.bodies("/event/ack")}
    assert acks == {
        11: [{"status": "INTERNAL_ERROR"}],
        12: [{"status": "INTERNAL_ERROR"}, {"status": "INTERNAL_ERROR"}],
        13: [{"status": "INTERNAL_ERROR"}],
        14: [{"status": "INTERNAL_ERROR"}],
        15: [{"status": "GPS_UNLOCKED"}],
        16: [{"status": "OK"}],
    }
    assert rig.bridge.downlinks_dropped == 6 and rig.scheduler.errors == []


def test_retained_connection_state_and_clean_stop(broker: Broker) -> None:
    r = Rig(broker)
    before = thread_names()
    r.bridge.start()
    watcher = FakeChirpStack(broker, (f"{PREFIX}gateway/{r.gateway_id}/state/conn",))
    try:
        assert watcher.wait_for("/state/conn")[0] == {"gatewayId": r.gateway_id, "state": "ONLINE"}
        assert watcher.messages[0][2] is True  # retained: a late subscriber got it
        r.bridge.stop()
        assert watcher.wait_for("/state/conn", 2)[1] == {"gatewayId": r.gateway_id, "state": "OFFLINE"}
        assert not r.bridge.running
    finally:
        watcher.close()
        r.close()
    late = FakeChirpStack(broker, (f"{PREFIX}gateway/{r.gateway_id}/state/conn",))
    try:
        assert late.wait_for("/state/conn")[0]["state"] == "OFFLINE"
    finally:
        late.close()
    assert thread_names() <= before


def test_last_will_says_offline_when_the_connection_dies(broker: Broker) -> None:
    r = Rig(broker)
    r.bridge._client.reconnect_delay_set(min_delay=60, max_delay=60)  # stay dead for this test
    r.bridge.start()
    watcher = FakeChirpStack(broker, (f"{PREFIX}gateway/{r.gateway_id}/state/conn",))
    try:
        watcher.wait_for("/state/conn")
        sock = r.bridge._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # the TCP connection drops without DISCONNECT
        assert watcher.wait_for("/state/conn", 2)[1]["state"] == "OFFLINE"
    finally:
        watcher.close()
        r.close()


def test_bad_broker_address_is_a_rig_error(broker: Broker) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    r = Rig(broker)
    bridge = ChirpStackBridge(r.gateway, r.scheduler, "127.0.0.1", port, r.gateway_id)
    with pytest.raises(BridgeConnectionError, match=f"127.0.0.1:{port}"):
        bridge.start()
    r.cs.close()
    with pytest.raises(ValueError, match="16 hex"):
        ChirpStackBridge(r.gateway, r.scheduler, "127.0.0.1", port, "xyz")


def test_join_accept_on_a_running_scaled_clock(broker: Broker, compressed_clock: Any) -> None:
    """End to end with the scheduler thread running: ChirpStack answers a join in RX1 (5 s)."""
    r = Rig(broker, clock=compressed_clock(50))
    r.scheduler.start()
    r.bridge.start()
    try:
        tx = r.dut.send()
        up = r.cs.wait_for("/event/up")[0]
        r.cs.down(r.gateway_id, downlink(up["rxInfo"]["context"], 5, 6))
        assert r.cs.wait_for("/event/ack")[0]["items"] == [{"status": "OK"}, {}]
        done = threading.Event()
        r.scheduler.call_at(tx.end + 5.5, done.set)
        assert r.clock.wait(done, 30.0)
        assert len(r.dut.heard) == 1
        assert r.dut.heard[0].tx.start == pytest.approx(tx.end + 5.0, abs=1e-6)
    finally:
        r.close()
        r.scheduler.stop()


def test_restart_after_stop(broker: Broker) -> None:
    r = Rig(broker)
    try:
        r.bridge.start()
        r.bridge.stop()
        r.bridge.start()
        assert r.bridge.running
        tx, up = r.uplink()
        assert up["rxInfo"]["gatewayId"] == r.gateway_id
    finally:
        r.close()
