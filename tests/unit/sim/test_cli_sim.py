"""``python -m hil sim``: endpoints printed, Ctrl-C stops everything, --smoke passes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _port_open(resource: str) -> bool:
    host, port = resource.split("::")[1:3]
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_ctrl_c_stops_the_rig_and_frees_its_ports() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hil", "sim"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the rig prints its endpoints within a second
            lines.append(line)
            if line.strip().startswith("time scale"):
                break
        psu = next(line.split()[1] for line in lines if line.strip().startswith("psu"))
        assert _port_open(psu)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0 and "virtual rig stopped: relay off, supply off" in out
    assert "console" in "".join(lines) and "/dev/pts/" in "".join(lines)
    assert not _port_open(psu)


def test_smoke_run() -> None:
    done = subprocess.run([sys.executable, "-m", "hil", "sim", "--smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SET on: relay reports 230 V, meter reads 230.0 V" in done.stdout
    assert "hil-virtual-relay" not in done.stdout + done.stderr  # the passphrase is never printed


def test_bad_rig_file_is_one_line_exit_2(tmp_path: Path) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text("sim:\n  dut: {app_key: 00112233445566778899aabbccddeeff, colour: red}\n")
    done = subprocess.run([sys.executable, "-m", "hil", "sim", "--rig", str(rig)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and "sim.dut.colour" in done.stderr and done.stderr.count("\n") == 1
