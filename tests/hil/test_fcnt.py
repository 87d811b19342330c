"""Frame counters: LoRaWAN FCnt rules and the relay protocol's counter and SYNC recovery (any rig).

LoRaWAN (lorawan-facts §8): a power cycle must never make the network drop the DUT's uplinks.
A DUT that keeps its session must go on counting (ABP counters "SHALL persist", LoRaWAN 1.0.4
lines 684–689; the same holds for any session kept across a reset), one that rejoins starts its
new session at FCntUp 0. The reference network drops a replayed uplink, and the DUT drops a
replayed or older downlink. Where the rig has an SWD probe and its file declares the firmware's
``fcnt_up`` NVM field, the stored next FCntUp must be past every FCnt already on air (persisted
before the TX: otherwise a power cut makes the DUT reuse counters with its session keys).

Relay protocol v1 (relay-protocol.md "Receiving" and "Controller"): a command whose counter is not
the relay's ``expected`` is never executed; the relay answers it with a SYNC response (0x83)
carrying ``expected`` 100 ms after receiving it, the controller adopts that counter and its resent
command succeeds. Frames the relay discards (wrong key, bad outer CRC, wrong length) get no answer.

Timing, in rig seconds: the SYNC response is timed from the DUT's own report of the downlink on
its console to the start of the answering uplink on air (the network's reception time minus its
airtime) and must start within 100 ms + :data:`SYNC_TOLERANCE_S` (0.15 s: the firmware's timer,
its FCntUp write before the TX and the console report each add a few tens of ms of rig time on
the virtual rig at time scale 20), plus the host stall measured meanwhile (``HostStalls`` in
test_relay.py: on the virtual rig the DUT runs in the test process); across a stall above
``STALL_LIMIT_S`` the exchange is measured again. A console that does not report the downlink
leaves only the network's stamps: then the gateway's :data:`GATEWAY_MARGIN_S` and both airtimes
are taken off the round trip (a gateway that sends sooner only makes that check more lenient).
Before a timed or "no answer" check the test waits until the DUT's duty cycle lets it answer at
once, so that the radio rules cannot hide or delay an answer. "No answer" is checked over a
bounded window: the gateway's scheduling margin, the airtime of the frames sent and
:data:`SILENCE_MARGIN_S`; the test first makes sure the gateway did transmit them.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator

import pytest

from hil.clock import Deadline
from hil.faults import RigFault
from hil.network.faults import Fault
from hil.network.transport import DownlinkFrame, DownlinkItem, UplinkFrame
from hil.relay.controller import NoCommunication, RelayController
from hil.relay.protocol import RESPONSE, Command, RelayKey, RelayMessage, encode
from tests.hil.support import airtime, send_when_free, uplink_start
from tests.hil.relay_support import (
    JOIN_WITHIN_S,
    OUTAGE_S,
    POLL_S,
    STALL_LIMIT_S,
    TIMING_ATTEMPTS,
    HostStalls,
    data_uplinks,
    describe,
    relay_up,
    threshold_v,
    wait_radio_free,
    wait_reading,
)

pytestmark = pytest.mark.fcnt

SYNC = RESPONSE | Command.SYNC
SYNC_DELAY_S = 0.100
SYNC_TOLERANCE_S = 0.15
GATEWAY_MARGIN_S = 1.0  # "immediately" (Class C): gateways send at the earliest 1 s after the command
SILENCE_MARGIN_S = 1.5  # after the last frame's end: an answer (100 ms, or 1 s for SET) would be on air
PROBE_PORT = 2  # an application port the relay ignores (downlinks there only show on the console)
RESENT_IDS = 900_000  # downlink ids of frames the test puts on air again itself
ACK_WITHIN_S = 5.0
ANSWER_SLACK_S = 5.0  # extra wait for an answer that must come (it ends the wait when it does)


# -- helpers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def other_controller(rig: Any, network: Any, counter: int) -> Iterator[RelayController]:
    """A second controller on the same relay (the bench's push-button replaced, say), with its own
    counter; it hears every uplink of the relay's port while the block runs."""
    r = rig.rig.dut.relay
    dev_eui = rig.rig.dut.lorawan.dev_eui
    controller = RelayController(RelayKey(r.passphrase.get_secret_value()),
                                 lambda payload: network.enqueue_downlink(dev_eui, r.fport, payload),
                                 rig.clock, counter=counter)
    unsubscribe = network.on_uplink(lambda up: controller.deliver(up.payload) if up.fport == r.fport else None)
    try:
        yield controller
    finally:
        unsubscribe()


def hand_over(relay: Any, counter: int) -> None:
    """Keep the session's controller in step after another one talked to the relay."""
    relay.discard_pending()
    relay.counter = counter


def rx_after(controller: Any, since: float) -> list[Any]:
    """The controller's received packets (decoded or not) at or after ``since``."""
    return [p for p in controller.log if p.direction == "rx" and p.time >= since]


def downlinks_since(network: Any, since: float) -> list[tuple[Any, ...]]:
    """The network's downlinks from ``since`` on, compactly (for failure messages)."""
    return [(round(e.time, 3), e.outcome, e.fcnt, e.payload, e.windows, e.faults)
            for e in network.events.filter(direction="down", time=lambda t: t >= since)]


def dut_reception(rig: Any, dut: Any, port: int, payload: bytes, since: float, within_s: float = 10.0) -> Any:
    """The DUT's console report of a downlink with this port and payload (None: not reported)."""
    deadline = Deadline.after(rig.clock, within_s)
    while True:
        found = [d for d in dut.downlinks() if d.time >= since and d.port == port and d.payload == payload]
        if found or deadline.expired:
            return found[0] if found else None
        rig.clock.sleep(POLL_S)


def sync_timing(rig: Any, dut: Any, network: Any, wire: bytes, sent: float, sync_wire: bytes) -> tuple[float, str, float]:
    """How long the relay took to answer ``wire`` with ``sync_wire`` once it had received it:
    (seconds, how it was measured, the network's round trip from handing it over to receiving
    the answer). SYNC responses carrying the same counter are byte-identical, so the answer is
    the first one that started on air after the command was received."""
    port = rig.rig.dut.relay.fport
    down = next(e for e in network.events.filter(direction="down", fport=port, time=lambda t: t >= sent)
                if e.payload == wire)
    received = dut_reception(rig, dut, port, wire, sent, within_s=0.0)
    earliest = received.time if received is not None else down.time + GATEWAY_MARGIN_S + airtime(network, down)
    ups = [e for e in data_uplinks(rig, network, sent, outcome="accepted", fport=port) if e.payload == sync_wire]
    up = next((e for e in ups if uplink_start(network, e) >= earliest - POLL_S), ups[-1])
    round_trip = up.time - down.time
    if received is not None:
        return uplink_start(network, up) - received.time, "from the DUT's console report of the command", round_trip
    return (round_trip - GATEWAY_MARGIN_S - airtime(network, down) - airtime(network, up),
            "from the network's stamps less the gateway margin and both airtimes", round_trip)


def listen(rig: Any, seconds: float) -> None:
    """Let ``seconds`` of rig time pass for an answer that must not come, and as much again as
    the test host stalled meanwhile (a stalled host delays the virtual DUT by as much)."""
    with HostStalls(rig) as stalls:
        rig.clock.sleep(seconds)
    if stalls.worst > 0:
        rig.clock.sleep(stalls.worst)


def silence_window(network: Any, since: float, extra_s: float = 0.0) -> float:
    """How long to listen for an answer to the downlinks handed to the network since ``since``
    (plus ``extra_s`` of airtime sent past it): the gateway's margin, their airtime, a margin."""
    downs = network.events.filter(direction="down", time=lambda t: t >= since)
    on_air = sum(airtime(network, e) for e in downs if e.dr is not None)
    return GATEWAY_MARGIN_S + on_air + extra_s + SILENCE_MARGIN_S


def resend_downlink(network: Any, event: Any) -> int:
    """Put the exact bytes of an earlier Class C downlink on air again, through the gateway;
    returns the id its TX acknowledgement will carry."""
    rate = network.region.data_rate(event.dr)
    item = DownlinkItem(event.phy_payload, event.frequency_hz, rate.spreading_factor, rate.bandwidth_hz,
                        network.downlink_power_dbm, None)
    downlink_id = RESENT_IDS + len(network.events)
    network.transport.send_downlink(DownlinkFrame(downlink_id, event.gateway_id, [item]))
    return downlink_id


def require_on_air(rig: Any, network: Any, since: float, *extra_ids: int) -> None:
    """Every downlink handed to the gateway since ``since`` was transmitted: a probe that never
    reached the air proves nothing, and a gateway refusing it is the bench's fault."""
    ids = {e.downlink_id for e in network.events.filter(direction="down", time=lambda t: t >= since)
           if e.downlink_id is not None} | set(extra_ids)
    deadline = Deadline.after(rig.clock, ACK_WITHIN_S)
    while True:
        acks = {a.downlink_id: a for a in list(network.tx_acks) if a.downlink_id in ids}
        if len(acks) == len(ids) or deadline.expired:
            break
        rig.clock.sleep(POLL_S)
    refused = {i: (acks[i].statuses if i in acks else "no acknowledgement") for i in ids
               if i not in acks or not acks[i].sent}
    if refused:
        raise RigFault(f"the gateway did not transmit the test's downlinks: {refused}")


# -- LoRaWAN counters -------------------------------------------------------------------------------


@pytest.fixture
def fcnt_nvm(rig, request):  # type: ignore[no-untyped-def]
    """The SWD probe when the rig file says where the firmware keeps its next FCntUp, else None.

    Asked for before ``dut``: importing the probe's driver (pyocd) takes the interpreter for half a
    second or more, which must happen while the DUT is still unpowered, not while the network
    answers its join.
    """
    if not nvm_declares(rig, "fcnt_up"):
        return None
    importlib.import_module("drivers.swd")
    return request.getfixturevalue("swd")


def test_fcnt_up_is_never_reused_across_a_power_cycle(rig, fcnt_nvm, dut, network, relay, power) -> None:  # type: ignore[no-untyped-def]
    """Across a power cycle the network accepts the DUT's uplinks: a rejoined DUT starts its new
    session at FCntUp 0, one that kept its session goes on counting. Where the NVM field is
    declared, the stored next FCntUp is past the last FCnt on air before and after. (The virtual
    relay node, LoRaWAN 1.0.4 OTAA, rejoins after every boot: its FCntUp persistence shows only
    in NVM.)"""
    lw = rig.rig.dut.lorawan
    swd = fcnt_nvm
    relay_up(rig, dut, relay)
    before = data_uplinks(rig, network, outcome="accepted")[-1]
    check_fcnt_in_nvm(swd, before, "before the power cycle")

    relay.discard_pending()
    cycled = rig.clock.now()
    power.power_cycle(OUTAGE_S)
    try:
        relay.wait_announcement(JOIN_WITHIN_S)
    except NoCommunication:
        dropped = [f"FCnt {e.fcnt}: {e.reason}" for e in data_uplinks(rig, network, cycled, outcome="rejected")]
        raise AssertionError(f"after a power cycle no uplink of the DUT reached the application; the network "
                             f"dropped: {dropped or 'none (nothing was sent)'}") from None
    dropped = data_uplinks(rig, network, cycled, outcome="rejected")
    assert not dropped, (f"after a power cycle the network dropped the DUT's uplinks: "
                         f"{[(e.fcnt, e.reason) for e in dropped]} (last FCntUp before: {before.fcnt})")
    after = data_uplinks(rig, network, cycled, outcome="accepted")[0]
    rejoined = network.events.filter(direction="up", dev_eui=str(lw.dev_eui), outcome="join_accepted",
                                     time=lambda t: t >= cycled)
    if rejoined:
        assert after.dev_addr == rejoined[-1].dev_addr and after.fcnt == 0, (
            f"after rejoining (DevAddr {rejoined[-1].dev_addr}) the first uplink has DevAddr {after.dev_addr}, "
            f"FCntUp {after.fcnt}: a new session starts FCntUp at 0")
    else:
        assert after.dev_addr == before.dev_addr and after.fcnt > before.fcnt, (
            f"the DUT kept its session ({lw.activation.upper()}, LoRaWAN {lw.version}) across a power cycle but "
            f"its FCntUp went from {before.fcnt} to {after.fcnt}: the counter must persist and keep increasing")
    check_fcnt_in_nvm(swd, data_uplinks(rig, network, cycled, outcome="accepted")[-1], "after the power cycle")


def nvm_declares(rig: Any, field: str) -> bool:
    """Whether the rig has an SWD probe and its file says where the firmware keeps ``field``."""
    swd = rig.rig.dut.swd
    return swd is not None and field in (swd.nvm_layout or {})


def check_fcnt_in_nvm(swd: Any, last: Any, when: str) -> None:
    """Where the firmware keeps the next FCntUp in NVM (the rig file's ``fcnt_up``), it must be
    past the last FCnt on air: persisted before the TX, so a power cut can never make it reused."""
    if swd is None:
        return
    stored = int(swd.read_field("fcnt_up"))
    assert stored >= last.fcnt + 1, (
        f"{when}: NVM holds next FCntUp {stored} but FCnt {last.fcnt} is already on air: the counter is not "
        f"persisted before transmitting, so a power cut would make the DUT reuse FCnt {stored}..{last.fcnt}")


def test_replays_are_dropped_by_the_dut_and_by_the_network(rig, dut, network, relay) -> None:  # type: ignore[no-untyped-def]
    """Downlinks: a replay of the last one and an older one (after a counter jump the DUT must
    take) are dropped by the DUT, which still takes the next new one. Uplinks: the network drops a
    replay of an older uplink and does not deliver a repeat of the last one again."""
    dev_eui = rig.rig.dut.lorawan.dev_eui
    start = rig.clock.now()
    relay_up(rig, dut, relay)
    t0 = rig.clock.now()
    network.enqueue_downlink(dev_eui, PROBE_PORT, b"first")
    assert dut_reception(rig, dut, PROBE_PORT, b"first", t0), "the DUT did not report a Class C downlink"
    network.faults.inject(dev_eui, Fault.JUMP_FCNT_DOWN, by=1000)
    network.enqueue_downlink(dev_eui, PROBE_PORT, b"jumped")
    assert dut_reception(rig, dut, PROBE_PORT, b"jumped", t0), (
        "the DUT dropped a downlink whose FCntDown jumped by 1000 (allowed: no MAX_FCNT_GAP since 1.0.4)")
    first, jumped = network.events.filter(direction="down", fport=PROBE_PORT, time=lambda t: t >= t0)[-2:]

    probe = rig.clock.now()
    network.faults.inject(dev_eui, Fault.REPLAY_DOWNLINK)
    network.enqueue_downlink(dev_eui, PROBE_PORT, b"after")  # its slot carries the replay; it stays queued
    resent = resend_downlink(network, first)  # older than the last one the DUT took
    require_on_air(rig, network, probe, resent)
    listen(rig, silence_window(network, probe, extra_s=airtime(network, first)))
    taken = [(d.port, d.payload) for d in dut.downlinks() if d.time >= probe]
    answers = data_uplinks(rig, network, probe)
    assert not taken and not answers, (
        f"the DUT took a replayed downlink (FCntDown {jumped.fcnt}) or an older one (FCntDown {first.fcnt}) "
        f"after FCntDown {jumped.fcnt}: it reported {taken}, uplinks {[(e.fcnt, e.fport) for e in answers]}")

    sent = send_when_free(rig, dut, PROBE_PORT, b"poll")
    assert any(d.payload == b"after" for d in sent.downlinks) or dut_reception(rig, dut, PROBE_PORT, b"after", probe), (
        "after the replays the DUT did not take the next new downlink (sent in the windows of its uplink); "
        f"network downlinks since the probe: {downlinks_since(network, probe)}; "
        f"last gateway TX acks: {[(a.downlink_id, [str(getattr(x, 'value', x)) for x in a.statuses]) for a in network.tx_acks[-5:]]}")

    older, last = data_uplinks(rig, network, start, outcome="accepted")[-2:]  # the announcement, then "poll"
    replayed = rig.clock.now()
    for e in (older, last):
        rate = network.region.data_rate(e.dr)
        network.handle_uplink(UplinkFrame(e.phy_payload, e.frequency_hz, rate.spreading_factor, rate.bandwidth_hz,
                                          gateway_id=e.gateway_id, uplink_id=RESENT_IDS + e.fcnt))
    seen = {e.fcnt: e for e in network.events.filter(direction="up", time=lambda t: t >= replayed)}
    assert seen[older.fcnt].outcome == "rejected" and "replay" in seen[older.fcnt].reason, (
        f"the network took a replay of FCnt {older.fcnt} (last accepted {last.fcnt}): "
        f"{seen[older.fcnt].outcome} ({seen[older.fcnt].reason})")
    assert seen[last.fcnt].outcome in ("retransmission", "rejected"), (
        f"the network took a repeat of the last uplink (FCnt {last.fcnt}) as new: {seen[last.fcnt].outcome}")
    delivered = rx_after(relay, replayed)
    assert not delivered, f"replayed uplinks reached the application: {[describe(p.message) for p in delivered]}"


# -- relay protocol counter -------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["controller_behind", "controller_ahead"])
def test_sync_recovery_when_the_controller_disagrees(rig, dut, network, relay, meter, way,  # type: ignore[no-untyped-def]
                                                     record_property) -> None:
    """A controller behind the relay (a fresh one, counter 0) or ahead of it (counters skipped):
    the relay answers a SYNC response carrying its counter about 100 ms after receiving the
    command, the controller adopts it and its resent command succeeds."""
    hello = relay_up(rig, dut, relay)
    if way == "controller_behind" and hello.fcnt == 0:
        relay.nop()  # a controller at 0 must be behind the relay
    for attempt in range(1, TIMING_ATTEMPTS + 1):
        expected = relay.counter
        counter = 0 if way == "controller_behind" else expected + 5
        wait_radio_free(rig, network)
        with other_controller(rig, network, counter) as controller, HostStalls(rig) as stalls:
            sent = rig.clock.now()
            try:
                answer = controller.get_output()
            except NoCommunication as exc:
                raise AssertionError(
                    f"{way}: GET with counter {counter} while the relay expects {expected}: no SYNC response (0x83) "
                    f"came, so the controller cannot recover ({exc})") from None
            finally:
                hand_over(relay, controller.counter)
        log = [(p.direction, describe(p.message), p.note) for p in controller.log]
        syncs = [p for p in rx_after(controller, sent) if p.message is not None and p.message.cmd == SYNC]
        assert syncs, (f"{way}: the relay executed GET with counter {counter} although it expects {expected} (a "
                       f"stale or replayed counter was accepted) instead of answering with a SYNC response: {log}")
        assert syncs[0].message.fcnt == expected, (
            f"{way}: the relay's SYNC response carries counter {syncs[0].message.fcnt}, it expects {expected}: {log}")
        assert (answer.cmd, answer.fcnt, controller.counter) == (RESPONSE | Command.GET_OUTPUT, expected,
                                                                 expected + 1), (
            f"{way}: after adopting {expected} the resent GET was answered with {describe(answer)}: {log}")
        assert answer.relay_state == (meter.ac_voltage() >= threshold_v(rig)) == answer.mains_sensed, (
            f"{way}: GET after SYNC reports {describe(answer)}, the bench measures otherwise")

        first = next(p for p in controller.log if p.direction == "tx")
        delay, how, round_trip = sync_timing(rig, dut, network, first.wire, sent, syncs[0].wire)
        record_property("sync_response_s", round(delay, 3))
        record_property("sync_round_trip_s", round(round_trip, 3))
        if stalls.worst > STALL_LIMIT_S and attempt < TIMING_ATTEMPTS:
            continue  # the host stalled: the timing says nothing about the relay; disagree again
        if stalls.worst > STALL_LIMIT_S:
            raise RigFault(f"{way}: the test host stalled for up to {stalls.worst:.2f} rig s in each of "
                           f"{TIMING_ATTEMPTS} attempts: the SYNC response time cannot be judged")
        assert delay <= SYNC_DELAY_S + SYNC_TOLERANCE_S + stalls.worst, (
            f"{way}: the SYNC response started {delay * 1000:.0f} ms after the DUT received the command ({how}; "
            f"network round trip {round_trip:.3f} s), expected {SYNC_DELAY_S * 1000:.0f} ms "
            f"(+{SYNC_TOLERANCE_S * 1000:.0f} ms tolerance, +{stalls.worst * 1000:.0f} ms the test host stalled)")
        return


def test_relay_restarted_mid_command_keeps_its_counter_and_the_controller_recovers(  # type: ignore[no-untyped-def]
        rig, dut, network, relay, meter, power) -> None:
    """The relay executes SET ON and loses power before answering: it comes back announcing the
    counter past that command (persisted before acting, kept across the power cycle); the
    controller, which missed the answer and the announcement, retries with the old counter, gets
    a SYNC response, adopts it, and its resent command succeeds."""
    hello = relay_up(rig, dut, relay)
    threshold = threshold_v(rig)
    if hello.relay_state:
        relay.set_output(False)
    c = relay.counter
    relay.send_packet(relay.seal(Command.SET_OUTPUT, c, bytes((1, 0, 0, 0, 0, 0))), "cut before its answer")
    switched = wait_reading(rig, meter, lambda v: v >= threshold, 30.0)
    assert switched >= threshold, f"SET ON (counter {c}) did not switch the output: {switched:.1f} V"
    power.output(False)  # the relay acted (counter persisted first) but never answered
    rig.clock.sleep(OUTAGE_S)
    power.output(True)
    try:
        announced = relay.wait_announcement(JOIN_WITHIN_S)
    except NoCommunication as exc:
        raise AssertionError(f"the restarted relay did not announce its counter: {exc}") from None
    assert announced.fcnt == c + 1, (
        f"the relay executed SET ON with counter {c} and was restarted; it announced counter {announced.fcnt}, "
        f"expected {c + 1}: its counter did not survive the power cycle (or was not persisted before acting)")

    relay.counter = c  # the controller missed the answer and the announcement: it retries with c
    relay.discard_pending()
    wait_radio_free(rig, network)
    sent = rig.clock.now()
    try:
        answer = relay.set_output(True)
    except NoCommunication as exc:
        raise AssertionError(f"after the restart the controller's retry (counter {c}, relay expects {c + 1}) got "
                             f"no SYNC response: it cannot recover ({exc})") from None
    log = [(p.direction, describe(p.message), p.note) for p in relay.log if p.time >= sent]
    syncs = [p for p in rx_after(relay, sent) if p.message is not None and p.message.cmd == SYNC]
    assert syncs and syncs[0].message.fcnt == c + 1, (
        f"the retry of an executed command (counter {c}) was not answered with SYNC {c + 1}: {log}")
    assert answer.fcnt == c + 1 and relay.counter == c + 2 and answer.relay_state, (
        f"after SYNC the resent SET ON was answered with {describe(answer)}: {log}")


def test_a_replayed_command_is_answered_by_sync_and_never_actuates(rig, dut, network, relay, meter) -> None:  # type: ignore[no-untyped-def]
    """The exact SET ON frame sent earlier, replayed after SET OFF: the output stays dead (bench
    meter) and the relay answers a SYNC response carrying its current counter."""
    relay_up(rig, dut, relay)
    threshold = threshold_v(rig)
    since = rig.clock.now()
    relay.set_output(True)
    recorded = next(p for p in relay.log if p.direction == "tx" and p.time >= since)  # the SET ON frame on air
    relay.set_output(False)
    expected = relay.counter
    before = meter.ac_voltage()
    assert before < threshold, f"SET OFF left {before:.1f} V at the output"

    wait_radio_free(rig, network)
    relay.discard_pending()
    sent = rig.clock.now()
    relay.send_packet(recorded.wire, f"replay of SET ON counter {recorded.message.fcnt}")
    require_on_air(rig, network, sent)
    answer = relay.receive(timeout_s=silence_window(network, sent) + ANSWER_SLACK_S)
    after = meter.ac_voltage()
    assert after < threshold, (
        f"a replay of SET ON (counter {recorded.message.fcnt}, relay at {expected}) switched the output: the meter "
        f"reads {after:.1f} V (before {before:.1f} V); the relay answered {describe(answer)}")
    assert answer is not None and answer.cmd == SYNC and answer.fcnt == expected, (
        f"a replay of SET ON (counter {recorded.message.fcnt}) was answered with {describe(answer)}, expected a SYNC "
        f"response (0x83) carrying {expected}")
    relay.counter = expected


def test_foreign_damaged_or_misframed_packets_get_no_answer(rig, dut, network, relay) -> None:  # type: ignore[no-untyped-def]
    """Frames under another key, with a bad outer CRC or of the wrong length (all carrying the
    relay's current counter) get no answer at all; the relay still answers a valid command with
    that counter afterwards."""
    port = rig.rig.dut.relay.fport
    relay_up(rig, dut, relay)
    c = relay.counter
    good = relay.seal(Command.GET_OUTPUT, c)
    bad = {
        "encrypted under another key": encode(RelayMessage(Command.GET_OUTPUT, c), RelayKey("not the passphrase")),
        "with a bad outer CRC": good[:16] + bytes([good[16] ^ 0xFF]) + good[17:],
        "of 21 bytes": good + b"\x00",
        "of 19 bytes": good[:19],
    }
    wait_radio_free(rig, network)
    sent = rig.clock.now()
    for name, wire in bad.items():
        relay.send_packet(wire, name)
    require_on_air(rig, network, sent)
    listen(rig, silence_window(network, sent))
    answered = rx_after(relay, sent)
    ups = data_uplinks(rig, network, sent, fport=port)
    assert not answered and not ups, (
        f"frames {', '.join(bad)} must be discarded without an answer; the relay answered "
        f"{[describe(p.message) for p in answered]} ({len(ups)} uplinks)")

    got = relay.get_output()  # the relay still listens, its counter unmoved
    assert got.fcnt == c, f"after the discarded frames GET with counter {c} was answered with {describe(got)}"
