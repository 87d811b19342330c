"""The virtual gateway's concentrator: channel plan, demodulation floor, tmst counter, JIT-queue rules."""

from __future__ import annotations

import pytest

from hil.clock import ManualClock
from hil.lorawan.airtime import time_on_air
from hil.sim.gateway import TMST_MODULO, TOO_EARLY_US, TOO_LATE_US, Concentrator, RxChannel, RxPacket, TxRequest, tmst_add
from hil.sim.gateway.concentrator import JIT_QUEUE_MAX, tmst_diff
from hil.sim.radio import RadioMedium
from hil.sim.scheduler import Scheduler
from tests.unit.sim.test_gateway_support import FakeDut

PAYLOAD = bytes(range(17))


def rig(path_loss_db: float = 90.0, **kwargs: object) -> tuple[ManualClock, Scheduler, Concentrator, FakeDut, list[RxPacket]]:
    clock = ManualClock()
    scheduler = Scheduler(clock)
    medium = RadioMedium(scheduler, path_loss_db=path_loss_db)
    gateway = Concentrator(medium, scheduler, **kwargs)  # type: ignore[arg-type]
    dut = FakeDut(medium, scheduler)
    got: list[RxPacket] = []
    gateway.add_listener(got.append)
    return clock, scheduler, gateway, dut, got


def request(tmst: int | None, freq: int = 868_100_000, sf: int = 7, power: float = 14, **kw: object) -> TxRequest:
    return TxRequest(PAYLOAD, freq, sf, 125_000, power, "4/5", tmst, **kw)  # type: ignore[arg-type]


def test_uplink_on_a_default_channel_is_stamped_at_end_of_reception() -> None:
    clock, scheduler, gateway, dut, got = rig()
    clock.advance(10.0)
    tx = dut.send(frequency_hz=868_300_000, sf=9)
    scheduler.run_until(tx.end + 0.5)
    assert len(got) == 1
    packet = got[0]
    assert packet.tmst == round(tx.end * 1_000_000) and packet.time == tx.end
    assert (packet.channel, packet.frequency_hz, packet.spreading_factor, packet.bandwidth_hz) == (1, 868_300_000, 9, 125_000)
    assert packet.phy_payload == tx.phy_payload and packet.crc_ok and packet.code_rate == "4/5"
    assert packet.rssi == 14 - 90 and packet.snr > 30


def test_channel_plan_default_plus_extra_frequencies() -> None:
    clock, scheduler, gateway, dut, got = rig(extra_frequencies_hz=[867_100_000, 867_300_000])
    assert [c.frequency_hz for c in gateway.channels] == [868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000]
    dut.send(frequency_hz=867_300_000)
    scheduler.run_for(1.0)
    dut.send(frequency_hz=867_500_000)  # not in the plan
    scheduler.run_for(1.0)
    dut.send(frequency_hz=868_100_000, bw=250_000)  # no 250 kHz channel configured
    scheduler.run_for(1.0)
    assert [p.channel for p in got] == [4]


def test_explicit_channel_list_with_a_250_khz_channel() -> None:
    clock, scheduler, gateway, dut, got = rig(channels=[RxChannel(868_300_000, 250_000)])
    dut.send(frequency_hz=868_300_000, bw=250_000)
    scheduler.run_for(1.0)
    assert [(p.channel, p.bandwidth_hz) for p in got] == [(0, 250_000)]


def test_frames_below_the_demodulation_floor_are_dropped() -> None:
    # 14 dBm - 140 dB = -126 dBm; noise floor at 125 kHz ~ -117 dBm: SNR ~ -9 dB
    clock, scheduler, gateway, dut, got = rig(path_loss_db=140.0)
    dut.send(sf=7)  # needs -7.5 dB
    scheduler.run_for(2.0)
    dut.send(sf=12)  # needs -20 dB
    scheduler.run_for(3.0)
    assert [p.spreading_factor for p in got] == [12]
    assert gateway.dropped_uplinks == 1


def test_downlinks_of_others_are_not_received() -> None:
    clock, scheduler, gateway, dut, got = rig()
    other = Concentrator(gateway.medium, scheduler, name="gateway-2")
    assert other.schedule(request(None)) == "OK"
    scheduler.run_for(3.0)
    assert got == [] and len(dut.heard) == 1


def test_scheduled_downlink_goes_on_air_at_exactly_its_tmst() -> None:
    clock, scheduler, gateway, dut, got = rig()
    clock.advance(3.25)
    up = dut.send()
    scheduler.run_until(up.end)
    tmst = tmst_add(got[0].tmst, 1_000_000)
    assert gateway.schedule(request(tmst, sf=9)) == "OK"
    assert gateway.pending_transmissions() == 1
    scheduler.run_for(3.0)
    assert len(dut.heard) == 1
    tx = dut.heard[0].tx
    assert tx.start == pytest.approx(up.end + 1.0, abs=1e-6)
    assert tx.end - tx.start == pytest.approx(time_on_air(len(PAYLOAD), 9, 125_000, crc=False), abs=1e-6)
    assert (tx.frequency_hz, tx.spreading_factor, tx.downlink, tx.sender) == (868_100_000, 9, True, "gateway")
    assert gateway.sent == [tx] and gateway.pending_transmissions() == 0


def test_polarization_not_inverted_is_not_a_downlink() -> None:
    clock, scheduler, gateway, dut, got = rig()
    assert gateway.schedule(request(gateway.tmst_now() + 100_000, polarization_inversion=False)) == "OK"
    scheduler.run_for(1.0)
    assert dut.heard == [] and gateway.sent[0].downlink is False


