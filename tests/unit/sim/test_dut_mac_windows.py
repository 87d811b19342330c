"""DeviceMac's parts: receive-window rules, duty cycle and join budget, RX1/RX2 interplay on air."""

from __future__ import annotations

import logging

import pytest

from hil.lorawan.airtime import symbol_time, time_on_air
from hil.lorawan.frames import MType
from hil.lorawan.region import RegionError, get_region
from hil.lorawan.session import seal_frame
from hil.lorawan.types import DevAddr
from hil.network import Fault
from hil.sim.dut.interfaces import MacState
from hil.sim.dut.mac_dutycycle import DutyCycle
from hil.sim.dut.mac_windows import (
    PREAMBLE_TIMEOUT_MARGIN_S,
    RxParams,
    class_a_windows,
    join_rx_params,
    make_window,
    still_on_air,
)
from hil.sim.radio import Transmission

from tests.unit.sim.mac_harness import ABP_DEV_ADDR, DEV_EUI, make_bench, session_keys_10

EU868 = get_region("EU868")
US915 = get_region("US915")
SYM7 = symbol_time(7, 125_000)
SYM12 = symbol_time(12, 125_000)


def down(start: float, *, freq: int = 868_100_000, sf: int = 7, bw: int = 125_000, downlink: bool = True,
         length: int = 20) -> Transmission:
    airtime = time_on_air(length, sf, bw, crc=False)
    return Transmission(bytes(length), freq, sf, bw, "4/5", 14.0, start, start + airtime, downlink, "gw")


# --- windows ------------------------------------------------------------------------------------------


def test_window_hears_a_preamble_starting_within_one_symbol_early_to_the_timeout() -> None:
    w = make_window(EU868, "1", 10.0, 868_100_000, 5)
    assert w.timeout_s == pytest.approx(8 * SYM7 + PREAMBLE_TIMEOUT_MARGIN_S)
    assert w.hears(down(10.0)) and w.hears(down(10.0 - SYM7)) and w.hears(down(w.close_at))
    assert not w.hears(down(10.0 - SYM7 - 1e-6)) and not w.hears(down(w.close_at + 1e-6))
    assert not w.hears(down(10.0, freq=868_300_000)) and not w.hears(down(10.0, sf=8))
    assert not w.hears(down(10.0, bw=250_000)) and not w.hears(down(10.0, downlink=False))


def test_fsk_window_hears_nothing() -> None:
    w = make_window(EU868, "2", 0.0, 869_525_000, 7)
    assert w.spreading_factor is None and not w.hears(down(0.0, freq=869_525_000))


def test_class_a_windows_follow_the_region_rules() -> None:
    rx1, rx2 = class_a_windows(EU868, tx_end=100.0, uplink_frequency_hz=868_300_000, uplink_dr=5,
                               params=RxParams(3.0, 4.0, 2, 869_525_000, 3))
    assert (rx1.open_at, rx1.frequency_hz, rx1.dr, rx1.spreading_factor) == (103.0, 868_300_000, 3, 9)
    assert (rx2.open_at, rx2.frequency_hz, rx2.dr, rx2.spreading_factor) == (104.0, 869_525_000, 3, 9)
    rx1, rx2 = class_a_windows(EU868, tx_end=0.0, uplink_frequency_hz=868_100_000, uplink_dr=0,
                               params=join_rx_params(EU868), rx1_late=True)
    assert rx1.open_at == pytest.approx(5.1) and rx2.open_at == 6.0 and rx2.timeout_s == pytest.approx(
        8 * SYM12 + 0.001)
    rx1, rx2 = class_a_windows(US915, tx_end=0.0, uplink_frequency_hz=902_300_000, uplink_dr=0,
                               params=join_rx_params(US915))
    assert (rx1.frequency_hz, rx1.dr, rx2.frequency_hz, rx2.dr) == (923_300_000, 10, 923_300_000, 8)


def test_still_on_air_is_what_the_preamble_detector_knows() -> None:
    w = make_window(EU868, "1", 10.0, 868_100_000, 5)
    early, inside, other = down(9.0), down(10.0), down(10.0, freq=868_500_000)
    assert still_on_air(w, [early, inside, other], w.close_at) == [inside]
    assert still_on_air(w, [inside], inside.end + 0.001) == []


# --- duty cycle and join budget -----------------------------------------------------------------------


def test_sub_band_time_off_is_99_times_the_airtime_at_1_percent() -> None:
    duty = DutyCycle(EU868, 0.0)
    duty.record(868_100_000, 0.0, 0.5)
    assert duty.ready_at(868_500_000) == pytest.approx(0.5 + 49.5)  # same sub-band
    assert duty.ready_at(867_100_000) == float("-inf")  # another sub-band
    assert duty.ready_channels([868_100_000, 867_100_000], 10.0) == [867_100_000]
    assert duty.earliest([868_100_000, 868_300_000], 1.0) == pytest.approx(50.0)
    duty.record(869_525_000, 0.0, 1.0)  # the 10 % sub-band
    assert duty.ready_at(869_525_000) == pytest.approx(10.0)
    with pytest.raises(RegionError, match="no EU868 sub-band"):
        duty.ready_at(868_650_000)


