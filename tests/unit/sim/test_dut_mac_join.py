"""DeviceMac: OTAA join (1.0.2, 1.0.4, 1.1), DevNonce persistence, join-accept faults, back-off."""

from __future__ import annotations

import random

import pytest

from hil.lorawan.airtime import symbol_time, time_on_air
from hil.lorawan.frames import JoinRequest, decode
from hil.lorawan.region import get_region
from hil.network import Fault
from hil.sim.dut.interfaces import MacState
from hil.sim.dut.mac import JOIN_BACKOFF_S, USED_DEV_NONCES_KEPT, MacConfigError
from hil.sim.dut.mac_windows import PREAMBLE_TIMEOUT_MARGIN_S, RX1_LATE_BY_S

from tests.unit.sim.mac_harness import DEV_EUI, JOIN_EUI, make_bench

EU868 = get_region("EU868")
JOIN_FREQS = {868_100_000, 868_300_000, 868_500_000}


def deny(_config: object) -> bool:
    return False


def nonces(bench) -> list[int]:
    return [req.dev_nonce for _, req in bench.join_requests()]


def cut_after_tx_end(bench, delay: float) -> None:
    """Run until ``delay`` after the end of the first join-request (which goes out by 0.1 s)."""
    bench.run_until(lambda: bool(bench.join_requests()), 0.1, step_s=0.001)
    bench.scheduler.run_until(bench.join_requests()[0][0].end + delay)


def ns_join_events(bench, outcome: str | None = None):
    found = bench.ns.events.filter(direction="up", mtype="join_request")
    return [e for e in found if outcome is None or e.outcome == outcome]


# --- joining ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.2", "1.0.4", "1.1"])
def test_otaa_join_then_uplink_accepted(version: str) -> None:
    bench = make_bench(version)
    dev_addr = bench.join()
    mac = bench.mac
    assert mac.joined and mac.dev_addr == dev_addr and not mac.busy and not mac.joining
    (tx, req), = bench.join_requests()
    assert (req.dev_eui, req.join_eui) == (DEV_EUI, JOIN_EUI)
    assert tx.frequency_hz in JOIN_FREQS and (tx.spreading_factor, tx.bandwidth_hz) == (7, 125_000)
    assert tx.power_dbm == 16.0 and tx.end - tx.start == pytest.approx(time_on_air(23, 7, 125_000))
    # the accept went out in RX1 (JOIN_ACCEPT_DELAY1 after the request) and was taken there
    (down,) = bench.gateway.downlinks
    assert down.start == pytest.approx(tx.end + 5.0) and down.frequency_hz == tx.frequency_hz
    assert bench.host.joined == [(down.end, dev_addr)]
    if version == "1.0.2":
        assert bench.storage.committed.used_dev_nonces == (req.dev_nonce,)
    else:
        assert req.dev_nonce == 0 and bench.storage.committed.dev_nonce == 1
    committed = bench.storage.committed
    assert committed.joined and committed.dev_addr == dev_addr and committed.fcnt_up == 0
    # the session keys agree with the network's: it accepts an uplink
    bench.send(7, b"\x01\x02")
    up = bench.ns.events.last(direction="up", mtype="unconfirmed_data_up")
    assert up.outcome == "accepted" and up.payload == b"\x01\x02" and up.fcnt == 0
    bench.check_clean()


def test_join_1_1_uses_nwk_key_and_stores_join_nonce() -> None:
    bench = make_bench("1.1")
    bench.join()
    assert bench.storage.committed.join_nonce == 1
    assert bench.storage.committed.session_keys.lorawan_1_1


