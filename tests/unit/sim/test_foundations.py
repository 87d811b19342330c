"""Virtual-rig foundations: scheduler, radio medium, supply rail, relay contact, broker."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from hil.clock import ManualClock
from hil.sim.broker import start_broker
from hil.sim.mains import MainsConfig, RelayContact
from hil.sim.power import SupplyChannel
from hil.sim.radio import RadioMedium, Reception, Transmission
from hil.sim.scheduler import Scheduler


def test_scheduler_runs_in_time_order_on_a_manual_clock() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    seen: list[tuple[float, str]] = []
    sched.call_at(2.0, lambda: seen.append((clock.now(), "b")))
    sched.call_at(1.0, lambda: seen.append((clock.now(), "a")))
    cancelled = sched.call_at(1.5, lambda: seen.append((clock.now(), "x")))
    cancelled.cancel()
    sched.call_at(2.0, lambda: sched.call_later(0.5, lambda: seen.append((clock.now(), "c"))))
    sched.run_until(3.0)
    assert seen == [(1.0, "a"), (2.0, "b"), (2.5, "c")] and clock.now() == 3.0


def test_scheduler_survives_a_failing_callback() -> None:
    sched = Scheduler(ManualClock())
    sched.call_later(1, lambda: 1 / 0)
    ran = []
    sched.call_later(2, lambda: ran.append(True))
    sched.run_for(3)
    assert ran and isinstance(sched.errors[0], ZeroDivisionError)


def test_scheduler_thread_on_a_scaled_clock(compressed_clock: Any) -> None:
    clock = compressed_clock(100)
    sched = Scheduler(clock)
    sched.start()
    done = threading.Event()
    at: list[float] = []
    sched.call_later(1.0, lambda: (at.append(clock.now()), done.set()))
    try:
        assert clock.wait(done, 30.0)
        assert at[0] >= 1.0
    finally:
        sched.stop()
    assert not sched.running


class Ear:
    def __init__(self, name: str) -> None:
        self.name = name
        self.heard: list[tuple[float, Reception]] = []

    def on_air(self, reception: Reception) -> None:
        self.heard.append((reception.tx.end, reception))


def test_medium_delivers_at_end_of_transmission_to_others() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    medium = RadioMedium(sched, path_loss_db=100)
    a, b = Ear("dut"), Ear("gateway")
    medium.attach(a)
    medium.attach(b)
    medium.transmit(Transmission(b"x", 868100000, 7, 125000, "4/5", 14.0, 0.0, 0.05, False, "dut"))
    sched.run_until(0.04)
    assert not b.heard
    sched.run_until(0.05)
    assert len(b.heard) == 1 and not a.heard
    rx = b.heard[0][1]
    assert rx.rssi == -86.0 and rx.snr == pytest.approx(-86.0 - (-174 + 50.97 + 6), abs=0.1)


class Resistor:
    def __init__(self, ohms: float) -> None:
        self.ohms = ohms

    def current_at(self, volts: float) -> float:
        return volts / self.ohms


def test_supply_rail_cc_mode_and_protection() -> None:
    ch = SupplyChannel()
    seen: list[float] = []
    ch.attach(Resistor(50.0), seen.append)
    ch.configure(voltage=5.0, current_limit=1.0)
    assert ch.terminal_voltage() == 0.0
    ch.set_output(True)
    assert ch.terminal_voltage() == 5.0 and ch.measured_current() == pytest.approx(0.1) and seen[-1] == 5.0
    ch.configure(current_limit=0.05)  # demand 0.1 A > limit: constant-current, voltage halves
    assert ch.terminal_voltage() == pytest.approx(2.5) and ch.measured_current() == pytest.approx(0.05)
    ch.ovp_level = 6.0
    ch.configure(voltage=7.0)
    assert not ch.output_on and ch.tripped and seen[-1] == 0.0


def test_relay_contact_operates_bounces_and_welds() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    contact = RelayContact(sched, MainsConfig(operate_time_s=0.01, bounce_time_s=0.002, bounces=2))
    states: list[bool] = []
    contact.subscribe(states.append)
    contact.drive_coil(True)
    sched.run_for(0.009)
    assert not contact.closed and contact.output_voltage_rms() == 0.0
    sched.run_for(0.01)
    assert contact.closed and contact.output_voltage_rms() == 230.0
    assert states == [True, False, True, False, True]  # bounce, then settled closed
    contact.welded = True
    contact.drive_coil(False)
    sched.run_for(1.0)
    assert contact.closed


@pytest.mark.parametrize("kind", ["auto", "amqtt"])
def test_broker_starts_serves_and_stops(kind: str) -> None:
    broker = start_broker(kind)  # type: ignore[arg-type]
    try:
        got = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: got.set()
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("t/#", qos=1)
        subscribed = threading.Event()
        client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            assert subscribed.wait(10)
            client.publish("t/x", b"hi", qos=1)
            assert got.wait(10)
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()
    assert broker.process.poll() is not None


def test_broker_output_is_read_to_its_end() -> None:
    """A broker logs every connection: its pipe is drained after the readiness line, or it would fill
    (64 KiB) and block the broker mid-session."""
    import subprocess
    import sys

    from hil.sim.child_process import OutputDrain

    chatty = "import sys; print('broker running', file=sys.stderr, flush=True); sys.stderr.write('log line\\n' * 40000)"
    proc = subprocess.Popen([sys.executable, "-c", chatty], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    drain = OutputDrain(proc.stderr, " running", "test-drain")
    try:
        assert drain.wait(30) == "broker running"
        assert proc.wait(30) == 0  # 360 KB written after the marker: it did not block
        drain.join(30)
        assert drain.last_lines(2) == "log line\nlog line" and len(drain.tail) == 50
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stderr.close()


HOLD_BROKER = """
import sys
from hil.sim.broker import start_broker
broker = start_broker(sys.argv[1])
print(broker.process.pid, flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("kind", ["auto", "amqtt"])
def test_broker_dies_with_a_killed_rig_process(kind: str) -> None:
    """A test run killed with SIGKILL leaves no broker running (parent-death signal)."""
    import os
    import subprocess
    import sys

    from hil.clock import Deadline, SystemClock

    proc = subprocess.Popen([sys.executable, "-c", HOLD_BROKER, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    broker_pid = int(proc.stdout.readline())
    proc.kill()
    proc.wait(30)

    def running() -> bool:
        try:
            with open(f"/proc/{broker_pid}/status") as status:
                return not any(line.startswith("State:") and "Z" in line for line in status)
        except FileNotFoundError:
            return False

    clock, pause = SystemClock(), threading.Event()
    deadline = Deadline.after(clock, 10.0)
    while running() and not deadline.expired:
        clock.wait(pause, 0.05)
    survived = running()
    evidence = ""
    if survived:  # what the process was doing, for the failure message
        try:
            with open(f"/proc/{broker_pid}/status") as status:
                evidence = "; ".join(line.strip() for line in status
                                     if line.startswith(("Name", "State", "PPid", "SigBlk", "SigIgn", "SigCgt")))
            with open(f"/proc/{broker_pid}/wchan") as wchan:
                evidence += f"; wchan {wchan.read().strip()}"
        except OSError:
            pass
        os.kill(broker_pid, 9)
    assert not survived, f"the {kind} broker (pid {broker_pid}) outlived the killed process by 10 s: {evidence}"


def test_scheduler_records_how_late_callbacks_ran() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    sched.call_at(1.0, lambda: clock.advance(0.3))  # a callback that takes 0.3 rig s
    sched.call_at(1.1, lambda: None)  # runs at 1.3: 0.2 s late
    sched.run_until(2.0)
    assert sched.max_lag_s == pytest.approx(0.2)
    assert (sched.callbacks, sched.late_callbacks) == (2, 0)
    sched.call_at(2.0, lambda: clock.advance(0.7))
    sched.call_at(2.1, lambda: None)  # 0.6 s late: over LATE_S
    sched.run_until(3.0)
    assert (sched.callbacks, sched.late_callbacks) == (4, 1) and sched.max_lag_s == pytest.approx(0.6)