def test_us915_has_no_duty_cycle_but_a_join_budget() -> None:
    duty = DutyCycle(US915, 0.0)
    duty.record(902_300_000, 0.0, 2.0, join=True)
    assert duty.ready_at(902_300_000) == pytest.approx(2.0)
    assert duty.join_budget(100.0) == (0.0, 2.0, 36.0)


def test_join_budget_windows_after_power_up() -> None:
    duty = DutyCycle(EU868, 1000.0)  # T0 = boot at rig time 1000 s
    for n in range(24):
        duty.record(868_100_000, 1000.0 + n * 150, 1000.0 + n * 150 + 1.5, join=True)
    assert duty.join_budget(1000.0 + 3599)[1] == pytest.approx(36.0)
    assert duty.join_allowed_from(4000.0, 1.5) == pytest.approx(4600.0)  # next window at T0 + 1 h
    assert duty.join_allowed_from(4000.0, 0.0) == 4000.0
    assert duty.join_budget(4600.0) == (4600.0, 0.0, 36.0)
    assert duty.join_budget(1000.0 + 11 * 3600 + 5)[0] == 1000.0 + 11 * 3600
    assert duty.join_budget(1000.0 + 11 * 3600 + 24 * 3600 + 5) == (1000.0 + 35 * 3600, 0.0, 8.7)
    with pytest.raises(RegionError):
        duty.join_allowed_from(1000.0 + 12 * 3600, 9.0)


# --- on air ---------------------------------------------------------------------------------------------


def test_a_long_frame_locked_in_rx1_skips_rx2() -> None:
    bench = make_bench("1.0.4", activation="abp", data_rate=0)
    bench.ns.faults.inject(DEV_EUI, Fault.RX2_ONLY, count=None)
    mac = bench.boot()
    assert bench.send(1, b"a", confirmed=True)[3] is True  # alone, the RX2 ACK is received
    assert mac.send(1, b"b", confirmed=True) is None
    bench.run_until(lambda: len(bench.data_uplinks()) == 2, 300, step_s=0.1)
    up = bench.data_uplinks()[-1][0]
    junk = seal_frame(MType.UNCONFIRMED_DATA_DOWN, DevAddr("26000099"), session_keys_10(), 0, fport=1,
                      frm_payload=bytes(50)).to_bytes()
    intruder = down(up.end + 1.0, freq=up.frequency_hz, sf=12, length=len(junk))
    intruder = Transmission(junk, *[getattr(intruder, f) for f in
                                    ("frequency_hz", "spreading_factor", "bandwidth_hz", "code_rate", "power_dbm",
                                     "start", "end", "downlink")], "intruder")
    assert intruder.end > up.end + 2.0  # still on air when RX2 should open
    bench.medium.transmit(intruder)
    bench.run(20)
    assert bench.host.tx_done[-1][3] is False  # the network's RX2 ACK went unheard
    rx_since = [t for t, s in bench.host.radio if t > up.end]
    assert rx_since[:1] == [pytest.approx(up.end + 1.0)]
    assert (pytest.approx(intruder.end), "sleep") in bench.host.radio  # RX until the frame ended


def test_a_downlink_put_on_air_after_its_start_is_not_heard(caplog: pytest.LogCaptureFixture) -> None:
    bench = make_bench("1.0.4", activation="abp")
    mac = bench.boot()
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 1, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    phy = seal_frame(MType.UNCONFIRMED_DATA_DOWN, ABP_DEV_ADDR, session_keys_10(), 0, fport=2,
                     frm_payload=b"late").to_bytes()
    bench.scheduler.run_until(up.end + 1.5)  # RX1 timed out with nothing on air
    start = up.end + 1.0
    airtime = time_on_air(len(phy), 7, 125_000, crc=False)
    bench.medium.transmit(Transmission(phy, up.frequency_hz, 7, 125_000, "4/5", 14.0, start,
                                       start + airtime, True, "backdated"))
    with caplog.at_level(logging.WARNING):
        bench.run(10)
    assert bench.host.downlinks == [] and "put on air late" in caplog.text


def test_a_host_stall_before_rx1_does_not_lose_the_downlink() -> None:
    """Callbacks the host runs late still run in order at their own instants: RX1 hears the frame."""
    bench = make_bench("1.0.4", activation="abp")
    mac = bench.boot()
    bench.ns.enqueue_downlink(DEV_EUI, 3, b"hello")
    assert mac.send(1, b"x") is None
    bench.run_until(lambda: bool(bench.data_uplinks()), 1, step_s=0.001)
    up = bench.data_uplinks()[0][0]
    bench.scheduler.call_at(up.end + 0.5, bench.clock.advance, 3.0, name="host-stall")  # RX1 and RX2 run late
    bench.run(10)
    assert [(d.fport, d.payload, d.slot) for _, d in bench.host.downlinks] == [(3, b"hello", "1")]
    assert bench.scheduler.max_lag_s > 2.0  # the stall did happen


def test_dev_nonce_exhausted() -> None:
    bench = make_bench("1.0.4", state=MacState(dev_nonce=0xFFFF), join_policy=lambda c: False, join_attempts=3)
    bench.boot().join()
    bench.run(60)
    assert [req.dev_nonce for _, req in bench.join_requests()] == [0xFFFF]
    assert [r for _, r in bench.host.join_failed] == ["dev_nonce_exhausted"]
