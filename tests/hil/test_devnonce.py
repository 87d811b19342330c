"""The DevNonce suite (``pytest -m devnonce``): a DevNonce is never used twice by a device.

LoRaWAN 1.0.2/1.0.3: DevNonce is random and must never repeat (the join server remembers them);
1.0.4/1.1: it is a counter persisted in non-volatile memory and must strictly increase over the
device's whole life. Either way a device that forgets its nonces across a restart gets its
join-requests rejected as replays. The suite restarts the DUT every way a bench can — a new join,
a supply power cycle, a brown-out, a console reset, an SWD reset (rigs with a probe) — and checks
the DevNonces on air, the value in NVM read through SWD, the network's rejection of a replay and
the DUT's recovery, and (``-m "devnonce and slow"``) a power-fail campaign that cuts the supply
around the join-request's transmission: the test that catches firmware persisting the nonce only
after transmitting.
"""

from __future__ import annotations

import csv
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from hil.clock import Deadline
from hil.network.transport import UplinkFrame
from tests.hil.support import Since, describe, join_now, since_now

pytestmark = pytest.mark.devnonce

OFF_TIME_S = 0.5
BROWN_OUT_TO_V = 3.0  # under any MCU's brown-out threshold, above its power-on-reset level
BROWN_OUT_S = 0.05


def _counter(rig: Any) -> bool:
    return rig.rig.dut.lorawan.device_config().version.dev_nonce_is_counter


