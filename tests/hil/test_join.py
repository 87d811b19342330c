"""The OTAA join suite (``pytest -m join``): what the DUT's console and the reference network see.

Runs on any rig; the network's fault switches (``hil.network.faults``) play the misbehaving
network: an accept sent only in RX2, too late, with a corrupted MIC, or not at all (a denied
device). The checks follow the DUT's declared LoRaWAN version and class (``dut.lorawan``).

- a join succeeds, the join-request is well formed and the new session is used (DevAddr, FCnt 0,
  MIC with the derived keys), and the first downlink reaches the application;
- the accept in RX1 is taken on the first attempt; in RX2 only it is taken too;
- a late accept and an accept with a corrupted MIC are ignored: the DUT sends a new join-request;
- a denied device keeps trying, hopping over the region's join channels, never breaking the
  sub-band duty cycle nor the join-request budget (LoRaWAN 1.0.4 §7 / RP002 join back-off);
- DLSettings, RxDelay and CFList of the accept are applied in the following windows and channels.
"""

from __future__ import annotations

import pytest

from drivers.console import ConsoleTimeout
from hil.clock import Deadline
from hil.lorawan.frames import JoinRequest, MType, decode
from hil.lorawan.region import get_region
from hil.network.faults import Fault
from tests.hil.support import (airtime, describe, device_settings, join_now, join_policy, send_when_free,
                               since_now, uplink_start)

pytestmark = pytest.mark.join

DENIED_WATCH_S = 50.0  # rig seconds a denied DUT is watched: several attempts, not necessarily all
CFLIST_HZ = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)  # EU868 CFList (type 0)


def _device(rig):  # type: ignore[no-untyped-def]
    return rig.rig.dut.lorawan.device_config(rig.rig.network)


def _joined_session(rig, dut, network, settle: bool = False):  # type: ignore[no-untyped-def]
    """Join now; (mark before the join, the accept event the DUT took). ``settle``: first let a
    DUT that joins by itself at boot finish that join, so the mark sees only the commanded one."""
    if settle:
        join_now(rig, dut)
    mark = since_now(rig, network)
    result = join_now(rig, dut)
    assert result.joined, (f"the DUT reported no join: {result.line!r} ({result.reason}); network saw:\n"
                           f"{describe(mark.events())}")
    accepts = mark.join_accepts()
    assert accepts, f"the DUT reported a join but the network sent no join-accept:\n{describe(mark.events())}"
    return mark, accepts[-1]


