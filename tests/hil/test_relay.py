"""The 230 V relay's state feedback, checked against an independent measurement (runs on any rig).

Three sources are compared in one assertion that names each: the state the controller commanded,
what the DUT reports (its commanded state and its mains sense, relay protocol v1 arg[0..3]) and
the feedback meter at the relay output (DMM or smart meter; mains present at or above the rig
file's ``feedback.mains_threshold_v``). A DUT that reports the commanded state while its contact
is welded fails with a message that says so. A DUT whose feedback merely repeats the command can
only be told from an honest one when the output differs from the command: a welded contact, or
mains missing at its input. The rig's ``mains`` part (an AC source feeding the relay) takes mains
away: with the feed off and the relay commanded on, the DUT must report its output dead (mains
not sensed, status OUTPUT_FAULT) as the meter measures it; with the feed back on, sense and meter
agree on the feed's voltage. That check names four sources in one assertion: the command, the
DUT's report, the meter and the feed.

After a power cycle the relay announces itself unsolicited (0x83) with its counter unchanged, and
it comes up in its documented safe state, off, whether it was commanded off or on before: the
command, its report and the meter all say OFF (``power_up_state_after_on`` records what it did).
While the DUT is unpowered the output is dead (the contact opens with the coil).

Timing, in rig seconds (relay-protocol.md "Responses and timing"):

* SET_OUTPUT is answered 1 s after the relay switches. The test takes the switching instant from
  the meter (polled every :data:`POLL_S`) and the answer's start from the network's reception
  time minus its airtime, and accepts ``1 s ± ANSWER_TOLERANCE_S`` (0.25 s): the contact operates
  in about 10 ms, the poll adds up to 50 ms, and the virtual rig's timers run a few tens of ms of
  rig time late (time scale 20). The host stall measured meanwhile (:class:`HostStalls`) is
  allowed on top: on the virtual rig the DUT runs in the test process, so a stalled host delays
  it by as much; across a stall above :data:`STALL_LIMIT_S` the command is measured again (a rig
  fault if every attempt stalled); likewise when another uplink of the DUT kept its radio busy
  (its RX windows open) when the answer was due. Before each timed command the test waits until the DUT's duty
  cycle lets it answer at once (EU868: 99 × the airtime of its last uplink, about 7 s), so the
  answer is not held back by the radio rules.
* Latency, per command: command handed to the network → change measured at the output. It
  includes the gateway's scheduling margin and the downlink's airtime (Class C on RX2, SF12 in
  EU868: about 1.8 s); recorded with ``record_property`` (``latency_set_on_s``...) and named in
  the three-source assertion's message.

The helpers (relay brought up, radio free, output watch, host stalls, three-source check) live in
``relay_support.py``, shared with ``test_fcnt.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from hil.faults import RigFault
from hil.relay.controller import NoCommunication
from hil.relay.protocol import RESPONSE, Command
from tests.hil.relay_support import (
    ANSWER_DELAY_S,
    ANSWER_TOLERANCE_S,
    JOIN_WITHIN_S,
    OUTAGE_S,
    RADIO_BUSY_AFTER_UPLINK_S,
    SETTLE_WITHIN_S,
    STALL_LIMIT_S,
    TIMING_ATTEMPTS,
    HostStalls,
    answer_event,
    data_uplinks,
    describe,
    feed_state,
    first_tx,
    four_sources,
    on_off,
    relay_up,
    set_and_watch,
    three_sources,
    threshold_v,
    wait_radio_free,
    wait_reading,
)
from tests.hil.support import uplink_start

pytestmark = pytest.mark.relay



def test_set_get_nop_agree_with_the_bench_measurement(rig, dut, network, relay, meter,  # type: ignore[no-untyped-def]
                                                      record_property) -> None:
    """SET on and off: three sources agree, the answer comes about 1 s after the switch, the
    latency is recorded; GET reports the actual state; NOP answers with its counter."""
    relay_up(rig, dut, relay)
    for on in (True, False):
        timed_set(rig, network, relay, meter, on, record_property)

    threshold = threshold_v(rig)
    got = relay.get_output()
    assert got.cmd == RESPONSE | Command.GET_OUTPUT, f"GET answered with {describe(got)}"
    three_sources("GET after SET OFF", False, got, meter.ac_voltage(), threshold)
    counter = relay.counter
    pong = relay.nop()
    assert pong.cmd == RESPONSE | Command.NOP and pong.fcnt == counter, (
        f"NOP with counter {counter} answered with {describe(pong)}")


def timed_set(rig: Any, network: Any, relay: Any, meter: Any, on: bool, record_property: Any) -> None:
    """SET ``on``: the three sources agree, and the DUT answers about 1 s after its output changed.
    A measurement across a host stall longer than :data:`STALL_LIMIT_S` is taken again (after
    switching back), at most :data:`TIMING_ATTEMPTS` times."""
    name = on_off(on).lower()
    for attempt in range(1, TIMING_ATTEMPTS + 1):
        wait_radio_free(rig, network)
        with HostStalls(rig) as stalls:
            sent, answer, watch = set_and_watch(rig, relay, meter, on)
        volts = meter.ac_voltage()
        latency = None if watch.change is None else watch.change - first_tx(relay, sent, Command.SET_OUTPUT)
        record_property(f"latency_set_{name}_s", None if latency is None else round(latency, 3))
        assert answer.cmd == RESPONSE | Command.SET_OUTPUT, f"SET {on_off(on)} answered with {describe(answer)}"
        three_sources(f"SET {on_off(on)} (command sent -> output change: "
                      f"{'no change measured' if latency is None else f'{latency:.3f} rig s'})",
                      on, answer, volts, threshold_v(rig))
        assert watch.change is not None, (
            f"SET {on_off(on)}: the meter saw no change of the output (readings {watch.readings[:3]}...)")
        if stalls.worst > STALL_LIMIT_S and attempt < TIMING_ATTEMPTS:
            relay.set_output(not on)  # the host stalled: switch back and measure again
            continue
        if stalls.worst > STALL_LIMIT_S:
            raise RigFault(f"SET {on_off(on)}: the test host stalled for up to {stalls.worst:.2f} rig s in each of "
                           f"{TIMING_ATTEMPTS} attempts: the DUT's answer timing cannot be judged")
        carried = answer_event(rig, network, relay, answer, sent)
        answered = uplink_start(network, carried)
        delay = answered - watch.change
        # Another uplink of the DUT whose RX windows were still open when the answer was due keeps
        # the radio busy (LoRaWAN Class A windows come first): that is no timing verdict either.
        busy = [e for e in data_uplinks(rig, network, watch.change - RADIO_BUSY_AFTER_UPLINK_S)
                if e is not carried and uplink_start(network, e) < answered]
        if busy and attempt < TIMING_ATTEMPTS:
            relay.set_output(not on)
            continue
        record_property(f"answer_after_switch_{name}_s", round(delay, 3))
        assert abs(delay - ANSWER_DELAY_S) <= ANSWER_TOLERANCE_S + stalls.worst, (
            f"SET {on_off(on)}: the DUT answered {delay:.3f} rig s after its output changed, expected "
            f"{ANSWER_DELAY_S:g} ± {ANSWER_TOLERANCE_S:g} s (+{stalls.worst:.3f} s the test host stalled; "
            f"latency command -> output {latency:.3f} s); its other uplinks meanwhile: "
            f"{[(round(uplink_start(network, e), 3), e.fport, e.fcnt) for e in busy] or 'none'}")
        return


def test_after_a_power_cycle_the_relay_comes_up_off_and_announces_it(rig, dut, network, relay, meter,  # type: ignore[no-untyped-def]
                                                                     power, record_property) -> None:
    """Power cycles from OFF and from ON (see the module docstring for what each must show)."""
    hello = relay_up(rig, dut, relay)
    threshold = threshold_v(rig)
    if hello.relay_state:  # a previous session left it on: start from the commanded safe state
        relay.set_output(False)

    for commanded in (False, True):
        if commanded:
            wait_radio_free(rig, network)
            answer = relay.set_output(True)
            three_sources("SET ON before the power cycle", True, answer, meter.ac_voltage(), threshold)
        expected = relay.counter
        relay.discard_pending()
        power.output(False)
        dead = wait_reading(rig, meter, lambda v: v < threshold, SETTLE_WITHIN_S)
        assert dead < threshold, (
            f"with the DUT unpowered (relay commanded {on_off(commanded)} before), the bench meter still reads "
            f"{dead:.1f} V at the relay output: the contact did not open without coil power (welded?)")
        rig.clock.sleep(OUTAGE_S)
        power.output(True)
        try:
            announced = relay.wait_announcement(JOIN_WITHIN_S)
        except NoCommunication as exc:
            raise AssertionError(f"after a power cycle the relay did not announce itself (unsolicited 0x83): "
                                 f"{exc}") from None
        volts = meter.ac_voltage()
        record_property(f"power_up_state_after_{on_off(commanded).lower()}", on_off(announced.relay_state))
        assert announced.fcnt == expected, (
            f"after a power cycle the relay announced counter {announced.fcnt}, it expected {expected} before: "
            "its counter did not survive")
        came_up_on = announced.relay_state or volts >= threshold
        three_sources(f"power-up after {on_off(commanded)} (announced unsolicited)", False, announced, volts,
                      threshold, expected="safe state",
                      cause=(f"the relay came up ON after a power cycle from {on_off(commanded)}: not its documented "
                             f"safe state (OFF)" + (" -- it restored its last commanded state" if commanded else ""))
                      if came_up_on else None)


def test_without_mains_at_its_input_the_relay_reports_its_output_dead(rig, dut, network, relay, meter,  # type: ignore[no-untyped-def]
                                                                       mains) -> None:
    """The relay's feed switched off, SET ON: the DUT reports its output dead (mains not sensed,
    OUTPUT_FAULT) as the meter measures it (about 0 V); feed back on: the DUT's sense and the meter
    agree on the feed's voltage. Command, DUT report, meter and feed are named in one assertion."""
    relay_up(rig, dut, relay)
    threshold = threshold_v(rig)
    nominal = float(rig.rig.mains.voltage)

    mains.output(False)
    wait_radio_free(rig, network)
    try:
        answer = relay.set_output(True)  # answered 1 s after switching: the feed has long dropped
    except NoCommunication as exc:
        raise AssertionError(f"SET ON with the mains feed OFF: the relay did not answer: {exc}") from None
    four_sources("SET ON with the relay's mains feed OFF", True, answer, meter.ac_voltage(), threshold,
                 feed_state(mains), nominal)

    mains.output(True)
    wait_reading(rig, meter, lambda v: v >= threshold, SETTLE_WITHIN_S)  # the contact is closed: live at once
    wait_radio_free(rig, network)
    got = relay.get_output()
    assert got.cmd == RESPONSE | Command.GET_OUTPUT, f"GET answered with {describe(got)}"
    four_sources("GET with the mains feed back ON (relay still commanded ON)", True, got, meter.ac_voltage(),
                 threshold, feed_state(mains), nominal)
