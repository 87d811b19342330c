"""Reference network: per-device, per-frame fault injection for negative tests."""

from __future__ import annotations

import pytest

from hil.lorawan.frames import EncryptedJoinAccept, decode
from hil.network import DownlinkState, Fault, FaultError
from tests.unit.network_support import Device, make_server, otaa_config


@pytest.fixture
def net():
    return make_server()


def device(net, n: int = 1, version: str = "1.0.4", *, join: bool = True, **overrides) -> Device:
    server, loop, clock = net
    config = otaa_config(n, version, **overrides)
    server.add_device(config)
    dev = Device(config, loop, clock)
    if join:
        dev.joined(0)
        clock.advance(7)
    return dev


def test_drop_join_accept(net):
    server, _, clock = net
    dev = device(net, join=False)
    server.faults.inject(dev.config.dev_eui, Fault.DROP_JOIN_ACCEPT)
    assert dev.join(0) == []
    down = server.events.last(direction="down")
    assert (down.mtype, down.outcome, down.faults) == ("join_accept", "dropped", ("drop_join_accept",))
    assert server.events.last(direction="up").outcome == "join_accepted"  # the network did accept it
    clock.advance(10)
    assert dev.joined(1).join_nonce == 2  # one use only; the dropped accept consumed JoinNonce 1


def test_drop_join_accept_until_cleared(net):
    server, _, clock = net
    dev = device(net, join=False)
    server.faults.inject(dev.config.dev_eui, Fault.DROP_JOIN_ACCEPT, count=None)
    for n in range(3):
        assert dev.join(n) == []
        clock.advance(10)
    server.faults.clear(dev.config.dev_eui)
    assert dev.join(3)


def test_corrupt_mic_of_join_accept_is_seen_after_decryption(net):
    server, _, _ = net
    dev = device(net, join=False, version="1.1")
    server.faults.inject(dev.config.dev_eui, Fault.CORRUPT_MIC)
    [frame] = dev.join(0)
    phy = frame.items[0].phy_payload
    assert isinstance(decode(phy), EncryptedJoinAccept)
    accept = dev.decrypt_accept(phy)  # decrypts to sane fields ...
    assert accept.join_nonce == 1 and accept.dl_settings.opt_neg
    assert not dev.accept_mic_valid(accept, 0)  # ... with a bad MIC
    assert server.events.last(direction="down").mic_valid is False
    assert dev.joined(1).join_nonce == 2  # next one is fine


def test_corrupt_mic_of_data_downlink(net):
    server, _, clock = net
    dev = device(net)
    server.faults.inject(dev.config.dev_eui, Fault.CORRUPT_MIC, count=2)
    server.enqueue_downlink(dev.config.dev_eui, 1, b"a")
    for _ in range(2):
        [frame] = dev.up(1, b"u", confirmed=True)
        assert not dev.open(frame.items[0].phy_payload).mic_valid
        clock.advance(5)
    [frame] = dev.up(1, b"u", confirmed=True)
    assert dev.open(frame.items[0].phy_payload).mic_valid
    assert [e.faults for e in server.events.filter(direction="down")][-3:] == [("corrupt_mic",), ("corrupt_mic",), ()]


def test_rx2_only(net):
    server, _, _ = net
    dev = device(net, join=False)
    server.faults.inject(dev.config.dev_eui, Fault.RX2_ONLY, count=2)
    [frame] = dev.join(0)
    [item] = frame.items
    assert (item.frequency_hz, item.spreading_factor, item.delay_s) == (869_525_000, 12, 6.0)
    dev.take_accept(item.phy_payload, 0)
    [frame] = dev.up(1, b"u", confirmed=True)
    [item] = frame.items
    assert (item.frequency_hz, item.delay_s) == (869_525_000, 2.0)
    assert server.events.last(direction="down").windows == ("RX2",)


def test_too_late(net):
    server, _, _ = net
    dev = device(net)
    server.faults.inject(dev.config.dev_eui, Fault.TOO_LATE, late_by_s=0.5)
    [frame] = dev.up(1, b"u", confirmed=True)
    assert [i.delay_s for i in frame.items] == [1.5, 2.5]
    server.faults.inject(dev.config.dev_eui, Fault.TOO_LATE)  # default 1 s
    [frame] = dev.up(1, b"u", confirmed=True)
    assert [i.delay_s for i in frame.items] == [2.0, 3.0]
    [frame] = dev.up(1, b"u", confirmed=True)
    assert [i.delay_s for i in frame.items] == [1.0, 2.0]