def test_otaa_join_then_uplink_in_the_new_session(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    """Join succeeds; the request is well formed; the next uplinks use the new session."""
    device = _device(rig)
    mark, accept = _joined_session(rig, dut, network)

    request_event = [e for e in mark.join_requests() if e.time <= accept.time][-1]
    request = decode(request_event.phy_payload)
    assert isinstance(request, JoinRequest), f"not a join-request: {request_event.phy_payload.hex()}"
    assert request.mtype == MType.JOIN_REQUEST and request.major == 0, "join-request MHDR is not JoinRequest/R1"
    assert (request.dev_eui, request.join_eui) == (device.dev_eui, device.join_eui), (
        f"join-request for DevEUI {request.dev_eui}/JoinEUI {request.join_eui}, "
        f"provisioned {device.dev_eui}/{device.join_eui}")
    root = device.nwk_key if device.version.is_1_1 else device.app_key
    assert request.mic_valid(root), (f"join-request MIC does not verify with the "
                                     f"{'NwkKey' if device.version.is_1_1 else 'AppKey'} of LoRaWAN {device.version}")

    sent = send_when_free(rig, dut, 2, b"hil")
    assert sent.status == "sent", f"uplink not sent: {sent}"
    # The module reports TX done after its RX windows; the gateway's copy may still be on its way.
    mark.wait(rig, 30.0, fport=2, outcome="accepted")
    uplinks = [e for e in mark.data_uplinks() if e.time > accept.time]
    assert uplinks and all(e.outcome == "accepted" and e.mic_valid for e in uplinks), (
        f"uplinks after the join were not all accepted with a valid MIC (session keys):\n{describe(uplinks)}")
    assert all(e.dev_addr == accept.dev_addr for e in uplinks), (
        f"an uplink did not use the DevAddr {accept.dev_addr} of the join-accept:\n{describe(uplinks)}")
    assert uplinks[0].fcnt == 0, f"the first uplink after the join has FCnt {uplinks[0].fcnt}, expected 0"
    assert any(e.fport == 2 and e.payload == b"hil" for e in uplinks), f"the uplink was not delivered:\n{describe(uplinks)}"

    # the first downlink reaches the application (Class C: at once; Class A: after the next uplink)
    network.enqueue_downlink(device.dev_eui, 3, b"\x01\x02\x03")
    deadline = Deadline.after(rig.clock, 60.0)
    while not any(d.port == 3 and d.payload == b"\x01\x02\x03" for d in dut.downlinks()) and not deadline.expired:
        send_when_free(rig, dut, 2, b"poll") if device.device_class == "A" else rig.clock.sleep(1.0)
    got = [(d.port, d.payload.hex(), d.slot) for d in dut.downlinks()]
    assert any(d.port == 3 and d.payload == b"\x01\x02\x03" for d in dut.downlinks()), (
        f"the first downlink (FPort 3, 010203) was not reported by the DUT; it reported {got}; network:\n"
        f"{describe(mark.events(direction='down'))}")


def test_join_accept_in_rx1_is_taken_at_the_first_attempt(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    """An accept sent in RX1 (the network's first choice) completes the join at once."""
    mark, accept = _joined_session(rig, dut, network, settle=True)
    requests = mark.join_requests()
    assert "RX1" in accept.windows, f"the network did not offer RX1: {accept.windows}"
    assert len(requests) == 1, (f"the DUT needed {len(requests)} join-requests although every accept was offered "
                                f"in RX1 (it missed RX1):\n{describe(mark.events())}")


def _join_through(rig, dut, network, fault: Fault):  # type: ignore[no-untyped-def]
    """Let a DUT that joins by itself at boot finish, then join with ``fault`` spoiling the next
    join-accept; (mark before the join, the DUT's join report)."""
    join_now(rig, dut)
    mark = since_now(rig, network)
    network.faults.inject(_device(rig).dev_eui, fault, on="join_accept")
    return mark, join_now(rig, dut)


def test_join_accept_in_rx2_only_is_taken(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    mark, result = _join_through(rig, dut, network, Fault.RX2_ONLY)
    accepts = mark.join_accepts()
    assert result.joined, f"the DUT did not join: {result.line!r}; network:\n{describe(mark.events())}"
    assert accepts and accepts[0].windows == ("RX2",), f"the first accept was not RX2-only:\n{describe(accepts)}"
    assert len(mark.join_requests()) == 1, (
        f"the DUT ignored the join-accept sent in RX2 and asked again:\n{describe(mark.events())}")


def test_late_join_accept_is_not_taken(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    mark, result = _join_through(rig, dut, network, Fault.TOO_LATE)
    assert result.joined, f"the DUT did not join after a late accept: {result.line!r}\n{describe(mark.events())}"
    requests, accepts = mark.join_requests(), mark.join_accepts()
    assert len(requests) >= 2 and len(accepts) >= 2, (
        f"after a join-accept sent 1 s too late the DUT should have sent a new join-request:\n{describe(mark.events())}")
    _first_uplink_uses(rig, dut, mark, accepts[-1])


def test_join_accept_with_bad_mic_is_ignored(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    mark, result = _join_through(rig, dut, network, Fault.CORRUPT_MIC)
    requests, accepts = mark.join_requests(), mark.join_accepts()
    assert accepts and "corrupt_mic" in accepts[0].faults, f"no corrupted accept was sent:\n{describe(accepts)}"
    taken_at_once = result.joined and len(requests) < 2
    assert not taken_at_once, (
        f"the DUT took a join-accept whose MIC is wrong (reported {result.line!r} at t={result.time:.3f} after "
        f"{len(requests)} join-request): it must drop it and try again\n{describe(mark.events())}")
    assert result.joined, f"the DUT did not join after a corrupted accept: {result.line!r}\n{describe(mark.events())}"
    assert result.time > requests[1].time, "the DUT reported the join before its second join-request was answered"
    _first_uplink_uses(rig, dut, mark, accepts[-1])


def _first_uplink_uses(rig, dut, mark, accept) -> None:  # type: ignore[no-untyped-def]
    send_when_free(rig, dut, 2, b"after")
    mark.wait(rig, 30.0, fport=2, outcome="accepted")
    uplinks = [e for e in mark.data_uplinks() if e.time > accept.time]
    assert uplinks and uplinks[0].dev_addr == accept.dev_addr and uplinks[0].outcome == "accepted", (
        f"the DUT's session is not the one of the last accept (DevAddr {accept.dev_addr}):\n{describe(uplinks)}")


# -- a denied device: back-off, channels, duty cycle -------------------------------------------------


@pytest.fixture(scope="module")
def denied_join(rig):  # type: ignore[no-untyped-def]
    """A join attempt of the DUT while the network denies it: (result, join-requests seen)."""
    psu = rig.psu()
    psu.output(True)
    dut = rig.console()
    dut.wait_ready(Deadline.after(rig.clock, 30.0))
    network = rig.network()
    mark = since_now(rig, network)
    with join_policy(network, lambda device: False):
        try:
            result = join_now(rig, dut, within_s=DENIED_WATCH_S)
        except ConsoleTimeout:  # still trying when the watch ends: what a denied device should do
            result = None
    requests = mark.join_requests()
    rig.make_safe("after the denied-join campaign")
    return result, requests, mark


def test_denied_device_keeps_trying_within_the_duty_cycle(rig, denied_join) -> None:  # type: ignore[no-untyped-def]
    result, requests, mark = denied_join
    network = mark.network
    assert result is None or not result.joined, f"the DUT reported a join while the network denied it: {result.line!r}"
    assert len(requests) >= 3, f"a denied DUT gave up after {len(requests)} join-request(s):\n{describe(requests)}"
    assert all(e.outcome == "denied" for e in requests), describe(requests)
    region = get_region(rig.rig.dut.lorawan.region)
    problems = []
    for previous, current in zip(requests, requests[1:]):
        start = uplink_start(network, current)
        rx2_end = previous.time + region.join_accept_delay2_s
        if start < rx2_end:
            problems.append(f"t={start:.3f}: join-request before the RX2 of the previous one ended ({rx2_end:.3f})")
    for band in region.duty_cycle_bands:
        in_band = [e for e in requests if band.contains(e.frequency_hz)]
        for previous, current in zip(in_band, in_band[1:]):
            air = airtime(network, previous)
            silence = air * (1 - band.duty_cycle) / band.duty_cycle
            start = uplink_start(network, current)
            if start - previous.time < silence - 1e-3:
                problems.append(f"t={start:.3f}: sub-band {band.name} ({band.duty_cycle:.1%}) reused "
                                f"{start - previous.time:.3f} s after a {air * 1000:.1f} ms TX, needs {silence:.3f} s off")
    first = requests[0].time
    hour = [airtime(network, e) for e in requests if e.time - first < 3600]
    if sum(hour) > 36.0:
        problems.append(f"{sum(hour):.1f} s of join-request airtime in the first hour (limit 36 s)")
    assert not problems, "join retries break the duty-cycle rules:\n" + "\n".join(problems) + "\n" + describe(requests)


def test_join_requests_hop_over_the_join_channels(rig, denied_join) -> None:  # type: ignore[no-untyped-def]
    _, requests, _ = denied_join
    region = get_region(rig.rig.dut.lorawan.region)
    join_channels = set(region.join_channels)
    used = [e.frequency_hz for e in requests]
    outside = sorted({f for f in used if f not in join_channels})
    assert not outside, f"join-requests on {outside} Hz, not a join channel of {region.name} {sorted(join_channels)}"
    assert len(set(used)) >= 2, f"{len(used)} join-requests all on {sorted(set(used))} Hz: no channel hopping"


# -- DLSettings, RxDelay, CFList ------------------------------------------------------------------------


def test_join_accept_settings_are_applied(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    """RxDelay 2 s, RX1DROffset 1, RX2 DR 1 and a CFList of five channels, all used afterwards."""
    device = _device(rig)
    region = get_region(rig.rig.dut.lorawan.region)
    settings = {"rx_delay": 2, "rx1_dr_offset": 1, "rx2_dr": 1}
    if region.cflist_type == 0:
        settings["cf_list"] = CFLIST_HZ
    with device_settings(network, device.dev_eui, **settings):
        mark, accept = _joined_session(rig, dut, network)
        acked = send_when_free(rig, dut, 2, b"rx1", confirmed=True)
        answers = [e for e in mark.events(direction="down") if e.ack and e.time > accept.time]
        assert answers, f"the network sent no ACK:\n{describe(mark.events())}"
        assert answers[0].delay_s == 2 and "RX1" in answers[0].windows, describe(answers)
        assert acked.status == "acked", (f"the ACK sent in RX1 at RxDelay 2 s (DR offset 1) was not received: "
                                         f"{acked.status} {acked.line!r}\n{describe(mark.events())}")

        network.faults.inject(device.dev_eui, Fault.RX2_ONLY, on="data")
        acked = send_when_free(rig, dut, 2, b"rx2", confirmed=True)
        rx2 = [e for e in mark.events(direction="down") if e.ack and e.windows == ("RX2",)]
        assert rx2 and rx2[-1].dr == 1, f"no RX2-only ACK at DR1 ({acked}):\n{describe(mark.events())}"
        assert acked.status == "acked", (f"the ACK sent in RX2 at DR1 (the accept's RX2DataRate) was not received: "
                                         f"{acked.status}\n{describe(mark.events())}")

        if "cf_list" in settings:
            for n in range(4):
                send_when_free(rig, dut, 2, bytes([n]))
            mark.wait(rig, 30.0, fport=2, payload=bytes([3]))
            used = sorted({e.frequency_hz for e in mark.data_uplinks() if e.time > accept.time})
            assert set(used) & set(CFLIST_HZ), (f"no uplink used a CFList channel {[f / 1e6 for f in CFLIST_HZ]} MHz; "
                                                f"used {[f / 1e6 for f in used]} MHz")
