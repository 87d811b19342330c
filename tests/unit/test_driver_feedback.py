"""drivers.feedback: the DMM through pyvisa-py against the virtual 34461A, and the smart meter through
paho-mqtt against the virtual Shelly on a real broker, both measuring a virtual relay contact."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import deque
from typing import Any, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.feedback import MAINS_THRESHOLD_V, Dmm, FeedbackMeter, Reading, SmartMeter
from drivers.instruments import InstrumentError
from hil.clock import Deadline, ManualClock, ScaledClock, SystemClock
from hil.sim.broker import Broker, start_broker
from hil.sim.instruments.dmm import VirtualDmm
from hil.sim.instruments.smart_meter import ShellyConfig, ShellyMeter
from hil.sim.mains import MainsConfig, RelayContact
from hil.sim.scheduler import Scheduler

TIME_SCALE = 50
WAIT_S = 150.0  # rig seconds (3 real seconds at x50): the bound of every wait on the broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def paho_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]


# -- the DMM --------------------------------------------------------------------------------------


@pytest.fixture
def dmm_rig() -> Iterator[tuple[Dmm, VirtualDmm, RelayContact, Scheduler]]:
    """A contact on a manual clock (no bounce), the virtual DMM across it, the driver on the same clock."""
    scheduler = Scheduler(ManualClock(start=10.0))
    contact = RelayContact(scheduler, MainsConfig(bounces=0))
    virtual = VirtualDmm(contact.output_voltage_rms)
    virtual.start()
    dmm = Dmm(virtual.resource, "keysight-34461a", scheduler.clock)
    dmm.open()
    yield dmm, virtual, contact, scheduler
    dmm.close()
    virtual.stop()
    assert virtual.server.threads() == []


def test_dmm_reads_mains_when_the_contact_closes_and_zero_when_it_opens(dmm_rig) -> None:  # type: ignore[no-untyped-def]
    dmm, virtual, contact, scheduler = dmm_rig
    assert dmm.idn is not None and ",34461A," in dmm.idn
    assert virtual.function == "VOLT:AC" and virtual.ac_band == 20.0  # configured once at open
    assert [line.text for line in dmm.session.transcript if line.direction == ">"][1:] == [
        "SYST:ERR?", "CONF:VOLT:AC 750", "SYST:ERR?", "VOLT:AC:BAND 20", "SYST:ERR?"]
    assert dmm.ac_voltage() == 0.0
    assert not dmm.mains_present()
    contact.drive_coil(True)
    scheduler.run_for(0.1)
    assert dmm.ac_voltage() == 230.0
    assert dmm.mains_present()
    contact.drive_coil(False)
    scheduler.run_for(0.1)
    assert dmm.ac_voltage() == 0.0
    assert dmm.events == [Reading(10.0, 0.0, "dmm"), Reading(10.0, 0.0, "dmm"), Reading(10.1, 230.0, "dmm"),
                          Reading(10.1, 230.0, "dmm"), Reading(10.2, 0.0, "dmm")]
    assert isinstance(dmm, FeedbackMeter)


@pytest.mark.parametrize("volts, present", [(230.0, True), (115.0, True), (100.0, True), (99.9, False),
                                            (28.0, False), (0.0, False)])
def test_the_mains_threshold_tells_115_v_mains_from_leakage(volts: float, present: bool) -> None:
    assert MAINS_THRESHOLD_V == 100.0
    clock = ManualClock()
    virtual = VirtualDmm(lambda: volts)
    virtual.start()
    try:
        with Dmm(virtual.resource, "keysight-34461a", clock) as dmm:
            assert dmm.mains_present() is present
            assert dmm.mains_present(threshold_v=volts + 1) is False
    finally:
        virtual.stop()


def test_dmm_overload_and_bad_ranges() -> None:
    clock = ManualClock()
    virtual = VirtualDmm(lambda: 800.0)  # beyond the 750 V range
    virtual.start()
    try:
        with Dmm(virtual.resource, "keysight-34461a", clock) as dmm:
            with pytest.raises(InstrumentError, match=r"overload \(\+9\.9.*750"):
                dmm.ac_voltage()
            assert dmm.events == []
        with Dmm(virtual.resource, "keysight-34461a", clock, range="AUTO") as auto:
            assert "CONF:VOLT:AC AUTO" in [line.text for line in auto.session.transcript]
    finally:
        virtual.stop()
    with pytest.raises(ValueError, match="above profile keysight-34461a's top AC range 750 V"):
        Dmm("x", "keysight-34461a", clock, range=1000.0)
    with pytest.raises(ValueError, match="rigol-dm3058 has no auto range"):
        Dmm("x", "rigol-dm3058", clock, range="AUTO")


class FakeDm3058:
    """Just enough of a Rigol DM3058 in its native command set."""

    def __init__(self) -> None:
        self.resource = "USB0::0x1AB1::0x09C4::DM3R000000001::INSTR"
        self.sent: list[str] = []
        self.replies: deque[str] = deque()

    def write(self, command: str) -> None:
        self.sent.append(command)
        answers = {"*IDN?": "Rigol Technologies,DM3058,DM3R000000001,01.01.00.01.11.00", ":SYST:ERR?": '0,"No error"',
                   ":MEAS:VOLT:AC?": "2.301000e+02"}
        if command in answers:
            self.replies.append(answers[command])

    def read(self) -> str:
        return self.replies.popleft()

    def close(self) -> None:
        pass


def test_rigol_dm3058_profile_takes_a_range_index() -> None:
    fake = FakeDm3058()
    with Dmm(fake.resource, "rigol-dm3058", ManualClock(), range=230.0, transport=fake) as dmm:
        assert dmm.ac_voltage() == pytest.approx(230.1)
    assert fake.sent == ["*IDN?", ":SYST:ERR?", ":FUNC:VOLT:AC", ":SYST:ERR?", ":MEAS:VOLT:AC 4", ":SYST:ERR?",
                         ":MEAS:VOLT:AC?"]


def test_an_unreachable_dmm_is_an_instrument_error_naming_it() -> None:
    resource = f"TCPIP0::127.0.0.1::{free_port()}::SOCKET"
    with pytest.raises(InstrumentError, match=resource.replace(".", r"\.")):
        Dmm(resource, "keysight-34461a", ManualClock()).open()


# -- the smart meter ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = start_broker()
    yield b
    b.stop()


@pytest.fixture
def scheduler(compressed_clock: Any) -> Iterator[Scheduler]:
    sched = Scheduler(compressed_clock(TIME_SCALE), name="meter-test-scheduler")
    sched.start()
    yield sched
    sched.stop()
    assert not sched.errors


@pytest.fixture
def shelly(broker: Broker, scheduler: Scheduler) -> Iterator[tuple[ShellyMeter, RelayContact]]:
    contact = RelayContact(scheduler)
    meter = ShellyMeter(contact, scheduler, host=broker.host, port=broker.port,
                        config=ShellyConfig(topic_prefix="shelly-hil-test"))
    meter.start()
    yield meter, contact
    meter.stop()


def test_smart_meter_follows_the_relay_output(broker: Broker, scheduler: Scheduler, shelly) -> None:  # type: ignore[no-untyped-def]
    virtual, contact = shelly
    clock = scheduler.clock
    meter = SmartMeter(broker.url, "shelly-hil-test", clock, status_timeout_s=WAIT_S, rpc_timeout_s=WAIT_S,
                       connect_timeout_s=WAIT_S)
    with meter:
        assert isinstance(meter, FeedbackMeter)
        assert meter.ac_voltage() == 0.0  # the first status: the reply to the GetStatus sent at open
        assert not meter.mains_present()
        contact.drive_coil(True)
        status = meter.wait_status(lambda s: s.voltage > 0, WAIT_S)  # the notification after the debounce
        assert (status.voltage, status.output, status.source) == (230.0, True, "switch")
        assert meter.ac_voltage() == 230.0 and meter.mains_present()
        asked = clock.now()
        fresh = meter.request_status()
        assert fresh.voltage == 230.0 and fresh.apower == 100.0 and fresh.time >= asked
        contact.drive_coil(False)
        meter.wait_status(lambda s: s.voltage == 0.0, WAIT_S)
        assert not meter.mains_present()
        volts = [r.volts for r in meter.events]
        assert volts == [0.0, 0.0, 230.0, 230.0, 0.0]
        assert [r.time for r in meter.events] == sorted(r.time for r in meter.events)
        assert len(paho_threads()) == 2  # the virtual Shelly's and ours
    assert len(paho_threads()) == 1  # ours is gone
    assert "hunter2" not in repr(SmartMeter(broker.url, "p", clock, "user", "hunter2"))


def raw_client(broker: Broker, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    real = SystemClock()
    deadline = Deadline.after(real, 3.0)
    while True:
        try:
            client.connect(broker.host, broker.port)
            break
        except ConnectionRefusedError:
            if deadline.expired:
                raise
            real.sleep(0.02)
    client.loop_start()
    return client


def stop_client(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_a_malformed_status_is_logged_and_ignored(broker: Broker, scheduler: Scheduler,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.feedback")
    publisher = raw_client(broker, "fake-shelly-status")
    try:
        with SmartMeter(broker.url, "shelly-bad", scheduler.clock, connect_timeout_s=WAIT_S) as meter:
            topic = meter.status_topic
            for payload in (b"{not json", b'{"voltage": "230"}', b"[1, 2]", b"\xff\xfe"):
                publisher.publish(topic, payload, qos=1)
            publisher.publish(topic, json.dumps({"id": 0, "output": True, "voltage": 229.5}), qos=1)
            status = meter.wait_status(lambda s: True, WAIT_S)  # published after the bad ones: they came first
            assert status.voltage == 229.5 and meter.ac_voltage() == 229.5
            assert meter.ignored == 4
    finally:
        stop_client(publisher)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("malformed JSON" in w for w in warnings) and any("'voltage': expected a number" in w for w in warnings)


def test_rpc_errors_and_silence_are_instrument_errors(broker: Broker, scheduler: Scheduler) -> None:
    clock = scheduler.clock
    fake = raw_client(broker, "fake-shelly-rpc")
    answered = threading.Event()

    def answer(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        request = json.loads(msg.payload)
        client.publish(f"{request['src']}/rpc", json.dumps({"id": request["id"], "src": "shelly-err",
                                                            "error": {"code": -105, "message": "nope"}}), qos=1)
        answered.set()

    subscribed = threading.Event()
    fake.on_message = answer
    fake.on_subscribe = lambda *args: subscribed.set()
    fake.subscribe("shelly-err/rpc", qos=1)
    assert clock.wait(subscribed, WAIT_S)
    try:
        with SmartMeter(broker.url, "shelly-err", clock, connect_timeout_s=WAIT_S, rpc_timeout_s=WAIT_S) as meter:
            with pytest.raises(InstrumentError, match="error -105: nope") as err:
                meter.request_status()
            assert err.value.code == -105 and err.value.command == "Switch.GetStatus"
        with SmartMeter(broker.url, "nobody-home", clock, connect_timeout_s=WAIT_S, rpc_timeout_s=5.0,
                        status_timeout_s=5.0) as silent:
            with pytest.raises(InstrumentError, match="no reply to Switch.GetStatus on hil-[0-9a-f]+/rpc within 5"):
                silent.request_status()
            with pytest.raises(InstrumentError, match="no matching status on nobody-home/status/switch:0"):
                silent.ac_voltage()
    finally:
        stop_client(fake)


def test_an_unreachable_broker_is_an_instrument_error_naming_it() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    meter = SmartMeter(url, "shelly-x", ScaledClock(TIME_SCALE), "user", "s3cret")
    with pytest.raises(InstrumentError, match=f"{url}.*shelly-x") as err:
        meter.open()
    assert "s3cret" not in str(err.value) and err.value.resource == f"{url} shelly-x"
    assert paho_threads() == []
    with pytest.raises(InstrumentError, match="not open"):
        meter.ac_voltage()
    with pytest.raises(ValueError, match="expected mqtt://host"):
        SmartMeter("http://x", "p", ScaledClock(TIME_SCALE))