def test_join_receive_windows_open_at_join_accept_delays() -> None:
    bench = make_bench("1.0.4", join_policy=deny, join_attempts=2)
    bench.boot().join()
    bench.run(60)
    (first, _), (second, _) = bench.join_requests()
    rx = bench.host.rx_opened_at()
    assert rx[:2] == [first.end + 5.0, first.end + 6.0]
    radio = bench.host.radio
    rx1_close = first.end + 5.0 + 8 * symbol_time(7, 125_000) + PREAMBLE_TIMEOUT_MARGIN_S
    rx2_close = first.end + 6.0 + 8 * symbol_time(12, 125_000) + PREAMBLE_TIMEOUT_MARGIN_S
    assert (pytest.approx(rx1_close), "sleep") in radio and (pytest.approx(rx2_close), "sleep") in radio
    # the random back-off runs from the end of RX2
    assert rx2_close + JOIN_BACKOFF_S[0] <= second.start <= rx2_close + JOIN_BACKOFF_S[1] + 2.5
    assert bench.host.join_failed == [(pytest.approx(bench.host.join_failed[0][0]), "rx_timeout")]


def test_join_busy_while_joining_and_abp_join_is_a_no_op() -> None:
    bench = make_bench("1.0.4")
    mac = bench.boot()
    assert mac.join() is None
    assert mac.join() == "busy" and mac.busy and mac.joining
    assert mac.send(1, b"x") == "not_joined"
    abp = make_bench("1.0.4", activation="abp")
    abp_mac = abp.boot()
    assert abp_mac.joined and abp_mac.join() is None
    abp.run(30)
    assert abp.device_tx() == [] and abp.host.joined == []


def test_join_without_root_key_says_no_keys() -> None:
    bench = make_bench("1.1")
    bench.credentials = type(bench.credentials)(DEV_EUI, JOIN_EUI, bench.credentials.app_key, None)
    assert bench.boot().join() == "no_keys"


def test_bad_settings_are_refused() -> None:
    bench = make_bench("1.0.4")
    for options, word in [({"data_rate": 7}, "FSK|LoRa"), ({"data_rate": 9}, "no data rate"),
                          ({"tx_power": 8}, "TXPower"), ({"defects": frozenset({"nope"})}, "unknown MAC defect")]:
        with pytest.raises(MacConfigError, match=word):
            bench.boot(**options)


def test_join_fails_after_the_configured_attempts() -> None:
    bench = make_bench("1.0.4", join_policy=deny, join_attempts=3)
    bench.boot().join()
    bench.run(200)
    assert len(bench.join_requests()) == 3 and nonces(bench) == [0, 1, 2]
    assert [reason for _, reason in bench.host.join_failed] == ["rx_timeout"]
    assert not bench.mac.joining and not bench.mac.busy
    assert bench.mac.join() is None  # may start again


def test_join_requests_hop_across_the_three_join_channels() -> None:
    bench = make_bench("1.0.4", join_policy=deny, join_attempts=12)
    bench.boot().join()
    bench.run(400)
    freqs = [tx.frequency_hz for tx, _ in bench.join_requests()]
    assert len(freqs) == 12 and set(freqs) == JOIN_FREQS


# --- DevNonce persistence -------------------------------------------------------------------------


def test_devnonce_persisted_before_tx_and_increasing_across_reboots() -> None:
    bench = make_bench("1.0.4", join_policy=deny, join_attempts=3, latency_s=0.02)
    for cut_after in (0.01, 0.05, 3.0, 40.0):  # before the commit, on air, in the windows, retrying
        bench.boot().join()
        bench.run(cut_after)
        bench.reboot()
    bench.mac.join()
    bench.run(200)
    seen = nonces(bench)
    assert len(seen) >= 5 and seen == sorted(set(seen))  # strictly increasing
    for tx, req in bench.join_requests():
        committed = [t for t, changes in bench.storage.commits if changes.get("dev_nonce") == req.dev_nonce + 1]
        assert committed and committed[0] <= tx.start
    assert ns_join_events(bench, "rejected") == []
    assert bench.storage.torn  # the first cut did tear a DevNonce write: its nonce was never sent
    bench.check_clean()


def test_devnonce_persisted_after_tx_reuses_the_nonce_after_a_cut() -> None:
    bench = make_bench("1.0.4", defects=("devnonce_persisted_after_tx",), latency_s=0.02)
    bench.boot().join()
    cut_after_tx_end(bench, 0.01)
    assert bench.storage.pending == 1  # the DevNonce write started at the end of the TX
    bench.reboot()
    bench.join()
    assert nonces(bench) == [0, 0, 1]
    rejected = ns_join_events(bench, "rejected")
    assert len(rejected) == 1 and "DevNonce 0 not greater than last 0" in rejected[0].reason