def _assert_never_reused(rig: Any, requests: list, what: str) -> None:
    """Every join-request's DevNonce is new (random versions) or above the previous (counters)."""
    nonces = [e.dev_nonce for e in requests]
    if _counter(rig):
        bad = [(a, b) for a, b in zip(nonces, nonces[1:]) if b <= a]
        assert not bad, (f"DevNonce did not strictly increase {what}: {bad[:5]} (the whole sequence: {nonces}); "
                         f"network saw:\n{describe(requests)}")
    else:
        seen: set[int] = set()
        repeated = [n for n in nonces if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
        assert not repeated, f"DevNonce reused {what}: {sorted(set(repeated))}\n{describe(requests)}"
    replays = [e for e in requests if e.outcome == "rejected" and "DevNonce" in e.reason]
    assert not replays, f"the network rejected join-requests as DevNonce replays {what}:\n{describe(replays)}"


def _probe(rig: Any) -> Any | None:
    """The rig's SWD probe, or None on a rig without one."""
    if rig.rig.dut.swd is None or not hasattr(rig, "swd"):
        return None
    return rig.swd()


def _restarts(rig: Any, dut: Any, power: Any) -> list[tuple[str, Callable[[], None]]]:
    clock = rig.clock

    def ready() -> None:
        dut.wait_ready(Deadline.after(clock, 30.0))

    def power_cycle() -> None:
        power.power_cycle(OFF_TIME_S)
        ready()

    def brown_out() -> None:
        power.brown_out(BROWN_OUT_TO_V, BROWN_OUT_S)
        ready()

    def console_reset() -> None:
        dut.reset(Deadline.after(clock, 30.0))

    kinds: list[tuple[str, Callable[[], None]]] = [
        ("a new join", lambda: None), ("a supply power cycle", power_cycle), ("a brown-out", brown_out),
        ("a console reset", console_reset)]
    probe = _probe(rig)
    if probe is not None:
        def swd_reset() -> None:
            probe.reset()
            ready()
        kinds.append(("an SWD reset", swd_reset))
    return kinds


def test_devnonce_never_repeats_across_restarts(request, rig, dut, network, power) -> None:  # type: ignore[no-untyped-def]
    """N joins, each after a restart of another kind: no DevNonce is used twice, none is rejected."""
    joins = request.config.getoption("--devnonce-joins")
    mark = since_now(rig, network)
    kinds = _restarts(rig, dut, power)
    done = []
    for n in range(joins):
        name, restart = kinds[n % len(kinds)]
        restart()
        result = join_now(rig, dut)
        done.append(name)
        assert result.joined, (f"join {n + 1} (after {name}) failed: {result.line!r}; the network saw:\n"
                               f"{describe(mark.events())}")
    requests = mark.join_requests()
    assert len(requests) >= joins, f"{joins} joins but only {len(requests)} join-requests on air"
    _assert_never_reused(rig, requests, f"over {joins} joins after {', '.join(done)}")


def test_nvm_devnonce_matches_the_air(rig, dut, network, power, swd) -> None:  # type: ignore[no-untyped-def]
    """After each restart and join, the DevNonce counter in NVM (through SWD) is the last on air + 1."""
    if not _counter(rig):
        pytest.skip("LoRaWAN 1.0.2/1.0.3 DevNonces are random: NVM holds a ring, not a counter")
    if "dev_nonce" not in rig.rig.dut.swd.nvm_layout:
        pytest.skip("the rig file's dut.swd.nvm_layout has no dev_nonce field")
    mark = since_now(rig, network)
    rows = []
    for name, restart in _restarts(rig, dut, power)[1:]:
        restart()
        result = join_now(rig, dut)
        assert result.joined, f"join after {name} failed: {result.line!r}"
        last = mark.join_requests()[-1].dev_nonce
        stored = swd.read_field("dev_nonce")
        rows.append((name, last, stored))
    wrong = [row for row in rows if row[2] != row[1] + 1]
    assert not wrong, ("the DevNonce counter in NVM is not the last DevNonce on air + 1 "
                       "(restart, last on air, NVM): " + "; ".join(map(str, wrong)))


def test_factory_fresh_start_begins_one_nonce_history(rig, dut, network, power, swd) -> None:  # type: ignore[no-untyped-def]
    """NVM erased through SWD (a factory-fresh unit), identity written again through the console,
    the device registered anew: its nonces start over and then never repeat across power cycles."""
    lw = rig.rig.dut.lorawan
    swd.erase_nvm()
    dut.wait_ready(Deadline.after(rig.clock, 30.0))
    dut.set_dev_eui(lw.dev_eui)
    dut.set_join_eui(lw.join_eui)
    dut.set_app_key(lw.app_key)
    if lw.nwk_key is not None:
        dut.set_nwk_key(lw.nwk_key)
    network.remove_device(lw.dev_eui)  # a re-provisioned unit: the join server forgets its old nonces
    network.add_device(lw.device_config(rig.rig.network, name=rig.rig.name))
    mark = since_now(rig, network)
    for n in range(3):
        result = join_now(rig, dut)
        assert result.joined, f"join {n + 1} of the factory-fresh DUT failed: {result.line!r}\n{describe(mark.events())}"
        power.power_cycle(OFF_TIME_S)
        dut.wait_ready(Deadline.after(rig.clock, 30.0))
    requests = mark.join_requests()
    if _counter(rig):
        assert requests and requests[0].dev_nonce == 0, (
            f"a factory-fresh LoRaWAN {lw.version} DUT must start its DevNonce counter at 0:\n{describe(requests)}")
    _assert_never_reused(rig, requests, "after a factory-fresh start and power cycles")


def test_replayed_devnonce_is_rejected_and_the_dut_recovers(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    """The reference network rejects a join-request it has seen; a DUT whose next nonce the network
    already knows is rejected once and joins with a fresh nonce."""
    mark = since_now(rig, network)
    result = join_now(rig, dut)
    assert result.joined, f"join failed: {result.line!r}\n{describe(mark.events())}"
    first = [e for e in mark.join_requests() if e.outcome == "join_accepted"][-1]

    # the same join-request again, as a replaying attacker (or a gateway echo) would send it
    replay_mark = since_now(rig, network)
    network.handle_uplink(UplinkFrame(first.phy_payload, first.frequency_hz, 7, 125_000, time=rig.clock.now()))
    replayed = replay_mark.join_requests()
    assert replayed and replayed[0].outcome == "rejected", (
        f"the network accepted a replayed join-request (DevNonce {first.dev_nonce}):\n{describe(replayed)}")

    if not _counter(rig):
        return
    state = network.device(rig.rig.dut.lorawan.dev_eui)
    state.last_dev_nonce = first.dev_nonce + 1  # as if the DUT's next nonce had been used (a lost NVM write)
    mark = since_now(rig, network)
    result = join_now(rig, dut)
    requests = mark.join_requests()
    assert any(e.outcome == "rejected" for e in requests), f"no join-request was rejected:\n{describe(requests)}"
    assert result.joined, (f"after a rejected DevNonce the DUT did not recover with a fresh one: {result.line!r}\n"
                           f"{describe(requests)}")
    accepted = [e for e in requests if e.outcome == "join_accepted"]
    assert accepted and accepted[-1].dev_nonce > first.dev_nonce + 1, describe(requests)


# -- the power-fail campaign ---------------------------------------------------------------------------


@dataclass
class Cycle:
    """One cut of the campaign: where it fell relative to the join-request, and what followed."""

    cycle: int
    offset_ms: float  # cut instant minus the join-request's end of transmission (calibrated), rig ms
    dev_nonce_on_air: int | None
    nvm_dev_nonce: int | None
    outcome: str


# Where the cuts fall. The supply's own latency (command to output off) is unknown and differs per
# bench, so the campaign homes in on the instant that matters — the join-request's end of
# transmission as the supply really cuts it — with a staircase: a cut that let the request reach
# the network moves the next one earlier, a cut that stopped it moves it later; the step starts at
# FIRST_STEP_S and halves at each reversal down to MIN_STEP_S. Each cut is spread by +-SPREAD_S
# around that centre, so the cuts keep landing just before, during and just after the end of
# transmission and the following NVM write, where a late write loses the nonce.
FIRST_STEP_S = 0.064
MIN_STEP_S = 0.001
SPREAD_S = 0.004


@pytest.mark.slow
def test_power_fail_campaign_never_reuses_devnonce(request, rig, dut, network, power) -> None:  # type: ignore[no-untyped-def]
    """Cut the supply at random instants around the join-request, M times: no DevNonce reused."""
    cycles = request.config.getoption("--power-fail-cycles")
    rng = random.Random(request.config.getoption("--power-fail-seed"))
    clock = rig.clock
    probe = _probe(rig)
    nvm_field = probe is not None and "dev_nonce" in rig.rig.dut.swd.nvm_layout
    result = join_now(rig, dut)  # the DUT now joins by itself at every boot
    assert result.joined, f"the first join failed: {result.line!r}"
    clock.sleep(2.0)  # the DUT writes its new session to NVM after reporting the join

    # calibrate: power-up to the end of the join-request, in rig time
    power.output(False)
    clock.sleep(OFF_TIME_S)
    mark = since_now(rig, network)
    power.output(True)
    on_at = clock.now()
    seen = mark.wait(rig, 60.0, mtype="join_request")
    if not seen:
        pytest.skip("the DUT does not join by itself after power-up: the campaign needs a join at boot")
    tx_end = seen[0].time - on_at
    Since(network, mark.dev_eui, mark.t0).wait(rig, 30.0, mtype="join_accept")

    campaign = since_now(rig, network)
    log: list[Cycle] = []
    centre, step, last_on_air = 0.0, FIRST_STEP_S, None
    for n in range(cycles):
        power.output(False)
        clock.sleep(OFF_TIME_S)
        before = since_now(rig, network)
        power.output(True)
        offset = centre + rng.uniform(-SPREAD_S, SPREAD_S)
        power.cut_at(clock.now() + tx_end + offset).wait(5.0)
        clock.sleep(0.3)  # let a frame already on its way reach the network
        on_air = before.join_requests()
        nvm = None
        if nvm_field:
            nvm = probe.read_field("dev_nonce")
        log.append(Cycle(n + 1, round(offset * 1000, 3), on_air[0].dev_nonce if on_air else None, nvm,
                         on_air[0].outcome if on_air else "no join-request on air"))
        if last_on_air is not None and bool(on_air) != last_on_air:
            step = max(step / 2, MIN_STEP_S)
        last_on_air = bool(on_air)
        centre += -step if on_air else step
    power.output(True)
    Since(network, campaign.dev_eui, clock.now()).wait(rig, 120.0, mtype="join_request", outcome="join_accepted")
    _write_campaign(request, rig, log)
    requests = campaign.join_requests()
    stopped = sum(1 for c in log if c.dev_nonce_on_air is None)
    assert 0 < stopped < cycles, (f"the campaign did not reach the join-request's end of transmission: {stopped} of "
                                  f"{cycles} cuts stopped it (cycle log: {_campaign_path(request, rig)})")
    _assert_never_reused(rig, requests, f"over {cycles} supply cuts around the join-request's end "
                                        f"({tx_end:.3f} s after power-up; {stopped} cuts stopped it); cycle log: "
                                        f"{_campaign_path(request, rig)}")


def _campaign_path(request: Any, rig: Any) -> Path:
    name = request.node.name.replace("/", "_")
    return Path(rig.reports_dir) / "campaigns" / f"{rig.rig.name}-{name}.csv"


def _write_campaign(request: Any, rig: Any, log: list[Cycle]) -> None:
    """The cycle log as CSV next to the reports, and as a report attachment when Allure runs."""
    path = _campaign_path(request, rig)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(log[0]).keys()) if log else ["cycle"])
        writer.writeheader()
        writer.writerows(asdict(c) for c in log)
    request.node.user_properties.append(("power_fail_cycles", str(path)))
    try:
        import allure

        allure.attach.file(str(path), name="power-fail campaign (cycle log)", attachment_type=allure.attachment_type.CSV)
    except Exception:  # allure not active: the CSV stays next to the reports
        pass
