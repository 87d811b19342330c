"""The relay controller against the virtual relay node, through the network: commands, the
retries, and the frame-counter SYNC recovery (and its absence with the sync_silent defect)."""

from __future__ import annotations

from typing import Iterator

import pytest

from hil.relay.controller import NoCommunication, RelayController
from hil.relay.protocol import FPORT, RelayKey
from hil.sim.bench import Bench, open_bench, sim_config, wait_booted

KEY = RelayKey("hil-virtual-relay")


def joined_controller(bench: Bench, counter: int = 0) -> RelayController:
    dev_eui = bench.rig.config.dut.dev_eui
    controller = RelayController(KEY, lambda p: bench.ns.enqueue_downlink(dev_eui, FPORT, p), bench.clock,
                                 counter=counter)
    bench.ns.on_uplink(lambda up: controller.deliver(up.payload) if up.fport == FPORT else None)
    bench.power(True)
    wait_booted(bench)
    bench.send("AT+JOIN")
    bench.expect("+EVT:JOINED", timeout_rig_s=120)
    return controller


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    yield from open_bench(sim_config(**getattr(request, "param", {})))


def test_commands_and_counter(bench: Bench) -> None:
    controller = joined_controller(bench)
    hello = controller.wait_announcement()
    assert controller.counter == hello.fcnt
    on = controller.set_output(True)
    assert on.relay_state and on.mains_sensed and on.output_voltage == 230
    assert controller.get_output().relay_state
    off = controller.set_output(False)
    assert not off.relay_state and not off.mains_sensed
    assert controller.counter == hello.fcnt + 3


def test_sync_recovery_from_a_wrong_counter(bench: Bench) -> None:
    controller = joined_controller(bench)
    controller.wait_announcement()
    controller.counter = 40  # the controller believes a stale counter (e.g. after a battery swap)
    answer = controller.set_output(True)
    assert answer.relay_state
    notes = [p.note for p in controller.log if p.direction == "tx"]
    assert "after SYNC" in notes


@pytest.mark.parametrize("bench", [{"defects": ("sync_silent",)}], indirect=True)
def test_sync_silent_relay_means_no_communication(bench: Bench) -> None:
    controller = joined_controller(bench)
    controller.wait_announcement()
    controller.counter = 40
    with pytest.raises(NoCommunication, match="after 2 retries"):
        controller.set_output(True)