def test_same_cut_without_the_defect_does_not_reuse_the_nonce() -> None:
    bench = make_bench("1.0.4", latency_s=0.02)
    bench.boot().join()
    cut_after_tx_end(bench, 0.01)
    bench.reboot()
    bench.join()
    assert nonces(bench) == [0, 1] and ns_join_events(bench, "rejected") == []


def test_devnonce_not_persisted_repeats_after_reboot() -> None:
    bench = make_bench("1.0.4", defects=("devnonce_not_persisted",))
    bench.join()
    assert bench.storage.committed.dev_nonce == 0
    bench.reboot()
    bench.join()
    assert nonces(bench) == [0, 0, 1]
    assert "not greater" in ns_join_events(bench, "rejected")[0].reason


def test_random_devnonce_1_0_2_is_not_reused_after_reboot() -> None:
    bench = make_bench("1.0.2")
    bench.boot(rng=random.Random(7))
    bench.join()
    bench.reboot(rng=random.Random(7))  # the same random sequence: the used list must prevent a repeat
    bench.join()
    first, second = nonces(bench)
    assert first != second and bench.storage.committed.used_dev_nonces == (first, second)
    assert ns_join_events(bench, "rejected") == []


def test_random_devnonce_list_keeps_the_last_64() -> None:
    old = tuple(range(1000, 1000 + USED_DEV_NONCES_KEPT))
    bench = make_bench("1.0.2", state=MacState(used_dev_nonces=old))
    bench.join()
    (nonce,) = nonces(bench)
    assert nonce not in old
    assert bench.storage.committed.used_dev_nonces == old[1:] + (nonce,)


# --- join-accept faults ---------------------------------------------------------------------------


def test_join_accept_only_in_rx2_is_received() -> None:
    bench = make_bench("1.0.4")
    bench.ns.faults.inject(DEV_EUI, Fault.RX2_ONLY)
    bench.join()
    (tx, _), = bench.join_requests()
    (down,) = bench.gateway.downlinks
    assert (down.frequency_hz, down.spreading_factor) == (869_525_000, 12)
    assert down.start == pytest.approx(tx.end + 6.0)
    assert bench.host.joined[0][0] == down.end


def test_join_accept_too_late_is_missed_and_the_mac_retries() -> None:
    bench = make_bench("1.0.4")
    bench.ns.faults.inject(DEV_EUI, Fault.TOO_LATE)
    bench.join()
    assert nonces(bench) == [0, 1]
    assert len(ns_join_events(bench, "join_accepted")) == 2


def test_join_accept_with_corrupt_mic_is_ignored() -> None:
    bench = make_bench("1.1")
    bench.ns.faults.inject(DEV_EUI, Fault.CORRUPT_MIC)
    bench.join()
    assert nonces(bench) == [0, 1]
    assert bench.storage.committed.join_nonce == 2


def test_join_accept_with_corrupt_mic_is_taken_by_the_defect() -> None:
    bench = make_bench("1.0.4", defects=("join_accept_mic_unchecked",))
    bench.ns.faults.inject(DEV_EUI, Fault.CORRUPT_MIC)
    bench.join()
    assert nonces(bench) == [0]
    bench.send(1, b"ok")  # the keys are right even though the MIC was not
    assert bench.ns.events.last(direction="up", mtype="unconfirmed_data_up").outcome == "accepted"


def test_rx1_late_misses_the_rx1_accept_but_gets_rx2() -> None:
    bench = make_bench("1.0.4", defects=("rx1_late",), join_attempts=2)
    bench.boot().join()
    bench.run(60)
    assert bench.host.joined == [] and len(bench.host.join_failed) == 1
    rx = bench.host.rx_opened_at()
    first = bench.join_requests()[0][0]
    assert rx[0] == pytest.approx(first.end + 5.0 + RX1_LATE_BY_S)

    bench2 = make_bench("1.0.4", defects=("rx1_late",))
    bench2.ns.faults.inject(DEV_EUI, Fault.RX2_ONLY, count=None)
    bench2.join()
    assert nonces(bench2) == [0]


