"""The provisioning command line on a private copy of the virtual rig (NVM and handler state in
files, so they outlive the process): a run killed with SIGKILL half-way completes on the next run
without a duplicate identity, and (``-m slow``) a batch of twenty units.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _private_rig(tmp_path: Path, name: str) -> Path:
    """A copy of the virtual rig whose DUT NVM and handler state live in files (they outlive the process)."""
    data = yaml.safe_load((ROOT / "rigs" / "sim.yaml").read_text())
    data["name"] = name  # its own lock: this session holds "sim"
    data["sim"]["dut"]["nvm_file"] = str(tmp_path / "dut-nvm.bin")
    data["sim"]["handler"]["state_file"] = str(tmp_path / "handler.json")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _station_cmd(rig_file: Path, store: Path, batch: str, count: int) -> list[str]:
    return [sys.executable, "-m", "hil", "provision", "--rig", str(rig_file), "--count", str(count),
            "--store", str(store), "--batch", batch, "--out", str(store.parent / "exports"), "-q"]


def _rows(store: Path) -> list[tuple[Any, ...]]:
    if not store.exists():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT unit_uid, dev_eui, status, attempts, app_key_enc FROM units ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet, or a write holds the file
        return []


def _run(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_run_killed_half_way_completes_without_duplicates(tmp_path: Path) -> None:
    rig_file = _private_rig(tmp_path, f"sim-resume-{os.getpid()}")
    store = tmp_path / "records.sqlite"
    cmd = _station_cmd(rig_file, store, "resume", 4)
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    in_progress: tuple[Any, ...] | None = None
    try:
        limit = time.monotonic() + 120.0  # a bound on the wait, not a speed check
        while time.monotonic() < limit and child.poll() is None:
            rows = _rows(store)
            busy = [r for r in rows if r[2] == "in_progress"]
            if sum(r[2] == "passed" for r in rows) >= 2 and busy:
                in_progress = busy[0]
                break
            try:
                child.wait(timeout=0.02)  # wait on the child between looks at its records
            except subprocess.TimeoutExpired:
                pass

    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        stderr = child.stderr.read() if child.stderr else ""
    assert in_progress is not None, f"the first run never had 2 passed units and a third under way:\n{stderr[-3000:]}"
    assert child.returncode == -signal.SIGKILL

    done = _run(cmd, timeout_s=300.0)
    assert done.returncode == 0, f"the second run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    rows = _rows(store)
    assert len(rows) == 4 and all(r[2] == "passed" for r in rows), rows
    assert len({r[1] for r in rows}) == 4 and len({r[0] for r in rows}) == 4  # no unit twice, no DevEUI twice
    resumed = next(r for r in rows if r[0] == in_progress[0])
    assert resumed[1] == in_progress[1] and resumed[4] == in_progress[4]  # its first identity, its first key
    assert len((tmp_path / "exports" / "resume" / "tts.csv").read_text().splitlines()) == 1 + 4
    bins = yaml.safe_load((tmp_path / "handler.json").read_text())["bins"]
    assert sorted(bins["PASS"]) == [1, 2, 3, 4] and not bins["FAIL"] and not bins["REJECT"]


@pytest.mark.slow
def test_twenty_units_from_the_command_line(tmp_path: Path) -> None:
    rig_file = _private_rig(tmp_path, f"sim-twenty-{os.getpid()}")
    store = tmp_path / "records.sqlite"
    done = _run(_station_cmd(rig_file, store, "twenty", 20), timeout_s=900.0)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    rows = _rows(store)
    assert len(rows) == 20 and all(r[2] == "passed" for r in rows)
    assert len({r[1] for r in rows}) == 20 and len({r[4] for r in rows}) == 20
    assert "20/20 passed" in done.stdout