def test_too_late_boundary_is_the_jit_queue_margin() -> None:
    clock, scheduler, gateway, dut, got = rig()
    clock.advance(5.0)
    now = gateway.tmst_now()
    assert TOO_LATE_US == 32_500
    assert gateway.schedule(request(now + TOO_LATE_US)) == "TOO_LATE"
    assert gateway.schedule(request(now + TOO_LATE_US + 1)) == "OK"
    assert gateway.schedule(request(now - 1_000_000, freq=868_500_000)) == "TOO_LATE"  # already past


def test_too_early_beyond_512_seconds() -> None:
    clock, scheduler, gateway, dut, got = rig()
    now = gateway.tmst_now()
    assert gateway.schedule(request(tmst_add(now, TOO_EARLY_US + 1))) == "TOO_EARLY"
    assert gateway.schedule(request(tmst_add(now, TOO_EARLY_US))) == "OK"


def test_overlapping_transmissions_collide() -> None:
    clock, scheduler, gateway, dut, got = rig()
    first = gateway.tmst_now() + 1_000_000
    assert gateway.schedule(request(first)) == "OK"
    assert gateway.schedule(request(first + 10_000, freq=868_500_000)) == "COLLISION_PACKET"
    airtime = round(time_on_air(len(PAYLOAD), 7, 125_000, crc=False) * 1e6)
    gap = airtime + 1_500 + 30_000 + 1_000  # post delay + pre delay + margin
    assert gateway.schedule(request(first + gap)) == "COLLISION_PACKET"
    assert gateway.schedule(request(first + gap + 1)) == "OK"
    scheduler.run_for(5.0)
    assert len(dut.heard) == 2


def test_frequency_and_power_limits() -> None:
    clock, scheduler, gateway, dut, got = rig()
    soon = gateway.tmst_now() + 500_000
    assert gateway.schedule(request(soon, freq=902_300_000)) == "TX_FREQ"
    assert gateway.schedule(request(soon, power=27)) == "TX_POWER"
    assert gateway.schedule(request(soon, power=16)) == "OK"
    strong = rig(max_tx_power_dbm=27)[2]
    assert strong.schedule(request(strong.tmst_now() + 500_000, freq=869_525_000, power=27)) == "OK"


def test_immediately_means_as_soon_as_the_jit_queue_allows() -> None:
    clock, scheduler, gateway, dut, got = rig()
    clock.advance(2.0)
    assert gateway.schedule(request(None)) == "OK"
    assert gateway.schedule(request(None, freq=868_300_000)) == "OK"  # queued behind the first
    scheduler.run_for(5.0)
    first, second = (r.tx for r in dut.heard)
    assert first.start == pytest.approx(3.0, abs=1e-6)
    assert second.start > first.end


def test_tmst_wraps_around() -> None:
    clock, scheduler, gateway, dut, got = rig(tmst_offset=TMST_MODULO - 300_000)
    assert gateway.tmst_at(0.0) == TMST_MODULO - 300_000
    assert gateway.tmst_at(0.3) == 0
    up = dut.send()
    scheduler.run_until(up.end)
    assert got[0].tmst > TMST_MODULO - 300_000  # before the wrap
    rx1 = tmst_add(got[0].tmst, 1_000_000)
    assert rx1 < 1_000_000  # after the wrap
    assert tmst_diff(rx1, got[0].tmst) == 1_000_000
    assert gateway.schedule(request(rx1)) == "OK"
    scheduler.run_for(2.0)
    assert dut.heard[0].tx.start == pytest.approx(up.end + 1.0, abs=1e-6)


def test_full_jit_queue() -> None:
    clock, scheduler, gateway, dut, got = rig()
    base = gateway.tmst_now() + 1_000_000
    for n in range(JIT_QUEUE_MAX):
        assert gateway.schedule(request(base + n * 200_000)) == "OK"
    assert gateway.schedule(request(base + JIT_QUEUE_MAX * 200_000)) == "QUEUE_FULL"


def test_impossible_requests_raise_and_close_cancels() -> None:
    clock, scheduler, gateway, dut, got = rig()
    with pytest.raises(ValueError, match="code rate"):
        gateway.schedule(TxRequest(PAYLOAD, 868_100_000, 7, 125_000, 14, "5/4", None))
    with pytest.raises(ValueError, match="spreading_factor"):
        gateway.schedule(TxRequest(PAYLOAD, 868_100_000, 13, 125_000, 14, "4/5", None))
    assert gateway.schedule(request(None)) == "OK"
    gateway.close()
    scheduler.run_for(3.0)
    assert dut.heard == [] and gateway.pending_transmissions() == 0
    dut.send()
    scheduler.run_for(1.0)
    assert got == []


def test_a_failing_listener_does_not_stop_the_others() -> None:
    clock, scheduler, gateway, dut, got = rig()

    def broken(packet: RxPacket) -> None:
        raise RuntimeError("forwarder bug")

    gateway.remove_listener(got.append)
    gateway.add_listener(broken)
    gateway.add_listener(got.append)
    dut.send()
    scheduler.run_for(1.0)
    assert len(got) == 1 and scheduler.errors == []


def test_bad_tmst_offset() -> None:
    with pytest.raises(ValueError, match="tmst_offset"):
        rig(tmst_offset=TMST_MODULO)
