"""Reference network: OTAA joins (1.0.2, 1.0.4, 1.1), DevNonce/JoinNonce rules, join policy,
join-accept windows and contents. The device side is played with the codec only."""

from __future__ import annotations

import pytest

from hil.lorawan import security
from hil.lorawan.frames import CFList
from hil.lorawan.types import EUI64, DevAddr, NetID
from hil.network import DeviceConfigError, DuplicateDeviceError, dev_addr_for, in_net_id, nwk_id
from hil.network.devaddr import SequentialDevAddrAllocator, nwk_addr_bits
from tests.unit.network_support import JOIN_EUI, NET_ID, Device, dev_eui, make_server, otaa_config


@pytest.fixture
def net():
    return make_server()


def _device(net, n: int = 1, version: str = "1.0.4", **overrides) -> Device:
    server, loop, clock = net
    config = otaa_config(n, version, **overrides)
    server.add_device(config)
    return Device(config, loop, clock)


@pytest.mark.parametrize("version", ["1.0.2", "1.0.3", "1.0.4", "1.1"])
def test_join_accept_decrypts_verifies_and_keys_match(net, version):
    server, _, _ = net
    dev = _device(net, version=version)
    accept = dev.joined(dev_nonce=0)
    state = server.device(dev.config.dev_eui)
    assert accept.dev_addr == state.session.dev_addr
    assert accept.net_id == NET_ID
    assert accept.dl_settings.opt_neg is (version == "1.1")
    assert accept.join_nonce == 1
    # The device's derived keys are the network's.
    net_keys = state.session.keys
    assert dev.keys.f_nwk_s_int_key == net_keys.f_nwk_s_int_key
    assert dev.keys.s_nwk_s_int_key == net_keys.s_nwk_s_int_key
    assert dev.keys.app_s_key == net_keys.app_s_key
    assert net_keys.lorawan_1_1 is (version == "1.1")
    event = server.events.last(direction="up", mtype="join_request")
    assert event.outcome == "join_accepted" and event.mic_valid is True
    assert event.dev_nonce == 0 and event.join_nonce == 1 and event.dev_addr == str(accept.dev_addr)


def test_1_1_accept_is_micd_with_js_int_key_not_nwk_key(net):
    dev = _device(net, version="1.1")
    frames = dev.join(7)
    accept = dev.decrypt_accept(frames[0].items[0].phy_payload)
    js_int, _ = security.derive_js_keys(dev.config.nwk_key, dev.config.dev_eui.wire)
    assert accept.mic_valid(js_int, join_eui=JOIN_EUI, dev_nonce=7)
    assert not accept.mic_valid(js_int, join_eui=JOIN_EUI, dev_nonce=8)  # DevNonce is in the MIC
    assert accept.dl_settings.opt_neg


def test_1_1_join_request_must_be_signed_with_nwk_key(net):
    server, _, _ = net
    dev = _device(net, version="1.1")
    assert dev.send(dev.join_request(0, key=dev.config.app_key)) == []
    assert server.events.last(direction="up").reason.startswith("MIC invalid (checked with the device's NwkKey)")


def test_dev_addr_carries_net_id(net):
    dev = _device(net)
    accept = dev.joined()
    assert in_net_id(accept.dev_addr, NET_ID)
    assert str(accept.dev_addr).startswith(("26", "27"))  # NetID 000013: type 0, NwkID 0x13


def test_dev_addr_layout_per_net_id_type():
    assert dev_addr_for(NetID(0), 0x1FFFFFF) == DevAddr(0x01FFFFFF)
    assert dev_addr_for(NetID(0x00003F), 0x1FFFFFF) == DevAddr(0x7FFFFFFF)
    assert nwk_id(NetID(0x000013)) == 0x13
    net7 = NetID(0xE00000 | 0x1ABCD)  # type 7, 17-bit NwkID
    assert nwk_addr_bits(net7) == 7
    addr = dev_addr_for(net7, 5)
    assert int(addr) >> 24 == 0xFE and in_net_id(addr, net7) and not in_net_id(addr, NetID(0))
    alloc = SequentialDevAddrAllocator()
    assert [alloc(NET_ID, dev_eui(1)), alloc(NET_ID, dev_eui(2))] == [dev_addr_for(NET_ID, 1), dev_addr_for(NET_ID, 2)]


def test_configured_dev_addr_is_used(net):
    dev = _device(net, dev_addr="26abcdef")
    assert dev.joined().dev_addr == DevAddr("26abcdef")


# -- DevNonce -------------------------------------------------------------------------------------