def test_too_late_join_accept(net):
    server, _, _ = net
    dev = device(net, join=False)
    server.faults.inject(dev.config.dev_eui, Fault.TOO_LATE)
    [frame] = dev.join(0)
    assert [i.delay_s for i in frame.items] == [6.0, 7.0]


def test_replay_downlink_sends_previous_bytes_instead_of_a_new_frame(net):
    server, _, clock = net
    dev = device(net)
    q1 = server.enqueue_downlink(dev.config.dev_eui, 1, b"first")
    [frame1] = dev.up(1, b"u")
    first = frame1.items[0].phy_payload
    assert dev.open(first).frm_payload == b"first"
    server.faults.inject(dev.config.dev_eui, Fault.REPLAY_DOWNLINK)
    q2 = server.enqueue_downlink(dev.config.dev_eui, 1, b"second")
    clock.advance(5)
    [replayed] = dev.up(1, b"u")
    assert [i.phy_payload for i in replayed.items] == [first, first]
    assert [i.delay_s for i in replayed.items] == [1.0, 2.0]
    assert replayed.downlink_id != frame1.downlink_id
    event = server.events.last(direction="down")
    assert (event.outcome, event.faults, event.mtype) == ("replayed", ("replay_downlink",), "unconfirmed_data_down")
    assert decode(first).fcnt == 0  # the same counter again: a device that only counts forward
    assert not dev.open(first).mic_valid  # tries 65536 and finds no valid MIC
    assert server.downlink(q2).state is DownlinkState.QUEUED  # nothing new was built
    assert server.device(dev.config.dev_eui).session.n_fcnt_down == 1
    clock.advance(5)
    [frame3] = dev.up(1, b"u")
    opened3 = dev.open(frame3.items[0].phy_payload)
    assert (opened3.frm_payload, opened3.fcnt) == (b"second", 1)
    assert server.downlink(q1).state is DownlinkState.SENT


def test_replay_of_a_join_accept(net):
    server, _, clock = net
    dev = device(net, join=False)
    [frame] = dev.join(0)
    first = frame.items[0].phy_payload
    dev.take_accept(first, 0)
    server.faults.inject(dev.config.dev_eui, Fault.REPLAY_DOWNLINK)
    clock.advance(10)
    [again] = dev.join(1)
    assert again.items[0].phy_payload == first  # a device must refuse: JoinNonce not increased
    assert dev.decrypt_accept(first).join_nonce == 1
    state = server.device(dev.config.dev_eui)
    assert state.last_join_nonce == 1 and state.last_dev_nonce == 1 and state.previous_session is None


def test_replay_waits_for_a_previous_downlink(net):
    server, _, _ = net
    dev = device(net, join=False, device_class="C")
    server.faults.inject(dev.config.dev_eui, Fault.REPLAY_DOWNLINK)
    server.faults.inject(dev.config.dev_eui, Fault.DROP_JOIN_ACCEPT)
    assert dev.join(0) == []  # nothing sent yet: nothing to replay, the fault stays armed
    assert [a.fault for a in server.faults.armed(dev.config.dev_eui)] == [Fault.REPLAY_DOWNLINK]


def test_replay_on_class_c(net):
    server, loop, _ = net
    dev = device(net, device_class="C")
    server.enqueue_downlink(dev.config.dev_eui, 1, b"c1")
    [c1] = loop.take_sent()
    server.faults.inject(dev.config.dev_eui, Fault.REPLAY_DOWNLINK)
    server.enqueue_downlink(dev.config.dev_eui, 1, b"c2")
    [replayed] = loop.take_sent()
    assert replayed.items[0].phy_payload == c1.items[0].phy_payload and replayed.items[0].delay_s is None


