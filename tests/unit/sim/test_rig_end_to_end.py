"""The whole virtual rig through the real libraries: pyserial on the pty console, pyvisa-py on the
SCPI supply and DMM, paho-mqtt (ChirpStack Gateway Bridge JSON) or UDP (Semtech) between the
virtual gateway and the reference network server."""

from __future__ import annotations

import os
import socket
import threading
from typing import Iterator

import pytest

from hil.relay.protocol import Command, RelayKey, RelayMessage, encode
from hil.sim.bench import Bench, open_bench, sim_config
from hil.sim.rig import VirtualRig

KEY = RelayKey("hil-virtual-relay")


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    overrides = getattr(request, "param", {})
    yield from open_bench(sim_config(**overrides))


def join(bench: Bench) -> None:
    bench.power(True)
    bench.expect("Current Work Mode")  # the end of the boot banner
    bench.send("AT+JOIN")
    bench.expect("OK")
    bench.expect("+EVT:JOINED", timeout_rig_s=120)


def test_join_relay_round_trip_and_feedback(bench: Bench) -> None:
    join(bench)
    hello = bench.relay_uplink(KEY)  # unsolicited 0x83 after the join carries the counter
    assert hello.cmd == 0x83 and not hello.relay_state
    msg = RelayMessage(Command.SET_OUTPUT, hello.fcnt, 0, bytes([1, 0, 0, 0, 0, 0]))
    bench.ns.enqueue_downlink(bench.rig.config.dut.dev_eui, 10, encode(msg, KEY))  # Class C: at once
    answer = bench.relay_uplink(KEY)
    assert answer.cmd == 0x81 and answer.relay_state and answer.mains_sensed and answer.output_voltage == 230
    reading = float(bench.dmm.query("MEAS:VOLT:AC?"))
    assert reading == pytest.approx(230.0)
    assert bench.rig.firmware is not None and bench.rig.firmware.joined


def test_supply_off_silences_the_dut_and_keeps_nvm(bench: Bench) -> None:
    join(bench)
    bench.relay_uplink(KEY)  # the relay's hello: the join's NVM writes have settled by now
    fw = bench.rig.firmware
    assert fw is not None
    nonce_before = fw.view.get("dev_nonce")
    bench.power(False)
    assert float(bench.psu.query("MEAS:CURR? (@1)")) == 0.0
    bench.send("AT+VER=?")
    with pytest.raises(AssertionError, match="expected"):
        bench.expect("OK", timeout_rig_s=2)  # a dead UART answers nothing
    assert not fw.running
    bench.power(True)
    bench.expect("Current Work Mode")
    bench.expect("+EVT:JOINED", timeout_rig_s=120)  # joined before: rejoins by itself at boot
    assert fw.view.get("dev_nonce") > nonce_before


@pytest.mark.parametrize("bench", [{"gateway": {"transport": "semtech-udp"}}], indirect=True)
def test_join_over_semtech_udp(bench: Bench) -> None:
    join(bench)
    assert any(e.mtype == "join_accept" for e in bench.ns.events.events())


def _port_open(resource: str) -> bool:
    host, port = resource.split("::")[1:3]
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_rig_stops_without_leftovers() -> None:
    before = {t.name for t in threading.enumerate()}
    gen = open_bench(sim_config())
    bench = next(gen)
    broker = bench.rig.broker
    endpoints = bench.rig.endpoints
    assert endpoints is not None and _port_open(endpoints.psu_resource) and _port_open(endpoints.dmm_resource or "")
    gen.close()
    assert {t.name for t in threading.enumerate()} <= before
    assert broker is not None and broker.process.poll() is not None
    assert not _port_open(endpoints.psu_resource) and not _port_open(endpoints.dmm_resource or "")
    assert not os.path.exists(endpoints.nvm_file)  # the temporary NVM of a fresh device is gone too


def test_unknown_defect_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="no_such_bug"):
        VirtualRig(sim_config(defects=("no_such_bug",)))