def test_join_nonce_must_increase_in_1_1() -> None:
    bench = make_bench("1.1", state=MacState(join_nonce=5), last_join_nonce=2, join_attempts=3)
    bench.boot().join()
    bench.run(200)
    assert bench.host.joined == [] and bench.host.join_failed  # accepts with JoinNonce 3, 4, 5
    bench2 = make_bench("1.1", state=MacState(join_nonce=5), last_join_nonce=10)
    bench2.join()
    assert bench2.storage.committed.join_nonce == 11


# --- duty cycle and the join budget ---------------------------------------------------------------


def test_denied_device_retries_within_duty_cycle_and_join_budget() -> None:
    bench = make_bench("1.0.4", join_policy=deny, data_rate=0, join_attempts=50)
    bench.boot().join()
    bench.run(45_000)
    requests = [tx for tx, _ in bench.join_requests()]
    assert len(requests) == 50 and [r for _, r in bench.host.join_failed] == ["rx_timeout"]
    assert nonces(bench) == list(range(50))
    airtime = time_on_air(23, 12, 125_000)
    assert all(tx.end - tx.start == pytest.approx(airtime) for tx in requests)
    # 1 % per sub-band: the three join channels share one, so 99 x airtime off after each request
    for before, after in zip(requests, requests[1:]):
        assert after.start >= before.end + 99 * airtime - 1e-6
    # aggregated join airtime: 36 s in the first hour, 36 s in hours 1..11, 8.7 s per 24 h after
    def used(start: float, end: float) -> float:
        return sum(tx.airtime for tx in requests if start <= tx.start < end)

    assert used(0, 3600) <= 36.0 and used(3600, 39_600) <= 36.0 and used(39_600, 126_000) <= 8.7
    # the budget, not the duty cycle, held back the first request of hour 1
    n = next(i for i, tx in enumerate(requests) if tx.start >= 3600)
    assert requests[n - 1].end + 99 * airtime < 3600 and requests[n].start == pytest.approx(3600, abs=0.1)
    later = next(i for i, tx in enumerate(requests) if tx.start >= 39_600)
    assert requests[later].start == pytest.approx(39_600, abs=0.1)
    assert set(tx.frequency_hz for tx in requests) == JOIN_FREQS
    bench.check_clean()


def test_us915_join_and_uplink() -> None:
    bench = make_bench("1.0.4", region="US915", data_rate=0)
    bench.join()
    (tx, _), = bench.join_requests()
    (down,) = bench.gateway.downlinks
    assert 902_300_000 <= tx.frequency_hz <= 914_900_000 and (tx.spreading_factor, tx.bandwidth_hz) == (10, 125_000)
    assert 923_300_000 <= down.frequency_hz <= 927_500_000 and down.bandwidth_hz == 500_000
    bench.send(2, b"us")
    assert bench.ns.events.last(direction="up", mtype="unconfirmed_data_up").outcome == "accepted"


def test_join_request_bytes_decode() -> None:
    bench = make_bench("1.0.4")
    bench.join()
    (tx, _), = bench.join_requests()
    frame = decode(tx.phy_payload)
    assert isinstance(frame, JoinRequest) and len(tx.phy_payload) == 23


def test_us915_cflist_channel_mask_limits_the_uplink_channels() -> None:
    bench = make_bench("1.1", region="US915", data_rate=0, cf_list=(0xFF00, 0, 0, 0, 0))
    bench.join()
    sub_band_2 = {902_300_000 + 200_000 * n for n in range(8, 16)}
    assert set(bench.mac.channels) == sub_band_2
    for n in range(8):
        bench.send(1, bytes([n]))
    assert {tx.frequency_hz for tx, _ in bench.data_uplinks()} <= sub_band_2
    assert all(e.outcome == "accepted" for e in bench.ns.events.filter(direction="up", mtype="unconfirmed_data_up"))
