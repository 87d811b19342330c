"""Rig lock (one session per rig, holder named, stale lock taken over) and the safe-state actions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hil.faults import RigBusy, RigFault
from hil.plugin.rig_lock import RigLock
from hil.plugin.safety import SafeState

HOLD = """
import sys, time
from pathlib import Path
from hil.plugin.rig_lock import RigLock
lock = RigLock("bench-07", lock_dir=Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def _holder_process(lock_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_session_fails_with_the_holders_name(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    try:
        with pytest.raises(RigBusy) as info:
            RigLock("bench-07", lock_dir=tmp_path).acquire()
        assert isinstance(info.value, RigFault)
        assert f"pid {proc.pid}" in str(info.value) and "--rig-wait" in str(info.value)
    finally:
        proc.communicate("\n", timeout=30)


def test_second_session_waits_for_the_rig(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    proc.stdin.write("\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    lock = RigLock("bench-07", lock_dir=tmp_path, wait_s=30)
    lock.acquire()  # returns once the holder exits
    try:
        assert lock.holder() is not None and lock.holder().pid == os.getpid()  # type: ignore[union-attr]
    finally:
        lock.release()
        proc.wait(30)


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proc = _holder_process(tmp_path)
    proc.kill()  # dies holding the lock: the OS releases it, the holder file stays
    proc.wait(30)
    assert json.loads((tmp_path / "bench-07.holder.json").read_text())["pid"] == proc.pid
    with RigLock("bench-07", lock_dir=tmp_path) as lock:
        assert lock.took_over is not None and lock.took_over.pid == proc.pid
    assert "took over the lock" in caplog.text
    assert not (tmp_path / "bench-07.holder.json").exists()


def test_safe_state_runs_every_action_even_after_a_failure() -> None:
    safe = SafeState()
    done: list[str] = []
    safe.register("relay off", lambda: (_ for _ in ()).throw(RuntimeError("relay unreachable")))
    safe.register("supply off", lambda: done.append("supply off"))
    failures = safe.make_safe("after test")
    assert done == ["supply off"] and failures == ["relay off failed: RuntimeError: relay unreachable"]


def test_actions_for_leaving_the_rig_do_not_run_between_tests() -> None:
    safe = SafeState()
    done: list[str] = []
    safe.register("relay off", lambda: done.append("relay off"))
    safe.register("mains off", lambda: done.append("mains off"), between_tests=False)
    safe.register("supply off", lambda: done.append("supply off"))
    assert safe.make_safe("after a test", between_tests=True) == [] and done == ["relay off", "supply off"]
    done.clear()
    safe.make_safe("exit")  # exit, signals and session end run them all, in order
    assert done == ["relay off", "mains off", "supply off"]
    assert safe.history[-3:] == [("exit", "relay off"), ("exit", "mains off"), ("exit", "supply off")]


SIGTERM_CHILD = """
import os, signal, sys
from hil.plugin.safety import SafeState
safe = SafeState()
safe.register("supply off", lambda: print("supply off", flush=True))
safe.install()
print("ready", flush=True)
sys.stdin.readline()
"""


def test_sigterm_makes_the_rig_safe() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "supply off" in out and proc.returncode == -signal.SIGTERM