def test_1_0_2_rejects_a_used_dev_nonce_but_accepts_an_unused_lower_one(net):
    server, _, _ = net
    dev = _device(net, version="1.0.2")
    assert dev.join(5)
    assert dev.join(5) == []
    rejected = server.events.last(direction="up")
    assert rejected.outcome == "rejected" and rejected.reason == "DevNonce 5 already used"
    assert rejected.mic_valid is True
    assert dev.join(3), "1.0.2: a lower DevNonce never used before is fine (random values)"
    assert dev.join(3) == []
    assert server.device(dev.config.dev_eui).used_dev_nonces == {3, 5}


@pytest.mark.parametrize("version", ["1.0.4", "1.1"])
def test_counter_dev_nonce_must_increase(net, version):
    server, _, _ = net
    dev = _device(net, version=version)
    assert dev.join(5)
    assert dev.join(5) == []
    assert server.events.last(direction="up").reason == "DevNonce 5 not greater than last 5"
    assert dev.join(3) == []
    assert server.events.last(direction="up").reason == "DevNonce 3 not greater than last 5"
    assert dev.join(6)
    assert server.device(dev.config.dev_eui).last_dev_nonce == 6


def test_seeded_last_dev_nonce_and_join_nonce(net):
    dev = _device(net, last_dev_nonce=10, last_join_nonce=41)
    assert dev.join(10) == []
    assert dev.joined(11).join_nonce == 42


def test_join_nonce_strictly_increases_across_joins(net):
    server, _, clock = net
    dev = _device(net, version="1.1")
    nonces = []
    for n in range(4):
        nonces.append(dev.joined(n).join_nonce)
        clock.advance(10)
    assert nonces == [1, 2, 3, 4]
    # A rejected request does not consume a JoinNonce.
    assert dev.join(2) == []
    assert dev.joined(9).join_nonce == 5
    assert server.device(dev.config.dev_eui).last_join_nonce == 5


def test_bad_mic_unknown_device_wrong_join_eui_and_abp_are_rejected(net):
    server, _, _ = net
    dev = _device(net)
    tampered = bytearray(dev.join_request(1))
    tampered[-1] ^= 0x01
    assert dev.send(bytes(tampered)) == []
    assert server.events.last(direction="up").reason.startswith("MIC invalid")
    assert server.events.last(direction="up").mic_valid is False
    # A bad MIC must not burn the DevNonce.
    assert dev.join(1)

    stranger = Device(otaa_config(99), dev.loop, dev.clock)
    assert stranger.join(0) == []
    assert server.events.last(direction="up").reason == f"unknown DevEUI {dev_eui(99)}"

    other = Device(otaa_config(1, join_eui=EUI64("70b3d57ed00000ff")), dev.loop, dev.clock)
    assert other.join(9) == []
    assert "JoinEUI 70b3d57ed00000ff does not match" in server.events.last(direction="up").reason


def test_join_policy_denies_silently(net):
    server, loop, clock = make_server(join_policy=lambda config: config.name != "blocked")
    server.add_device(otaa_config(1, name="blocked"))
    server.add_device(otaa_config(2))
    blocked = Device(otaa_config(1, name="blocked"), loop, clock)
    allowed = Device(otaa_config(2), loop, clock)
    assert blocked.join(0) == []
    event = server.events.last(direction="up")
    assert event.outcome == "denied" and event.reason == "join policy denied the device"
    assert server.device(blocked.config.dev_eui).session is None
    assert server.events.filter(direction="down") == []
    assert allowed.join(0)


# -- windows and contents -----------------------------------------------------------------------


def test_join_accept_windows_eu868(net):
    dev = _device(net)
    [frame] = dev.join(0, freq=868_100_000, sf=7)
    assert frame.gateway_id == "0016c001f153a14c"
    rx1, rx2 = frame.items
    assert (rx1.frequency_hz, rx1.spreading_factor, rx1.bandwidth_hz, rx1.delay_s) == (868_100_000, 7, 125_000, 5.0)
    assert (rx2.frequency_hz, rx2.spreading_factor, rx2.bandwidth_hz, rx2.delay_s) == (869_525_000, 12, 125_000, 6.0)
    assert rx1.context == rx2.context == b"\xc7\x0c\x74\x19"
    assert rx1.phy_payload == rx2.phy_payload
    assert rx1.polarization_inversion and rx2.polarization_inversion
    event = net[0].events.last(direction="down")
    assert event.mtype == "join_accept" and event.windows == ("RX1", "RX2")
    assert (event.frequency_hz, event.dr, event.delay_s) == (868_100_000, 5, 5.0)


def test_join_accept_on_other_channel_and_dr(net):
    dev = _device(net)
    [frame] = dev.join(0, freq=868_500_000, sf=10)
    assert (frame.items[0].frequency_hz, frame.items[0].spreading_factor) == (868_500_000, 10)


