"""The virtual Shelly Gen2 meter on a real broker, observed with paho-mqtt."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hil.clock import Deadline, ManualClock, SystemClock
from hil.sim.broker import Broker, start_broker
from hil.sim.instruments.smart_meter import EnergyCounter, ShellyConfig, ShellyMeter, SmartMeterError
from hil.sim.mains import RelayContact
from hil.sim.scheduler import Scheduler

PREFIX = "shellyplus1pm-hil"
WAIT_S = 3.0  # real seconds: the bound of every wait for a message from the broker


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = start_broker()
    yield b
    b.stop()


def connect_with_retry(client: mqtt.Client, broker: Broker) -> None:
    """start_broker() may return a moment before mosquitto listens: retry refused connects briefly."""
    real = SystemClock()
    deadline = Deadline.after(real, WAIT_S)
    while True:
        try:
            client.connect(broker.host, broker.port)
            return
        except ConnectionRefusedError:
            if deadline.expired:
                raise
            real.sleep(0.02)


def closed_seconds(transitions: list[tuple[float, bool]], start: float, end: float) -> float:
    """How long the contact was closed within [start, end) (bounces included)."""
    total, closed_since = 0.0, None
    for at, closed in transitions + [(end, False)]:
        at = min(max(at, start), end)
        if closed and closed_since is None:
            closed_since = at
        elif not closed and closed_since is not None:
            total += at - closed_since
            closed_since = None
    return total


class Observer:
    """A paho client collecting every message on the meter's topics and on ``hil/rpc``."""

    def __init__(self, broker: Broker, prefix: str = PREFIX) -> None:
        self.messages: dict[str, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{prefix}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        connect_with_retry(self.client, broker)
        self.client.loop_start()
        self.client.subscribe([(f"{prefix}/status/#", 1), (f"{prefix}/events/#", 1), (f"{prefix}/online", 1),
                               ("hil/rpc", 1)])
        assert subscribed.wait(WAIT_S), "observer not subscribed"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = msg.payload.decode(errors="replace")
        try:
            value: Any = json.loads(payload)
        except json.JSONDecodeError:
            value = payload
        self._queue(msg.topic).put(value)

    def _queue(self, topic: str) -> queue.Queue[Any]:
        with self._lock:
            return self.messages.setdefault(topic, queue.Queue())

    def next(self, topic: str) -> Any:
        try:
            return self._queue(topic).get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"nothing on {topic} within {WAIT_S} s") from None

    def pending(self, topic: str) -> int:
        return self._queue(topic).qsize()

    def rpc(self, request: dict[str, Any] | bytes) -> dict[str, Any]:
        payload = request if isinstance(request, bytes) else json.dumps(request).encode()
        self.client.publish(f"{PREFIX}/rpc", payload, qos=1)
        return self.next("hil/rpc")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def rig(broker: Broker):  # type: ignore[no-untyped-def]
    scheduler = Scheduler(ManualClock(unix_start=1_700_000_040.0))
    contact = RelayContact(scheduler)
    observer = Observer(broker)
    meter = ShellyMeter(contact, scheduler, host=broker.host, port=broker.port,
                        config=ShellyConfig(topic_prefix=PREFIX, status_period_s=30.0))
    meter.start()
    yield scheduler, contact, meter, observer
    meter.stop()
    observer.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]


STATUS = f"{PREFIX}/status/switch:0"
EVENTS = f"{PREFIX}/events/rpc"


