"""The probe on the whole virtual rig: halting stops the DUT's radio and console, a reset through
SWD keeps NVM, NVM written through SWD is what the firmware reads at its next boot, and pyocd in
another process (``pyocd commander``) reaches the DUT through the TCP probe server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from drivers.swd import SwdError, SwdProbe
from hil.clock import Deadline
from hil.rigfile import load_rig
from hil.sim.bench import Bench, open_bench, sim_config, wait_booted
from tests.unit.swd.images import FLASH, firmware, write_bin

ROOT = Path(__file__).resolve().parents[3]
JOINED_BEFORE = 0x08080089  # nvm_layout.yaml: joined at least once, so the firmware rejoins at every boot
LAYOUT = load_rig(ROOT / "rigs" / "sim.yaml").dut.swd.nvm_layout  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    yield from open_bench(sim_config())


@pytest.fixture
def probe(bench: Bench) -> Iterator[SwdProbe]:
    bench.power(True)
    wait_booted(bench)
    ep = bench.rig.endpoints
    assert ep is not None and ep.probe_uid is not None and ep.swd_target is not None
    p = SwdProbe(ep.probe_uid, ep.swd_target, bench.clock, LAYOUT).open()
    yield p
    p.close()
    bench.power(False)


def dut_transmissions(bench: Bench, since: float) -> list[float]:
    return [tx.start for tx in bench.rig.medium.log if not tx.downlink and tx.start >= since]


def console_silent(bench: Bench) -> bool:
    bench.send("AT")
    try:
        bench.expect("OK", timeout_rig_s=2.0)
    except AssertionError:
        return True
    return False


def test_halt_stops_the_radio_and_the_console(bench: Bench, probe: SwdProbe) -> None:
    fw = bench.rig.firmware
    assert fw is not None and fw.running
    probe.halt()
    assert console_silent(bench) and not fw.running and fw.halted
    probe.resume()
    wait_booted(bench)  # the console answers again
    probe.write_memory(JOINED_BEFORE, b"\x01")  # NVM through SWD: "joined before", so it joins at boot
    probe.reset("sysresetreq", halt=True)  # reboots, halted at the reset vector: nothing runs
    halted_at = bench.clock.now()
    bench.clock.sleep(5.0)
    assert probe.is_halted() and console_silent(bench)
    assert dut_transmissions(bench, halted_at) == []  # no join-request while halted
    resumed_at = bench.clock.now()
    probe.resume()
    bench.expect("+EVT:JOINED", timeout_rig_s=60)  # booted, read NVM, joined by itself
    sent = dut_transmissions(bench, halted_at)
    assert sent and min(sent) >= resumed_at


def test_swd_reset_keeps_nvm_and_nvm_writes_reach_the_next_boot(bench: Bench, probe: SwdProbe) -> None:
    fw = bench.rig.firmware
    assert fw is not None
    probe.write_memory(JOINED_BEFORE, b"\x00")  # no join at boot: nothing changes the counters
    probe.write_field("dev_nonce", 1234)
    probe.write_field("dev_eui", "70b3d57ed00000ab")
    assert str(fw.dev_eui) != "70b3d57ed00000ab"  # the running firmware read its settings at boot
    boots = len(fw.boots)
    probe.reset("hardware")
    wait_booted(bench)
    assert fw.boots[boots:] == ["swd_reset"] and str(fw.dev_eui) == "70b3d57ed00000ab"
    bench.send("AT+DEVEUI=?")
    assert "70b3d57ed00000ab" in bench.expect("70", timeout_rig_s=5).lower()
    assert probe.read_field("dev_nonce") == 1234  # the reset kept NVM
    assert str(probe.read_field("dev_eui")) == "70b3d57ed00000ab"
    bench.power(False)  # a power cycle between two accesses: the probe reconnects by itself
    bench.power(True)
    wait_booted(bench)
    assert probe.read_field("dev_nonce") == 1234
    bench.power(False)
    probe.close()
    with pytest.raises(SwdError, match="not powered"):
        SwdProbe(probe.probe_uid, probe.target, bench.clock, connect_timeout_s=0.5).open()


def test_pyocd_commander_in_another_process_uses_the_probe_server(bench: Bench) -> None:
    ep = bench.rig.endpoints
    assert ep is not None and ep.probe_server is not None and ep.probe_server.startswith("remote:127.0.0.1:")
    assert any(line.startswith("swd server   " + ep.probe_server) for line in ep.lines())
    bench.power(True)
    wait_booted(bench)
    fw = bench.rig.firmware
    assert fw is not None
    eeprom = fw.nvm.read(0x10, 8)
    commands = ["read32 0xE000ED00", "read8 0x08080010 8", "halt", "status", "go", "status"]
    args = [sys.executable, "-m", "pyocd", "commander", "-u", ep.probe_server, "-t", ep.swd_target or ""]
    for command in commands:
        args += ["-c", command]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    dump = next(line for line in out.stdout.splitlines() if line.startswith("08080010:"))
    assert "410fc241" in out.stdout and bytes.fromhex(dump.split(":", 1)[1].split("|")[0]) == eeprom
    assert "Halted" in out.stdout and "Running" in out.stdout
    assert fw.running and bench.rig.swd_unit.owner is None  # resumed and released on disconnect
    bench.power(False)


def test_a_remote_session_flashes_and_a_local_one_makes_the_probe_busy(bench: Bench, tmp_path: Path) -> None:
    ep = bench.rig.endpoints
    assert ep is not None and ep.probe_server is not None and ep.probe_uid is not None
    bench.power(True)
    image = write_bin(tmp_path / "fw.bin", firmware(1024, seed=3))
    with SwdProbe(ep.probe_server, "hil_relay_node", bench.clock) as remote:
        result = remote.flash(image)
        assert not result.skipped and bench.rig.swd_unit.memory.read(FLASH, 1024) == image.read_bytes()
        with pytest.raises(SwdError, match="busy"):
            SwdProbe(ep.probe_uid, "hil_relay_node", bench.clock).open()
    with SwdProbe(ep.probe_uid, "hil_relay_node", bench.clock) as local:
        assert local.flash(image).skipped
        with pytest.raises(SwdError, match="busy"):
            SwdProbe(ep.probe_server, "hil_relay_node", bench.clock).open(Deadline.after(bench.clock, 0.1))
    bench.power(False)