def test_rx1_dr_offset_rx2_dr_and_rx_delay_go_in_the_accept_and_apply_after_it(net):
    dev = _device(net, rx1_dr_offset=2, rx2_dr=3, rx_delay=3)
    [frame] = dev.join(0, sf=7)
    # The join-accept itself is sent with the device's defaults (offset 0, region RX2) ...
    assert frame.items[0].spreading_factor == 7
    assert frame.items[1].spreading_factor == 12
    accept = dev.take_accept(frame.items[0].phy_payload, 0)
    # ... and carries the new settings ...
    assert (accept.dl_settings.rx1_dr_offset, accept.dl_settings.rx2_dr, accept.rx_delay) == (2, 3, 3)
    # ... which the data windows then use: DR5 uplink, offset 2 -> DR3 (SF9); RX2 DR3 (SF9); 3 s / 4 s.
    server = net[0]
    server.enqueue_downlink(dev.config.dev_eui, 1, b"x")
    [answer] = dev.up(1, b"hi", sf=7)
    rx1, rx2 = answer.items
    assert (rx1.spreading_factor, rx1.delay_s) == (9, 3.0)
    assert (rx2.frequency_hz, rx2.spreading_factor, rx2.delay_s) == (869_525_000, 9, 4.0)


def test_cflist_present_when_configured(net):
    freqs = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)
    dev = _device(net, cf_list=freqs)
    accept = dev.joined()
    assert accept.cf_list_decoded == CFList(0, frequencies=freqs)
    plain = _device(net, n=2)
    assert plain.joined().cf_list is None


def test_cflist_channels_count_for_1_1_tx_ch(net):
    freqs = (867_100_000, 867_300_000)
    dev = _device(net, version="1.1", cf_list=freqs)
    dev.joined()
    delivered = []
    net[0].on_uplink(delivered.append)
    dev.up(1, b"on ch 4", freq=867_300_000, sf=9, tx_ch=4)
    assert [d.payload for d in delivered] == [b"on ch 4"]


def test_bad_device_configs_are_refused(net):
    server, _, _ = net
    with pytest.raises(DeviceConfigError, match="rx2_dr 7"):
        server.add_device(otaa_config(5, rx2_dr=7))  # EU868 DR7 is FSK
    with pytest.raises(DeviceConfigError, match="rx1_dr_offset 6"):
        server.add_device(otaa_config(5, rx1_dr_offset=6))
    with pytest.raises(DeviceConfigError, match="cf_list"):
        server.add_device(otaa_config(5, cf_list=(1, 2, 3, 4, 5, 6)))
    server.add_device(otaa_config(5))
    with pytest.raises(DuplicateDeviceError):
        server.add_device(otaa_config(5))


def test_config_validation_messages():
    with pytest.raises(ValueError, match="needs nwk_key"):
        otaa_config(1, "1.1", nwk_key=None)
    with pytest.raises(ValueError, match="only app_key"):
        otaa_config(1, "1.0.4", nwk_key="00" * 16)
    with pytest.raises(ValueError, match="needs app_key"):
        otaa_config(1, app_key=None)


def test_join_request_on_unknown_data_rate_is_rejected(net):
    server, _, _ = net
    dev = _device(net)
    assert dev.join(0, sf=7, bw=500_000) == []
    assert "no uplink data rate SF7/500000" in server.events.last(direction="up").reason


def test_1_0_x_keeps_old_session_until_first_uplink_in_new_one(net):
    server, _, clock = net
    dev = _device(net, version="1.0.2")
    dev.joined(1)
    old_keys, old_addr = dev.keys, dev.dev_addr
    dev.up(1, b"old")
    clock.advance(10)
    # The device re-joins, but pretend it missed the accept: it keeps using the old session.
    assert dev.join(2)
    state = server.device(dev.config.dev_eui)
    assert state.previous_session is not None and state.previous_session.dev_addr == old_addr
    delivered = []
    server.on_uplink(delivered.append)
    dev.send(dev.data(1, b"still old", keys=old_keys))
    assert [d.payload for d in delivered] == [b"still old"]
    assert "previous session" in server.events.last(direction="up").reason
    # Now it takes a fresh accept and uses the new session: the old one is forgotten.
    clock.advance(10)
    dev.joined(3)
    dev.up(1, b"new")
    assert delivered[-1].payload == b"new"
    assert state.previous_session is None
    assert server.registry.sessions_for(old_addr) == []
    dev.dev_addr = old_addr
    dev.send(dev.data(1, b"old again", keys=old_keys))
    assert server.events.last(direction="up").outcome == "rejected"
