"""Reference network: data uplinks (MIC, decryption, counters, delivery), Class A and Class C
downlinks, 1.1 counters and MICs, MAC command answers, malformed frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.clock import gps_time
from hil.lorawan import maccommands
from hil.lorawan.frames import MType, decode
from hil.lorawan.types import DevAddr
from hil.network import DownlinkError, DownlinkState, UnknownDeviceError
from tests.unit.network_support import (
    EU868, Device, abp_config, make_server, otaa_config, radio,
)


@pytest.fixture
def net():
    return make_server()


def joined(net, n: int = 1, version: str = "1.0.4", **overrides) -> Device:
    server, loop, clock = net
    config = otaa_config(n, version, **overrides)
    server.add_device(config)
    dev = Device(config, loop, clock)
    dev.joined(dev_nonce=0)
    clock.advance(7)
    return dev


def abp(net, n: int = 1, version: str = "1.0.4", **overrides) -> Device:
    server, loop, clock = net
    config = abp_config(n, version, **overrides)
    server.add_device(config)
    return Device.abp(config, loop, clock)


def delivered(server) -> list:
    out: list = []
    server.on_uplink(out.append)
    return out


# -- uplinks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.2", "1.0.4", "1.1"])
def test_uplink_is_verified_decrypted_and_delivered(net, version):
    server, _, clock = net
    dev = joined(net, version=version)
    got = delivered(server)
    clock.advance(3)
    dev.send(dev.data(7, b"\x01\x02hello", freq=868_300_000, sf=9), freq=868_300_000, sf=9, rssi=-80.5, snr=3.25)
    [up] = got
    assert (up.dev_eui, up.dev_addr, up.fport, up.payload, up.fcnt, up.confirmed) == (
        dev.config.dev_eui, dev.dev_addr, 7, b"\x01\x02hello", 0, False)
    assert (up.time, up.rssi, up.snr, up.frequency_hz, up.dr) == (clock.now(), -80.5, 3.25, 868_300_000, 3)
    event = server.events.last(direction="up")
    assert (event.outcome, event.mic_valid, event.fcnt, event.fport, event.payload, event.dr) == (
        "accepted", True, 0, 7, b"\x01\x02hello", 3)
    assert event.dev_eui == str(dev.config.dev_eui) and event.dev_addr == str(dev.dev_addr)


def test_wrong_mic_is_rejected_and_not_delivered(net):
    server, _, _ = net
    dev = joined(net)
    got = delivered(server)
    phy = bytearray(dev.data(1, b"x"))
    phy[-2] ^= 0x40
    assert dev.send(bytes(phy)) == []
    assert got == []
    event = server.events.last(direction="up")
    assert event.outcome == "rejected" and event.mic_valid is False
    assert event.reason == f"MIC invalid (device {dev.config.dev_eui})"


def test_unknown_dev_addr(net):
    server, _, _ = net
    dev = joined(net)
    dev.dev_addr = DevAddr("01020304")
    dev.send(dev.data(1, b"x"))
    event = server.events.last(direction="up")
    assert event.reason == "unknown DevAddr 01020304" and event.mic_valid is None


def test_replay_and_lower_fcnt_rejected_retransmission_not_delivered_twice(net):
    server, _, clock = net
    dev = joined(net)
    got = delivered(server)
    frames = {}
    for n in range(10):
        frames[n] = dev.data(1, bytes([n]))
        dev.send(frames[n])
        clock.advance(5)
    assert [u.fcnt for u in got] == list(range(10))
    dev.send(frames[7])
    replay = server.events.last(direction="up")
    assert (replay.outcome, replay.reason, replay.fcnt) == ("rejected", "FCnt replay: 7 ≤ last 9", 7)
    dev.send(dev.data(1, b"low", fcnt=8))  # a fresh frame, but with a lower counter
    assert server.events.last(direction="up").reason == "FCnt replay: 8 ≤ last 9"
    dev.send(frames[9])  # retransmission of the last frame
    again = server.events.last(direction="up")
    assert again.outcome == "retransmission" and again.reason == "retransmission of FCnt 9: not delivered again"
    assert len(got) == 10
    dev.send(dev.data(1, b"next", fcnt=10))
    assert got[-1].fcnt == 10


def test_16_bit_rollover(net):
    server, _, clock = net
    dev = abp(net, next_fcnt_up=65_535)
    got = delivered(server)
    dev.up(1, b"a")
    clock.advance(5)
    dev.up(1, b"b")
    assert [(u.fcnt, u.payload) for u in got] == [(65_535, b"a"), (65_536, b"b")]
    assert decode(server.events.last(direction="up").phy_payload).fcnt == 0  # 16 LSB on air


def test_abp_starting_counter_rejects_lower(net):
    server, _, _ = net
    dev = abp(net, next_fcnt_up=100)
    dev.send(dev.data(1, b"x", fcnt=50))
    assert server.events.last(direction="up").reason == "FCnt replay: 50 ≤ last 99"


@pytest.mark.parametrize(("version", "accepted"), [("1.0.2", False), ("1.0.3", False), ("1.0.4", True), ("1.1", True)])
def test_max_fcnt_gap_only_before_1_0_4(net, version, accepted):
    server, _, clock = net
    dev = joined(net, version=version)
    got = delivered(server)
    dev.up(1, b"0")
    clock.advance(5)
    dev.up(1, b"far", fcnt=16_385)  # 16384 past the next expected (1)
    assert bool(got[1:]) is accepted
    event = server.events.last(direction="up")
    if accepted:
        assert event.outcome == "accepted" and event.fcnt == 16_385
    else:
        assert event.outcome == "rejected"
        assert event.reason == "FCnt gap too large: 16385 is 16384 past last 0 (MAX_FCNT_GAP 16384)"
    clock.advance(5)
    dev.up(1, b"near", fcnt=16_384 if not accepted else 16_386)  # a gap of 16383 is fine everywhere
    assert got[-1].payload == b"near"


def test_shared_dev_addr_told_apart_by_mic(net):
    server, _, _ = net
    a = abp(net, 1, dev_addr="26000001")
    b = abp(net, 2, dev_addr="26000001", app_s_key="11" * 16, nwk_s_key="22" * 16)
    got = delivered(server)
    a.up(1, b"from a")
    b.up(1, b"from b")
    assert [(u.dev_eui, u.payload) for u in got] == [(a.config.dev_eui, b"from a"), (b.config.dev_eui, b"from b")]


def test_uplink_copy_from_another_gateway_is_a_duplicate(net):
    server, loop, clock = net
    dev = joined(net)
    got = delivered(server)
    phy = dev.data(1, b"x", confirmed=True)
    loop.inject_uplink(radio(phy, gateway_id="aa555a0000000001"))
    loop.inject_uplink(radio(phy, gateway_id="aa555a0000000002"))
    assert len(got) == 1
    assert server.events.last(direction="up").outcome == "duplicate"
    assert len(loop.take_sent()) == 1  # one ACK, not two


# -- Class A downlinks ----------------------------------------------------------------------------


def test_confirmed_uplink_is_acked_in_rx1_rx2(net):
    server, _, _ = net
    dev = joined(net)
    [frame] = dev.up(1, b"ping", confirmed=True)
    rx1, rx2 = frame.items
    assert (rx1.frequency_hz, rx1.spreading_factor, rx1.delay_s) == (868_100_000, 7, 1.0)
    assert (rx2.frequency_hz, rx2.spreading_factor, rx2.delay_s) == (869_525_000, 12, 2.0)
    assert rx1.context == b"\xc7\x0c\x74\x19"
    opened = dev.open(rx1.phy_payload)
    assert opened.mic_valid and opened.frame.fctrl.ack and opened.fcnt == 0
    assert opened.frame.mtype is MType.UNCONFIRMED_DATA_DOWN and opened.frame.fport is None
    event = server.events.last(direction="down")
    assert (event.ack, event.fcnt, event.windows, event.outcome) == (True, 0, ("RX1", "RX2"), "sent")


def test_unconfirmed_uplink_with_nothing_to_say_gets_no_downlink(net):
    dev = joined(net)
    assert dev.up(1, b"quiet") == []


def test_confirmed_retransmission_is_acked_again_with_a_new_counter(net):
    server, _, clock = net
    dev = joined(net)
    got = delivered(server)
    phy = dev.data(1, b"c", confirmed=True)
    [first] = dev.send(phy)
    clock.advance(3)
    [second] = dev.send(phy)
    assert len(got) == 1
    assert server.events.last(direction="up").reason.endswith("not delivered again; ACKed again")
    assert [dev.open(f.items[0].phy_payload).fcnt for f in (first, second)] == [0, 1]
    assert dev.open(second.items[0].phy_payload).frame.fctrl.ack


def test_queued_downlink_goes_out_after_the_next_uplink(net):
    server, loop, clock = net
    dev = joined(net)
    q1 = server.enqueue_downlink(dev.config.dev_eui, 10, b"one")
    q2 = server.enqueue_downlink(dev.config.dev_eui, 11, b"two")
    assert loop.sent == [] and server.downlink(q1).state is DownlinkState.QUEUED
    [frame] = dev.up(1, b"up", freq=868_500_000, sf=8)
    assert [(i.frequency_hz, i.spreading_factor, i.delay_s) for i in frame.items] == [
        (868_500_000, 8, 1.0), (869_525_000, 12, 2.0)]
    opened = dev.open(frame.items[0].phy_payload)
    assert (opened.frame.fport, opened.frm_payload, opened.frame.fctrl.f_pending) == (10, b"one", True)
    record = server.downlink(q1)
    assert (record.state, record.fcnt, record.downlink_id) == (DownlinkState.SENT, 0, frame.downlink_id)
    clock.advance(10)
    [frame2] = dev.up(1, b"up")
    opened2 = dev.open(frame2.items[0].phy_payload)
    assert (opened2.frame.fport, opened2.frm_payload, opened2.frame.fctrl.f_pending, opened2.fcnt) == (
        11, b"two", False, 1)
    assert server.downlink(q2).state is DownlinkState.SENT
    assert server.events.last(direction="down").queue_id == q2


def test_confirmed_downlink_ack_matched_on_next_uplink(net):
    server, _, clock = net
    dev = joined(net)
    q1 = server.enqueue_downlink(dev.config.dev_eui, 2, b"conf", confirmed=True)
    [frame] = dev.up(1, b"u")
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.frame.mtype is MType.CONFIRMED_DATA_DOWN
    clock.advance(5)
    dev.up(1, b"ack", ack=True)
    assert server.downlink(q1).state is DownlinkState.ACKED
    q2 = server.enqueue_downlink(dev.config.dev_eui, 2, b"conf2", confirmed=True)
    dev.up(1, b"u")
    clock.advance(5)
    dev.up(1, b"no ack")
    assert server.downlink(q2).state is DownlinkState.UNACKED


def test_app_callback_can_answer_in_the_same_windows(net):
    server, _, _ = net
    dev = joined(net)
    server.on_uplink(lambda up: server.enqueue_downlink(up.dev_eui, up.fport, up.payload[::-1]))
    [frame] = dev.up(5, b"abc")
    assert dev.open(frame.items[0].phy_payload).frm_payload == b"cba"


def test_adr_ack_req_gets_an_empty_downlink(net):
    dev = joined(net)
    [frame] = dev.up(1, b"x", adr_ack_req=True)
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.mic_valid and opened.frame.fport is None and not opened.frame.fctrl.ack


def test_enqueue_checks(net):
    server, _, _ = net
    dev = joined(net)
    with pytest.raises(DownlinkError, match="FPort 1..255"):
        server.enqueue_downlink(dev.config.dev_eui, 0, b"x")
    with pytest.raises(UnknownDeviceError):
        server.enqueue_downlink("0102030405060708", 1, b"x")
    with pytest.raises(DownlinkError, match="no downlink with queue id 999"):
        server.downlink(999)


def test_tx_ack_recorded(net):
    server, loop, _ = net
    dev = joined(net)
    q = server.enqueue_downlink(dev.config.dev_eui, 1, b"x")
    [frame] = dev.up(1, b"u")
    loop.ack(frame.downlink_id, ["TOO_LATE", "OK"])
    assert server.downlink(q).tx_status == "OK"
    assert server.tx_acks[-1].downlink_id == frame.downlink_id


# -- Class C --------------------------------------------------------------------------------------


def test_class_c_downlink_is_sent_at_once_on_rx2(net):
    server, loop, _ = net
    dev = joined(net, device_class="C")
    loop.take_sent()
    q = server.enqueue_downlink(dev.config.dev_eui, 3, b"now")
    [frame] = loop.take_sent()
    [item] = frame.items
    assert (item.frequency_hz, item.spreading_factor, item.delay_s) == (869_525_000, 12, None)
    assert frame.gateway_id == "0016c001f153a14c"
    assert dev.open(item.phy_payload).frm_payload == b"now"
    assert server.downlink(q).state is DownlinkState.SENT
    assert server.events.last(direction="down").windows == ("RXC",)


def test_class_c_waits_for_a_session(net):
    server, loop, clock = net
    config = otaa_config(3, device_class="C")
    server.add_device(config)
    q = server.enqueue_downlink(config.dev_eui, 3, b"later")
    assert loop.sent == []
    dev = Device(config, loop, clock)
    dev.joined(0)
    [frame] = dev.up(1, b"hello")  # goes in the Class A windows of the first uplink
    assert dev.open(frame.items[0].phy_payload).frm_payload == b"later"
    assert server.downlink(q).state is DownlinkState.SENT


# -- LoRaWAN 1.1 ----------------------------------------------------------------------------------


def test_1_1_uses_afcntdown_for_application_and_nfcntdown_for_mac(net):
    server, _, clock = net
    dev = joined(net, version="1.1")
    dev.up(0, maccommands.rekey_ind().to_bytes())  # confirm the session first (NFCntDown 0: RekeyConf)
    state = server.device(dev.config.dev_eui)
    assert (state.session.n_fcnt_down, state.session.a_fcnt_down) == (1, 0)
    clock.advance(5)
    server.enqueue_downlink(dev.config.dev_eui, 9, b"app")
    [frame] = dev.up(1, b"u")
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.mic_valid and opened.fcnt == 0 and opened.frm_payload == b"app"  # AFCntDown 0
    clock.advance(5)
    [frame] = dev.up(1, b"u", fopts=maccommands.link_check_req().to_bytes())
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.mic_valid and opened.fcnt == 1 and opened.frame.fport is None  # NFCntDown 1
    assert (state.session.n_fcnt_down, state.session.a_fcnt_down) == (2, 1)
    assert server.events.last(direction="down").fcnt == 1


def test_1_1_uplink_mic_covers_tx_dr_and_tx_ch(net):
    server, _, clock = net
    dev = joined(net, version="1.1")
    got = delivered(server)
    # Sent on 868.3 MHz (channel 1) at DR3, but MICed as if on channel 2: rejected.
    dev.send(dev.data(1, b"x", freq=868_300_000, sf=9, tx_ch=2), freq=868_300_000, sf=9)
    assert server.events.last(direction="up").reason.startswith("MIC invalid")
    # MICed with the right channel but the frame heard at another data rate: rejected too.
    dev.send(dev.data(1, b"x", fcnt=1, freq=868_300_000, sf=9), freq=868_300_000, sf=10)
    assert server.events.last(direction="up").reason.startswith("MIC invalid")
    dev.send(dev.data(1, b"ok", fcnt=2, freq=868_300_000, sf=9), freq=868_300_000, sf=9)
    assert [u.payload for u in got] == [b"ok"]
    # An uplink on a frequency the device does not have: TxCh unknown.
    clock.advance(5)
    dev.send(dev.data(1, b"?", tx_ch=0, freq=868_100_000), freq=867_700_000)
    assert "TxCh" in server.events.last(direction="up").reason


def test_1_1_downlink_ack_carries_conf_fcnt(net):
    dev = joined(net, version="1.1")
    dev.up(1, b"a")
    [frame] = dev.up(1, b"b", confirmed=True)  # FCntUp 1
    phy = frame.items[0].phy_payload
    assert not dev.open(phy, ack_of=0).mic_valid  # ConfFCnt must be the acknowledged uplink's FCnt
    assert dev.open(phy, ack_of=1).mic_valid


def test_1_1_uplink_ack_uses_conf_fcnt_of_the_confirmed_downlink(net):
    server, _, clock = net
    dev = joined(net, version="1.1")
    q = server.enqueue_downlink(dev.config.dev_eui, 4, b"c", confirmed=True)
    [frame] = dev.up(0, maccommands.rekey_ind().to_bytes())
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.mic_valid and opened.frame.confirmed
    clock.advance(5)
    got = delivered(server)
    dev.up(1, b"ack", ack=True)  # MICed with ConfFCnt = AFCntDown of the confirmed downlink
    assert got and server.downlink(q).state is DownlinkState.ACKED


# -- MAC commands ---------------------------------------------------------------------------------


def test_link_check_ans(net):
    dev = joined(net)
    phy = dev.data(1, b"x", fopts=maccommands.link_check_req().to_bytes(), sf=9)
    [frame] = dev.send(phy, sf=9, snr=2.5)
    [ans] = dev.mac(dev.open(frame.items[0].phy_payload))
    assert ans.name == "LinkCheckAns"
    assert ans.fields() == {"margin": 15, "gw_cnt": 1}  # SNR 2.5 dB - (-12.5 dB floor at SF9)


def test_device_time_ans_is_gps_time_at_end_of_uplink(net):
    server, loop, clock = net
    dev = joined(net)
    clock.advance(100)
    phy = dev.data(0, maccommands.device_time_req().to_bytes())
    end_of_uplink = clock.now() - 0.25
    loop.take_sent()
    loop.inject_uplink(radio(phy, time=end_of_uplink))
    [frame] = loop.take_sent()
    opened = dev.open(frame.items[0].phy_payload)
    [ans] = dev.mac(opened)
    expected = gps_time(clock) - 0.25
    assert ans.name == "DeviceTimeAns"
    assert abs(ans.fields()["gps_time_s"] - expected) <= 1 / 256
    assert server.events.last(direction="up").time == end_of_uplink


def test_rekey_conf_for_1_1_otaa(net):
    server, _, _ = net
    dev = joined(net, version="1.1")
    [frame] = dev.up(1, b"x", fopts=maccommands.rekey_ind(1).to_bytes())
    [conf] = dev.mac(dev.open(frame.items[0].phy_payload))
    assert (conf.name, conf.fields()) == ("RekeyConf", {"minor": 1})
    assert server.device(dev.config.dev_eui).session.rekey_ind_seen
    assert server.events.filter(direction="up", mtype="unconfirmed_data_up")[-1].mac_commands == ("RekeyInd",)


def test_missing_rekey_ind_is_noted(net):
    server, _, _ = net
    dev = joined(net, version="1.1")
    dev.up(1, b"x")
    event = server.events.last(direction="up")
    assert event.outcome == "accepted" and "no RekeyInd" in event.reason


def test_reset_conf_only_for_1_1_abp(net):
    server, _, clock = net
    dev = abp(net, version="1.1")
    [frame] = dev.up(1, b"x", fopts=maccommands.reset_ind(1).to_bytes())
    [conf] = dev.mac(dev.open(frame.items[0].phy_payload))
    assert (conf.name, conf.fields()) == ("ResetConf", {"minor": 1})
    otaa = joined(net, 2, version="1.1")
    clock.advance(5)
    assert otaa.up(1, b"x", fopts=maccommands.reset_ind(1).to_bytes()) == []
    assert "ResetInd ignored" in server.events.last(direction="up").reason


def test_mac_answers_too_long_for_fopts_go_on_port_0_and_payload_waits(net):
    server, _, clock = net
    dev = joined(net)
    q = server.enqueue_downlink(dev.config.dev_eui, 1, b"app")
    [frame] = dev.up(0, maccommands.device_time_req().to_bytes() * 3)  # 3 x 6 bytes of answers
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.frame.fport == 0 and opened.frame.fctrl.f_pending
    assert [c.name for c in dev.mac(opened)] == ["DeviceTimeAns"] * 3
    assert server.downlink(q).state is DownlinkState.QUEUED
    clock.advance(5)
    [frame] = dev.up(1, b"u")
    assert dev.open(frame.items[0].phy_payload).frm_payload == b"app"


# -- malformed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phy", "mtype", "reason"),
    [
        (b"", "unknown", "malformed: empty PHYPayload"),
        (b"\x00\x01\x02", "join_request", "malformed: join-request must be 23 bytes, got 3"),
        (b"\x41" + bytes(22), "unconfirmed_data_up", "malformed: unknown Major 1"),
        (b"\x40\x01\x02\x03\x04\x0f\x00\x00" + bytes(4), "unconfirmed_data_up", "malformed: unconfirmed_data_up: FOptsLen 15"),
    ],
)
def test_malformed_frames_are_logged_not_raised(net, phy, mtype, reason):
    server, loop, _ = net
    loop.inject_uplink(radio(phy))
    event = server.events.last()
    assert (event.direction, event.outcome, event.mtype) == ("up", "rejected", mtype)
    assert event.reason.startswith(reason)
    assert loop.sent == []


def test_downlink_types_rejoin_and_proprietary_on_the_uplink_path(net):
    server, loop, _ = net
    loop.inject_uplink(radio(b"\x60\x01\x02\x03\x04\x00\x00\x00" + bytes(4)))
    assert server.events.last().reason == "unconfirmed_data_down is not an uplink message type"
    loop.inject_uplink(radio(b"\xc0\x00" + bytes(3) + bytes(8) + bytes(2) + bytes(4)))
    assert "rejoin-request type 0 is not supported" in server.events.last().reason
    loop.inject_uplink(radio(b"\xe0vendor"))
    assert server.events.last().outcome == "ignored"
    assert loop.sent == []
    assert server.events.filter(outcome="error") == []


def test_malformed_mac_commands_are_noted_frame_still_delivered(net):
    server, _, _ = net
    dev = joined(net)
    got = delivered(server)
    dev.up(1, b"data", fopts=b"\x03")  # LinkADRAns without its status byte
    assert got[0].payload == b"data"
    assert "MAC commands malformed" in server.events.last(direction="up").reason


def test_uplink_at_an_unknown_data_rate_is_rejected(net):
    server, _, _ = net
    dev = joined(net)
    dev.send(dev.data(1, b"x"), sf=12, bw=500_000)
    assert "no uplink data rate SF12/500000" in server.events.last(direction="up").reason


def test_us915_join_and_uplink():
    from hil.clock import ManualClock
    from hil.lorawan.region import get_region
    from hil.network import LoopbackTransport, NetworkServer

    region = get_region("US915")
    clock, loop = ManualClock(), LoopbackTransport()
    server = NetworkServer(region, clock, transport=loop)
    config = otaa_config(1, "1.0.4")
    server.add_device(config)
    dev = Device(config, loop, clock, region=region)
    [frame] = dev.join(0, freq=902_300_000, sf=10)
    rx1, rx2 = frame.items
    assert (rx1.frequency_hz, rx1.spreading_factor, rx1.bandwidth_hz) == (923_300_000, 10, 500_000)  # DR0 -> DR10
    assert (rx2.frequency_hz, rx2.spreading_factor, rx2.bandwidth_hz) == (923_300_000, 12, 500_000)  # DR8
    dev.take_accept(rx1.phy_payload, 0)
    got = delivered(server)
    dev.up(1, b"us", freq=903_900_000, sf=7)
    assert got[0].payload == b"us" and got[0].dr == 3
    assert EU868 is not region


def test_tx_ack_without_transmission_keeps_the_complaint(net):
    server, loop, _ = net
    dev = joined(net)
    q = server.enqueue_downlink(dev.config.dev_eui, 1, b"x")
    [frame] = dev.up(1, b"u")
    loop.ack(frame.downlink_id, ["TOO_LATE", "IGNORED"])
    assert server.downlink(q).tx_status == "TOO_LATE"


def test_bytearray_payload_from_a_transport(net):
    server, loop, _ = net
    dev = joined(net)
    got = delivered(server)
    loop.inject_uplink(radio(bytearray(dev.data(1, b"ba"))))
    assert [u.payload for u in got] == [b"ba"]


def test_uplinks_from_several_threads():
    import threading

    server, loop, clock = make_server()
    devices = []
    for n in range(4):
        config = abp_config(n + 1, dev_addr=f"260000{n + 1:02x}")
        server.add_device(config)
        devices.append(Device.abp(config, loop, clock))
    got = delivered(server)
    frames = [[dev.data(1, bytes([n])) for n in range(50)] for dev in devices]

    def run(phys: list[bytes]) -> None:
        for phy in phys:
            server.handle_uplink(radio(phy))

    threads = [threading.Thread(target=run, args=(f,)) for f in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200 and server.events.filter(outcome="error") == []
    for dev in devices:
        assert sorted(u.fcnt for u in got if u.dev_eui == dev.config.dev_eui) == list(range(50))


@settings(derandomize=True, max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(min_value=1, max_value=0xFFFF), min_size=1, max_size=8),
       back=st.integers(min_value=0, max_value=0x2FFFF))
def test_forward_counters_accepted_any_earlier_counter_rejected(steps, back):
    """1.0.4: any forward jump below 2^16 is followed; any counter at or below the last is refused."""
    server, loop, clock = make_server()
    dev = abp((server, loop, clock))
    got = delivered(server)
    fcnt = -1
    for step in steps:
        fcnt += step
        dev.send(dev.data(1, b"x", fcnt=fcnt))
        clock.advance(1)
    assert [u.fcnt for u in got] == [sum(steps[: i + 1]) - 1 for i in range(len(steps))]
    old = max(0, fcnt - back)
    dev.send(dev.data(1, b"old", fcnt=old))
    event = server.events.last(direction="up")
    assert len(got) == len(steps)
    assert event.outcome == ("retransmission" if old == fcnt else "rejected")