def test_jump_fcnt_down(net):
    server, _, clock = net
    dev = device(net)
    server.faults.inject(dev.config.dev_eui, Fault.JUMP_FCNT_DOWN)
    [frame] = dev.up(1, b"u", confirmed=True)
    opened = dev.open(frame.items[0].phy_payload)
    assert opened.mic_valid and opened.fcnt == 1000
    assert server.events.last(direction="down").fcnt == 1000
    server.faults.inject(dev.config.dev_eui, Fault.JUMP_FCNT_DOWN, by=70_000)  # past a 16-bit roll-over
    clock.advance(5)
    [frame] = dev.up(1, b"u", confirmed=True)
    assert server.events.last(direction="down").fcnt == 71_001
    assert decode(frame.items[0].phy_payload).fcnt == 71_001 & 0xFFFF


def test_jump_on_1_1_moves_the_counter_in_use(net):
    server, _, _ = net
    dev = device(net, version="1.1")
    server.faults.inject(dev.config.dev_eui, Fault.JUMP_FCNT_DOWN, by=5)
    server.enqueue_downlink(dev.config.dev_eui, 2, b"app")
    dev.up(1, b"u")
    session = server.device(dev.config.dev_eui).session
    assert (session.n_fcnt_down, session.a_fcnt_down) == (0, 6)


def test_faults_are_per_device(net):
    server, _, _ = net
    a = device(net, 1)
    b = device(net, 2)
    server.faults.inject(a.config.dev_eui, Fault.CORRUPT_MIC)
    [fb] = b.up(1, b"u", confirmed=True)
    assert b.open(fb.items[0].phy_payload).mic_valid
    [fa] = a.up(1, b"u", confirmed=True)
    assert not a.open(fa.items[0].phy_payload).mic_valid


def test_several_faults_on_one_frame(net):
    server, _, _ = net
    dev = device(net)
    eui = dev.config.dev_eui
    server.faults.inject(eui, Fault.RX2_ONLY)
    server.faults.inject(eui, Fault.TOO_LATE, late_by_s=2.0)
    server.faults.inject(eui, Fault.CORRUPT_MIC)
    [frame] = dev.up(1, b"u", confirmed=True)
    [item] = frame.items
    assert item.delay_s == 4.0 and not dev.open(item.phy_payload).mic_valid
    assert set(server.events.last(direction="down").faults) == {"corrupt_mic", "rx2_only", "too_late"}
    assert server.faults.armed(eui) == []


def test_fault_argument_checks(net):
    server, _, _ = net
    eui = "0102030405060708"
    with pytest.raises(FaultError, match="late_by_s goes with Fault.TOO_LATE"):
        server.faults.inject(eui, Fault.RX2_ONLY, late_by_s=1.0)
    with pytest.raises(FaultError, match="by goes with Fault.JUMP_FCNT_DOWN"):
        server.faults.inject(eui, Fault.TOO_LATE, by=3)
    with pytest.raises(FaultError, match="count must be"):
        server.faults.inject(eui, Fault.RX2_ONLY, count=0)
    with pytest.raises(FaultError, match="not a DevEUI"):
        server.faults.inject("xyz", Fault.RX2_ONLY)
    server.faults.inject(eui, "rx2_only", count=3)
    assert server.faults.peek(eui, Fault.RX2_ONLY).remaining == 3
    server.faults.clear()
    assert server.faults.armed(eui) == []


def test_fault_limited_to_join_accepts_leaves_data_answers_alone(net):
    server, _, clock = net
    dev = device(net)
    server.faults.inject(dev.config.dev_eui, Fault.RX2_ONLY, on="join_accept")
    [frame] = dev.up(1, b"u", confirmed=True)
    assert len(frame.items) == 2  # a data answer: not spoiled, the fault stays armed
    assert server.faults.peek(dev.config.dev_eui, Fault.RX2_ONLY) is not None
    clock.advance(10)
    [frame] = dev.join(1)
    assert [i.delay_s for i in frame.items] == [6.0]
    assert server.faults.peek(dev.config.dev_eui, Fault.RX2_ONLY) is None


def test_fault_limited_to_data_leaves_join_accepts_alone(net):
    server, _, clock = net
    dev = device(net, join=False)
    server.faults.inject(dev.config.dev_eui, Fault.CORRUPT_MIC, on="data")
    [frame] = dev.join(0)
    assert server.events.last(direction="down").mic_valid is True
    with pytest.raises(FaultError, match="on must be"):
        server.faults.inject(dev.config.dev_eui, Fault.CORRUPT_MIC, on="everything")  # type: ignore[arg-type]
