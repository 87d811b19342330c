"""``python -m hil console``: stdin to the DUT, the DUT's lines shown with rig times, keys masked,
transcript saved, rig left safe at EOF and on Ctrl-C."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from hil.cli import main
from hil.cli.console import LineSource, interact
from hil.clock import Deadline, SystemClock
from hil.rigfile.loader import REPO_ROOT

SIM_APP_KEY = "2b7e151628aed2a6abf7158809cf4f3c"  # rigs/sim.yaml's test key


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HIL_LOCK_DIR": str(tmp_path / "locks"), "PYTHONPATH": str(REPO_ROOT)}


def transcript_paths(out: str) -> tuple[str, str]:
    start = re.search(r"^# transcript: (\S+)$", out, re.M)
    end = re.search(r"^# transcript saved: (\S+)$", out, re.M)
    assert start and end, out
    return start[1], end[1]


def assert_no_key(*texts: str) -> None:
    for text in texts:
        flat = re.sub(r"[\s:\-]", "", text).lower()
        assert SIM_APP_KEY not in flat


def test_console_copies_stdin_to_the_dut_and_masks_keys(tmp_path: Path, env: dict[str, str]) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "hil", "console", "--reports-dir", str(reports)],
                          input="AT+VER=?\nAT+APPKEY=?\n", capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=20)
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, out + err
    assert "Traceback" not in err
    lines = out.splitlines()
    sent = next(i for i, line in enumerate(lines) if line.endswith("] > AT+VER=?"))
    assert any(re.fullmatch(r"\[\s*\d+\.\d{3}\] < AT\+VER=1\.0\.0", line) for line in lines[sent + 1:]), out
    assert any(line.endswith("] < AT+APPKEY=****") for line in lines), out
    first, last = transcript_paths(out)
    assert first == last == str(reports / "console" / "sim.log")
    transcript = Path(first).read_text(encoding="utf-8")
    assert "< AT+VER=1.0.0" in transcript and "< AT+APPKEY=****" in transcript
    assert_no_key(out, err, transcript)
    assert lines[-1] == "# rig left safe: supply off"
    assert not list((tmp_path / "locks").glob("*.holder.json"))  # the rig was given back


def test_console_ends_on_ctrl_c_and_leaves_the_rig_safe(tmp_path: Path, env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hil", "console", "--reports-dir", str(tmp_path / "reports")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        got = b""
        deadline = Deadline.after(SystemClock(), 15.0)
        while b"# the DUT answers" not in got and not deadline.expired and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], deadline.remaining)
            if ready:
                got += os.read(proc.stdout.fileno(), 4096)
        assert b"# the DUT answers" in got, got
        proc.send_signal(signal.SIGINT)  # stdin stays open: only Ctrl-C ends it
        rest, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = (got + rest).decode()
    assert proc.returncode == 0, out + err.decode()
    assert "# interrupted" in out and out.rstrip().endswith("# rig left safe: supply off")
    transcript_paths(out)


def test_console_without_power_the_dut_stays_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"AT\n")
    os.close(write_fd)
    with os.fdopen(read_fd, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        threads = set(threading.enumerate())
        code = main(["console", "--no-power", "--reports-dir", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "DUT not powered by this command (--no-power)" in out
    assert "did not answer 'AT'" in out
    assert re.search(r"^\[\s*[\d.]+\] > AT$", out, re.M) and "< OK" not in out
    assert out.rstrip().endswith("# rig left safe: supply off")
    assert [t.name for t in threading.enumerate() if t not in threads and t.is_alive()] == []


# -- the pieces ---------------------------------------------------------------------------------------

def take_all(source: LineSource) -> list[str]:
    clock = SystemClock()
    lines: list[str] = []
    while True:
        got = source.take(clock, Deadline.after(clock, 5.0))
        if got is None:
            return lines
        assert got, "no line within 5 s"
        lines += got


def test_line_source_splits_lines_and_ends_at_eof() -> None:
    read_fd, write_fd = os.pipe()
    source = LineSource(read_fd).start()
    try:
        os.write(write_fd, b"AT\r\nAT+VER=?\nAT+AP")
        os.write(write_fd, "PKEY=?\n\ncaf\u00e9".encode())
        os.close(write_fd)
        assert take_all(source) == ["AT", "AT+VER=?", "AT+APPKEY=?", "", "caf\u00e9"]
    finally:
        source.stop()
        os.close(read_fd)
    assert not source.thread.is_alive()


def test_line_source_stops_while_waiting_for_input() -> None:
    read_fd, write_fd = os.pipe()
    source = LineSource(read_fd).start()
    clock = SystemClock()
    assert source.take(clock, Deadline.after(clock, 0.05)) == []
    source.stop()
    source.stop()  # idempotent
    assert not source.thread.is_alive()
    os.close(read_fd)
    os.close(write_fd)


class FakeEngine:
    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.count = 0

    def mark(self) -> int:
        return self.count

    def collect(self, since: int, deadline: Deadline, quiet_s: float) -> list[Any]:
        self.log.append(("collect", since, round(deadline.remaining), quiet_s))
        self.count += 2  # an answer and OK
        return []


class FakeConsole:
    """What interact() uses of a DutConsole."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.engine = FakeEngine(self.log)
        self.profile = type("Profile", (), {"command_timeout_s": 5.0})()

    def send_line(self, text: str) -> None:
        self.log.append(("send", text))


def test_interact_waits_for_each_answer_before_the_next_line() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"AT\n\nAT+VER=?\n")
    os.close(write_fd)
    console = FakeConsole()
    source = LineSource(read_fd).start()
    try:
        assert interact(console, source, None, SystemClock(), slice_s=0.05, quiet_s=0.5) == 3
    finally:
        source.stop()
        os.close(read_fd)
    assert console.log == [
        ("send", "AT"), ("collect", 0, 5, 0.5),
        ("send", ""),  # an empty line waits for nothing
        ("send", "AT+VER=?"), ("collect", 2, 5, 0.5),
    ]
