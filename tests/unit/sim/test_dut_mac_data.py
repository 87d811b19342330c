"""DeviceMac: uplinks, downlinks, counters, receive windows after data, Class C, 1.1 MAC commands."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hil.lorawan import maccommands
from hil.lorawan.airtime import time_on_air
from hil.lorawan.frames import FCtrl, MType
from hil.lorawan.session import seal_frame
from hil.lorawan.types import DevAddr
from hil.network import DownlinkState, Fault
from hil.sim.dut.mac_windows import RX1_LATE_BY_S, RxParams
from hil.sim.radio import Transmission
from tests.unit.sim.mac_harness import ABP_DEV_ADDR, ALL_KEY_HEX, DEV_EUI, make_bench, session_keys_10

CF_LIST = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)


def last_up(bench, **fields):
    return bench.ns.events.last(direction="up", **fields)


def ups(bench):
    return [e for e in bench.ns.events.filter(direction="up") if e.mtype.endswith("data_up")]


# --- uplink and downlink --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.2", "1.0.4", "1.1"])
def test_uplink_then_downlink_in_rx1(version: str) -> None:
    bench = make_bench(version)
    bench.join()
    delivered = []
    bench.ns.on_uplink(delivered.append)
    bench.ns.enqueue_downlink(DEV_EUI, 10, b"\xaa\xbb")
    tx_done = bench.send(3, b"hello")
    assert tx_done[1:] == (0, False, None)
    (uplink,) = [u.payload for u in delivered]
    assert uplink == b"hello"
    (t, event), = bench.host.downlinks
    assert (event.fport, event.payload, event.slot, event.fcnt) == (10, b"\xaa\xbb", "1", 0)
    assert event.rssi == 14.0 - 90.0 and event.snr > 0
    up_tx = bench.data_uplinks()[0][0]
    down = bench.gateway.downlinks[-1]
    assert down.start == pytest.approx(up_tx.end + 1.0) and t == down.end
    assert tx_done[0] == down.end  # RX1 success: TX done at once, no RX2
    assert bench.host.rx_opened_at()[-1] == pytest.approx(up_tx.end + 1.0)
    assert bench.mac.fcnt_up == 1 and bench.mac.fcnt_down == 0
    stored = bench.storage.committed
    assert (stored.a_fcnt_down if version == "1.1" else stored.n_fcnt_down) == 0
    bench.check_clean()


def test_confirmed_uplink_acked_and_not_acked() -> None:
    bench = make_bench("1.1")
    bench.join()
    assert bench.send(1, b"c", confirmed=True)[1:] == (0, True, True)
    bench.ns.faults.inject(DEV_EUI, Fault.CORRUPT_MIC)
    done = bench.send(1, b"c", confirmed=True)
    assert done[1:] == (1, True, False)
    up_tx = bench.data_uplinks()[-1][0]
    rx2_close = up_tx.end + 2.0 + 8 * (4096 / 125_000) + 0.001
    assert done[0] > rx2_close  # reported after RX2
    bench.check_clean()


def test_confirmed_downlink_is_acked_by_the_next_uplink() -> None:
    bench = make_bench("1.1")  # 1.1: the uplink MIC carries ConfFCnt of the downlink it ACKs
    bench.join()
    queue_id = bench.ns.enqueue_downlink(DEV_EUI, 5, b"conf", confirmed=True)
    bench.send(1, b"a")
    assert bench.host.downlinks[-1][1].payload == b"conf"
    bench.send(1, b"b")
    frame = bench.data_uplinks()[-1][1]
    assert frame.fctrl.ack
    assert last_up(bench).outcome == "accepted" and last_up(bench).ack is True
    assert bench.ns.downlink(queue_id).state is DownlinkState.ACKED
    bench.send(1, b"c")
    assert not bench.data_uplinks()[-1][1].fctrl.ack


def test_replayed_downlink_is_dropped() -> None:
    bench = make_bench("1.0.4")
    bench.join()
    bench.ns.enqueue_downlink(DEV_EUI, 2, b"once")
    bench.send(1, b"a")
    assert len(bench.host.downlinks) == 1
    bench.ns.faults.inject(DEV_EUI, Fault.REPLAY_DOWNLINK)
    done = bench.send(1, b"b", confirmed=True)
    replay = bench.gateway.downlinks[-1]
    assert replay.phy_payload == bench.gateway.downlinks[-2].phy_payload
    assert len(bench.host.downlinks) == 1 and done[3] is False
    assert bench.mac.fcnt_down == 0


def test_downlink_for_another_dev_addr_is_ignored() -> None:
    bench = make_bench("1.0.4", activation="abp")
    mac = bench.boot()
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 5, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    other = seal_frame(MType.UNCONFIRMED_DATA_DOWN, DevAddr("26000099"), session_keys_10(), 0, fport=1,
                       frm_payload=b"no").to_bytes()
    start = up.end + 1.0
    airtime = time_on_air(len(other), 7, 125_000, crc=False)
    bench.medium.transmit(Transmission(other, up.frequency_hz, 7, 125_000, "4/5", 14.0, start, start + airtime,
                                       True, "intruder"))
    bench.run(5)
    assert bench.host.downlinks == [] and bench.host.tx_done[-1][1] == 0


# --- counters across reboots ------------------------------------------------------------------------


def test_fcnt_up_persisted_before_tx_and_kept_across_reboot() -> None:
    bench = make_bench("1.0.4", latency_s=0.03)
    bench.join()
    for n in range(3):
        bench.send(1, bytes([n]))
    for tx, frame in bench.data_uplinks():
        commits = [t for t, c in bench.storage.commits if c.get("fcnt_up") == frame.fcnt + 1]
        assert commits and commits[0] <= tx.start
    bench.reboot()
    assert bench.mac.joined and bench.mac.fcnt_up == 3
    bench.send(1, b"after")
    assert bench.data_uplinks()[-1][1].fcnt == 3
    assert last_up(bench).outcome == "accepted" and last_up(bench).fcnt == 3


def test_fcnt_not_persisted_repeats_after_reboot_and_the_network_rejects_it() -> None:
    bench = make_bench("1.0.4", defects=("fcnt_not_persisted",))
    bench.join()
    for n in range(3):
        bench.send(1, bytes([n]))
    assert bench.storage.committed.fcnt_up == 0
    bench.reboot()
    assert bench.mac.fcnt_up == 0
    bench.send(1, b"again")
    assert bench.data_uplinks()[-1][1].fcnt == 0
    rejected = last_up(bench)
    assert rejected.outcome == "rejected" and "replay" in rejected.reason


def test_abp_session_ready_at_start_with_counters_from_nvm() -> None:
    bench = make_bench("1.0.4", activation="abp", next_fcnt_up=40)
    bench.storage.committed.fcnt_up = 41
    mac = bench.boot()
    assert mac.joined and mac.dev_addr == ABP_DEV_ADDR and mac.fcnt_up == 41
    bench.send(2, b"abp")
    assert last_up(bench).outcome == "accepted" and last_up(bench).fcnt == 41


# --- send errors and duty cycle ---------------------------------------------------------------------


def test_send_refusals() -> None:
    bench = make_bench("1.0.4", data_rate=0)
    mac = bench.boot()
    assert mac.send(1, b"x") == "not_joined"
    bench.join()
    assert mac.send(0, b"x") == "bad_port" and mac.send(224, b"x") == "bad_port"
    assert mac.send(1, bytes(52)) == "too_long"  # DR0: N = 51
    assert mac.send(1, bytes(51)) is None
    assert mac.send(1, b"x") == "busy" and mac.busy


def test_duty_cycle_holds_back_the_next_uplink() -> None:
    bench = make_bench("1.0.4", activation="abp")
    bench.boot()
    bench.send(1, b"1")
    bench.send(1, b"2")
    (first, _), (second, _) = bench.data_uplinks()
    allowed = first.end + 99 * first.airtime  # the three default channels share one 1 % sub-band
    assert second.start == pytest.approx(allowed + bench.storage.latency_s)  # then FCntUp is written


# --- receive parameters from the join-accept ------------------------------------------------------


def test_dlsettings_rxdelay_and_cflist_are_applied() -> None:
    bench = make_bench("1.1", rx_delay=3, rx1_dr_offset=2, rx2_dr=3, cf_list=CF_LIST)
    bench.join()
    mac = bench.mac
    assert mac.rx_params == RxParams(3.0, 4.0, 2, 869_525_000, 3)
    assert set(CF_LIST) <= set(mac.channels)
    assert bench.storage.committed.extra_channels == CF_LIST
    # RX1: RxDelay 3 s after the uplink, DR5 - 2 = DR3 (SF9), on the uplink frequency
    assert bench.send(1, b"c", confirmed=True)[3] is True
    up = bench.data_uplinks()[-1][0]
    down = bench.gateway.downlinks[-1]
    assert down.start == pytest.approx(up.end + 3.0) and down.frequency_hz == up.frequency_hz
    assert down.spreading_factor == 9 and bench.host.rx_opened_at()[-1] == pytest.approx(up.end + 3.0)
    # RX2: 4 s after the uplink on 869.525 MHz at RX2 DR3 (SF9)
    bench.ns.faults.inject(DEV_EUI, Fault.RX2_ONLY)
    assert bench.send(1, b"d", confirmed=True)[3] is True
    up = bench.data_uplinks()[-1][0]
    down = bench.gateway.downlinks[-1]
    assert down.start == pytest.approx(up.end + 4.0)
    assert (down.frequency_hz, down.spreading_factor) == (869_525_000, 9)
    # uplinks spread over the default and the CFList channels; the 1.1 MIC's TxCh matches the network's
    for n in range(14):
        bench.send(1, bytes([n]))
    freqs = {tx.frequency_hz for tx, _ in bench.data_uplinks()}
    assert freqs & set(CF_LIST) and freqs & {868_100_000, 868_300_000, 868_500_000}
    assert all(e.outcome == "accepted" for e in ups(bench))
    bench.check_clean()


def test_rx1_late_misses_rx1_data_but_rx2_works() -> None:
    bench = make_bench("1.0.4", activation="abp", defects=("rx1_late",))
    bench.boot()
    assert bench.send(1, b"c", confirmed=True)[3] is False  # the ACK went out in RX1 only
    up = bench.data_uplinks()[-1][0]
    assert bench.host.rx_opened_at()[0] == pytest.approx(up.end + 1.0 + RX1_LATE_BY_S)
    bench.ns.faults.inject(DEV_EUI, Fault.RX2_ONLY)
    assert bench.send(1, b"c", confirmed=True)[3] is True


def test_harness_rx2_fallback_sends_the_second_item() -> None:
    bench = make_bench("1.0.4", activation="abp")
    bench.gateway.rx2_fallback = True
    bench.boot()
    assert bench.send(1, b"c", confirmed=True)[3] is True
    assert bench.gateway.downlinks[-1].frequency_hz == 869_525_000


# --- Class C ------------------------------------------------------------------------------------------


def test_class_c_downlink_is_received_at_once() -> None:
    bench = make_bench("1.0.4", device_class="C")
    bench.join()
    bench.run(30)
    assert bench.host.radio[-1][1] == "rx"  # continuous RX once joined
    sent_at = bench.clock.now()
    bench.ns.enqueue_downlink(DEV_EUI, 9, b"now")
    bench.run(5)
    (t, event), = bench.host.downlinks
    assert (event.slot, event.payload, event.fport) == ("C", b"now", 9)
    assert t == pytest.approx(sent_at + time_on_air(len(bench.gateway.downlinks[-1].phy_payload), 12, 125_000,
                                                    crc=False))
    bench.mac.set_device_class("A")
    assert bench.host.radio[-1][1] == "sleep"
    bench.ns.enqueue_downlink(DEV_EUI, 9, b"later")  # the network still thinks Class C: sent, not heard
    bench.run(5)
    assert len(bench.host.downlinks) == 1


def test_class_c_is_deaf_while_transmitting() -> None:
    bench = make_bench("1.0.4", activation="abp", device_class="C")
    mac = bench.boot()
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 1, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    phy = seal_frame(MType.UNCONFIRMED_DATA_DOWN, ABP_DEV_ADDR, session_keys_10(), 0, fport=3,
                     frm_payload=b"c").to_bytes()
    airtime = time_on_air(len(phy), 12, 125_000, crc=False)
    during = Transmission(phy, 869_525_000, 12, 125_000, "4/5", 14.0, up.start - 0.5, up.start - 0.5 + airtime,
                          True, "intruder")
    bench.medium.transmit(during)
    bench.run(10)
    assert bench.host.downlinks == []
    after = Transmission(phy, 869_525_000, 12, 125_000, "4/5", 14.0, bench.clock.now(),
                         bench.clock.now() + airtime, True, "intruder")
    bench.medium.transmit(after)
    bench.run(5)
    assert [e.slot for _, e in bench.host.downlinks] == ["C"]


def test_class_c_catches_a_frame_whose_preamble_overlaps_a_short_rx1() -> None:
    """An SF12 Class C frame starting just as RX1 opens: RX1 times out within a few ms at SF7, the
    receiver is back on RX2 parameters with most of the 262 ms preamble still to come."""
    bench = make_bench("1.0.4", activation="abp", device_class="C")
    mac = bench.boot()
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 1, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    phy = seal_frame(MType.UNCONFIRMED_DATA_DOWN, ABP_DEV_ADDR, session_keys_10(), 0, fport=3,
                     frm_payload=b"c").to_bytes()
    airtime = time_on_air(len(phy), 12, 125_000, crc=False)
    start = up.end + 1.0  # RX1 opens now (RECEIVE_DELAY1) on the uplink channel at SF7
    bench.run(start - bench.clock.now())
    bench.medium.transmit(Transmission(phy, 869_525_000, 12, 125_000, "4/5", 14.0, start, start + airtime, True,
                                       "gateway"))
    bench.run(5)
    assert [e.slot for _, e in bench.host.downlinks] == ["C"]


# --- 1.1 MAC commands ------------------------------------------------------------------------------


def test_rekey_ind_until_rekey_conf() -> None:
    bench = make_bench("1.1")
    bench.join()
    bench.ns.faults.inject(DEV_EUI, Fault.CORRUPT_MIC)  # the first RekeyConf is lost
    for n in range(3):
        bench.send(1, bytes([n]))
    commands = [e.mac_commands for e in ups(bench)]
    assert commands == [("RekeyInd",), ("RekeyInd",), ()]
    assert all(e.outcome == "accepted" for e in ups(bench))


def test_reset_ind_until_reset_conf_for_1_1_abp() -> None:
    bench = make_bench("1.1", activation="abp")
    bench.boot()
    for n in range(2):
        bench.send(1, bytes([n]))
    assert [e.mac_commands for e in ups(bench)] == [("ResetInd",), ()]


def test_link_check_and_device_time_answers_are_recorded() -> None:
    bench = make_bench("1.0.4")
    bench.join()
    bench.mac.request_link_check()
    bench.mac.request_device_time()
    bench.send(1, b"q")
    assert set(last_up(bench).mac_commands) == {"LinkCheckReq", "DeviceTimeReq"}
    margin, gw_cnt = bench.mac.link_check
    assert gw_cnt == 1 and margin > 0
    assert bench.mac.device_time_gps is not None
    bench.send(1, b"r")
    assert last_up(bench).mac_commands == ()


def test_rx_timing_setup_req_is_applied_and_answered_until_a_downlink() -> None:
    bench = make_bench("1.0.4", activation="abp")
    mac = bench.boot()
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 1, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    cmd = maccommands.MacCommand(0x08, b"\x03", uplink=False)
    phy = seal_frame(MType.UNCONFIRMED_DATA_DOWN, ABP_DEV_ADDR, session_keys_10(), 0, fctrl=FCtrl(),
                     fopts=cmd.to_bytes()).to_bytes()
    start = up.end + 1.0
    bench.medium.transmit(Transmission(phy, up.frequency_hz, 7, 125_000, "4/5", 14.0, start,
                                       start + time_on_air(len(phy), 7, 125_000, crc=False), True, "intruder"))
    bench.run(10)
    assert mac.rx_params.rx1_delay_s == 3.0 and bench.storage.committed.rx_delay_s == 3
    bench.send(1, b"y")
    assert last_up(bench).mac_commands == ("RXTimingSetupAns",)
    up = bench.data_uplinks()[-1][0]
    assert bench.host.rx_opened_at()[-2:] == [pytest.approx(up.end + 3.0), pytest.approx(up.end + 4.0)]
    bench.send(1, b"z")  # no Class A downlink yet: the answer is repeated
    assert last_up(bench).mac_commands == ("RXTimingSetupAns",)


# --- lifecycle, threads, secrets -------------------------------------------------------------------


def test_stop_cancels_every_timer_and_detaches() -> None:
    bench = make_bench("1.0.4", device_class="C")
    bench.join()
    mac = bench.mac
    assert mac.send(1, b"x", confirmed=True) is None
    bench.run(1.5)  # in the middle of the receive windows
    before = len(bench.host.radio), len(bench.host.tx_done), len(bench.host.downlinks)
    bench.cut_power()
    bench.run(100)
    assert (len(bench.host.radio), len(bench.host.tx_done), len(bench.host.downlinks)) == before
    assert bench.scheduler.pending() == 0 and mac not in bench.medium._nodes
    assert mac.send(1, b"x") == "busy" and mac.join() == "busy"
    bench.check_clean()


def test_public_calls_from_another_thread_on_a_running_scheduler(compressed_clock: Any) -> None:
    bench = make_bench("1.0.4", clock=compressed_clock(50))
    bench.scheduler.start()
    try:
        mac = bench.boot()
        # Generous bounds: a loaded 2-core machine may run the scheduler late; the waits end as
        # soon as the event is there.
        assert mac.join() is None  # from the test thread, like a console
        assert bench.host.wait_for(lambda: bool(bench.host.joined), 600)
        assert mac.send(4, b"thread") is None
        assert bench.host.wait_for(lambda: bool(bench.host.tx_done), 600)
    finally:
        bench.cut_power()
        bench.scheduler.stop()
    assert not bench.scheduler.running
    assert last_up(bench).outcome == "accepted"
    bench.check_clean()


def test_no_key_in_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bench = make_bench("1.1")
    bench.join()
    bench.send(1, b"s")
    text = caplog.text + repr(bench.mac) + repr(bench.storage.committed) + repr(bench.credentials)
    assert not any(key in text.lower() for key in ALL_KEY_HEX)