def test_initial_status_and_online(rig) -> None:  # type: ignore[no-untyped-def]
    _, _, _, observer = rig
    status = observer.next(STATUS)
    assert status == {"id": 0, "source": "init", "output": False, "apower": 0.0, "voltage": 0.0, "current": 0.0,
                      "aenergy": {"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1_700_000_040},
                      "temperature": {"tC": 40.0, "tF": 104.0}}
    event = observer.next(EVENTS)
    assert event["method"] == "NotifyFullStatus" and event["src"] == PREFIX
    assert event["params"]["switch:0"]["output"] is False
    assert observer.next(f"{PREFIX}/online") is True


def test_status_on_contact_change_with_the_right_numbers(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, meter, observer = rig
    observer.next(STATUS)  # init
    contact.drive_coil(True)
    scheduler.run_for(0.1)  # operate, bounce, then the meter's debounce
    status = observer.next(STATUS)
    assert status["source"] == "switch"
    assert status["output"] is True
    assert status["voltage"] == 230.0
    assert status["apower"] == 100.0  # 230 V across the 529 ohm lamp
    assert status["current"] == 0.435
    observer.next(EVENTS)  # NotifyFullStatus
    notify = observer.next(EVENTS)
    assert notify["method"] == "NotifyStatus"
    assert notify["params"]["switch:0"] == {"id": 0, "output": True, "apower": 100.0, "voltage": 230.0,
                                            "current": 0.435}
    contact.drive_coil(False)
    scheduler.run_for(0.1)
    status = observer.next(STATUS)
    assert (status["output"], status["voltage"], status["apower"], status["current"]) == (False, 0.0, 0.0, 0.0)
    assert meter.published_count == 3  # init, on, off: the contact bounce published nothing of its own


def test_without_debounce_every_contact_change_is_published(broker: Broker) -> None:
    scheduler = Scheduler(ManualClock())
    contact = RelayContact(scheduler)
    observer = Observer(broker, prefix="shelly-raw")
    meter = ShellyMeter(contact, scheduler, host=broker.host, port=broker.port,
                        config=ShellyConfig(topic_prefix="shelly-raw", debounce_s=0.0))
    meter.start()
    try:
        observer.next("shelly-raw/status/switch:0")  # init
        contact.drive_coil(True)
        scheduler.run_for(0.1)
        outputs = [observer.next("shelly-raw/status/switch:0")["output"] for _ in contact.transitions]
        assert outputs == [closed for _, closed in contact.transitions]  # bounces included
        assert outputs[-1] is True and len(outputs) > 1
    finally:
        meter.stop()
        observer.close()


def test_periodic_status_carries_the_energy(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, meter, observer = rig
    observer.next(STATUS)
    contact.drive_coil(True)  # closes 10 ms later, settles 2 ms after that
    scheduler.run_until(0.05)
    observer.next(STATUS)
    scheduler.run_until(30.0)
    status = observer.next(STATUS)
    assert status["source"] == "timer"
    closed_at = contact.transitions[0][0]
    assert status["aenergy"]["total"] == pytest.approx(100.0 * (30.0 - closed_at) / 3600.0, abs=1e-3)
    scheduler.run_until(90.0)
    observer.next(STATUS)  # t = 60
    status = observer.next(STATUS)  # t = 90, rig unix time 1_700_000_130: minute 1_700_000_100 is running
    assert status["aenergy"]["total"] == pytest.approx(2.5, abs=1e-3)
    assert status["aenergy"]["minute_ts"] == 1_700_000_100
    # the last complete minute (rig t 0..60 s) at 100 W from the moment the contact closed
    expected_mwh = 100.0 * closed_seconds(contact.transitions, 0.0, 60.0) / 3.6
    assert status["aenergy"]["by_minute"][0] == pytest.approx(expected_mwh, abs=1e-3)
    notify = [observer.next(EVENTS) for _ in range(5)][-1]
    assert notify["params"]["switch:0"]["aenergy"] == status["aenergy"]


def test_rpc_get_status_set_and_device_info(rig) -> None:  # type: ignore[no-untyped-def]
    scheduler, contact, meter, observer = rig
    observer.next(STATUS)
    contact.drive_coil(True)
    scheduler.run_for(0.1)
    observer.next(STATUS)
    reply = observer.rpc({"id": 1, "src": "hil", "method": "Switch.GetStatus", "params": {"id": 0}})
    assert reply["id"] == 1 and reply["src"] == PREFIX and reply["dst"] == "hil"
    assert reply["result"]["output"] is True and reply["result"]["apower"] == 100.0
    reply = observer.rpc({"id": 2, "src": "hil", "method": "Switch.Set", "params": {"id": 0, "on": False}})
    assert reply["result"] == {"was_on": True}
    scheduler.run_for(0.1)
    status = observer.next(STATUS)
    assert (status["source"], status["output"], status["voltage"]) == ("MQTT", False, 0.0)
    reply = observer.rpc({"id": 3, "src": "hil", "method": "Shelly.GetDeviceInfo"})
    assert reply["result"]["gen"] == 2 and reply["result"]["id"] == PREFIX
    reply = observer.rpc({"id": 4, "src": "hil", "method": "Shelly.GetStatus"})
    assert reply["result"]["switch:0"]["output"] is False


def test_malformed_and_unknown_requests_get_errors_or_are_dropped(rig) -> None:  # type: ignore[no-untyped-def]
    _, _, meter, observer = rig
    reply = observer.rpc({"id": 5, "src": "hil", "method": "Switch.Explode", "params": {"id": 0}})
    assert reply == {"id": 5, "src": PREFIX, "dst": "hil",
                     "error": {"code": 404, "message": "No handler for Switch.Explode"}}
    reply = observer.rpc(b'{"id": 6, "src": "hil", "method": "Switch.GetStatus", "params": {')  # truncated JSON
    assert reply["id"] == 6 and reply["error"]["code"] == -32700
    reply = observer.rpc({"id": 7, "src": "hil", "method": "Switch.GetStatus", "params": {"id": 3}})
    assert reply["error"] == {"code": -105, "message": "Argument 'id', value 3 not found!"}
    reply = observer.rpc({"id": 8, "src": "hil", "method": "Switch.Set", "params": {"id": 0, "on": "yes"}})
    assert reply["error"]["code"] == -103
    reply = observer.rpc({"id": 9, "src": "hil", "params": {}})
    assert reply["error"]["code"] == -103
    # no src to answer: dropped; the next request's reply is the next thing on hil/rpc
    for junk in (b"\xff\xfe not json", b"[1, 2, 3]", b'{"id": 10, "method": "Switch.GetStatus"}', b""):
        meter.handle_rpc(junk)
        observer.client.publish(f"{PREFIX}/rpc", junk, qos=1)
    reply = observer.rpc({"id": 11, "src": "hil", "method": "Switch.GetStatus", "params": {"id": 0}})
    assert reply["id"] == 11 and "result" in reply
    assert meter.running


def test_stop_leaves_no_thread_and_ignores_later_changes(broker: Broker) -> None:
    scheduler = Scheduler(ManualClock())
    contact = RelayContact(scheduler)
    meter = ShellyMeter(contact, scheduler, host=broker.host, port=broker.port,
                        config=ShellyConfig(topic_prefix="shelly-stop"))
    meter.start()
    assert scheduler.pending() == 1  # the periodic status
    meter.stop()
    assert scheduler.pending() == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]
    contact.drive_coil(True)
    scheduler.run_for(120.0)  # the contact still calls the meter's listener: it must stay quiet
    assert meter.published_count == 1
    meter.stop()  # idempotent


def test_no_broker_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scheduler = Scheduler(ManualClock())
    meter = ShellyMeter(RelayContact(scheduler), scheduler, host="127.0.0.1", port=port,
                        config=ShellyConfig(connect_timeout_s=0.2))
    with pytest.raises(SmartMeterError, match=f"127.0.0.1:{port} within 0.2 s"):
        meter.start()


def test_energy_counter_splits_minutes() -> None:
    clock = ManualClock(unix_start=1_700_000_070.0)  # 30 s into the minute starting at 1_700_000_040
    counter = EnergyCounter(clock.now, clock.unix_time)
    counter.update(60.0)
    clock.advance(90.0)  # 30 s in the first minute, 60 s in the next
    snap = counter.snapshot()
    assert snap["total"] == pytest.approx(1.5)
    assert snap["minute_ts"] == 1_700_000_160  # the current minute's start
    assert snap["by_minute"][:2] == [pytest.approx(1000.0), pytest.approx(500.0)]
