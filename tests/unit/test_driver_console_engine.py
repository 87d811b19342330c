"""The console driver's plumbing without a LoRaWAN module: the expect engine on pyserial's
``loop://``, ports that appear late (``socket://`` and a device path that re-enumerates), a lost
port, the timeout message, the transcript file and its redaction, threads left behind."""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from drivers.console import (
    ConsolePortError,
    ConsoleTimeout,
    DutConsole,
    ExpectEngine,
    SerialTransport,
    Transcript,
)
from hil.clock import Deadline, ScaledClock
from hil.faults import RigFault
from hil.sim.clock import StallFreeClock
from hil.sim.dut.console import PtyPort

SCALE = 50


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("console-reader")]


class HookClock(StallFreeClock):
    """A compressed clock that runs ``hook`` on the first sleep (the transport's retry wait), so a
    port appears exactly between the first and the second open attempt. :meth:`start` it."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__(SCALE)
        self._hook: Callable[[], None] | None = hook

    def sleep(self, seconds: float) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        super().sleep(seconds)


@pytest.fixture
def clock(compressed_clock: Callable[[float], ScaledClock]) -> ScaledClock:
    return compressed_clock(SCALE)


@pytest.fixture
def loop_engine(clock: ScaledClock, tmp_path: Path) -> Iterator[ExpectEngine]:
    transport = SerialTransport("loop://", 115200, clock)
    transport.open()
    engine = ExpectEngine(transport, clock, Transcript(tmp_path / "loop.log"), name="loop console")
    engine.start()
    yield engine
    engine.stop()
    transport.close()
    engine.transcript.close()
    assert not _reader_threads()


# -- the engine -----------------------------------------------------------------------------------


def test_expect_matches_lines_once_in_order(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    for line in ("first 1", "OK", "second 2", "OK"):
        loop_engine.send_line(line)
    match = loop_engine.expect(r"second (\d)", Deadline.after(clock, 5))
    assert match.group(1) == "2"
    assert loop_engine.expect(re.compile("^OK$"), Deadline.after(clock, 5)).group(0) == "OK"
    with pytest.raises(ConsoleTimeout):  # both OKs are behind the cursor now
        loop_engine.expect("^OK$", Deadline.after(clock, 0.5))
    assert [line.text for line in loop_engine.lines()] == ["first 1", "OK", "second 2", "OK"]


def test_flush_skips_what_nobody_waited_for(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    loop_engine.send_line("OK")
    loop_engine.expect("^OK$", Deadline.after(clock, 5))  # wait for it to be read
    loop_engine.send_line("OK")
    loop_engine.send_line("marker")
    loop_engine.expect("marker", Deadline.after(clock, 5))
    loop_engine.flush()
    with pytest.raises(ConsoleTimeout):
        loop_engine.expect("^OK$", Deadline.after(clock, 0.5))


def test_expect_any_reports_which_pattern_and_when(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    loop_engine.send_line("+EVT:JOIN_FAILED_RX_TIMEOUT")
    hit = loop_engine.expect_any([r"JOINED", r"JOIN[ _]FAILED_(?P<reason>\w+)"], Deadline.after(clock, 5))
    assert hit.index == 1 and hit.match.group("reason") == "RX_TIMEOUT"
    assert 0 <= hit.line.time <= clock.now()


def test_lines_split_on_any_line_end_across_chunks(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    for chunk in (b"one\r", b"\ntwo\n", b"thr", b"ee\rfour\r\n\r\n"):
        loop_engine.transport.write(chunk)
    loop_engine.expect("^four$", Deadline.after(clock, 5))
    assert [line.text for line in loop_engine.lines()] == ["one", "two", "three", "four"]


def test_timeout_names_pattern_tail_and_log(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    for i in range(15):
        loop_engine.send_line(f"line {i}")
    loop_engine.expect("line 14", Deadline.after(clock, 5))
    loop_engine.transport.write(b"\x1b[31mno end\x00")  # a partial line with control characters
    settle = Deadline.after(clock, 50)
    while not loop_engine.partial() and not settle.expired:
        clock.sleep(0.05)
    with pytest.raises(ConsoleTimeout) as caught:
        loop_engine.expect(r"^\+EVT:JOINED$", Deadline.after(clock, 1.0))
    err = caught.value
    text = str(err)
    assert isinstance(err, AssertionError)  # the DUT's failure, not a rig error
    assert r"/^\+EVT:JOINED$/" in text and "within 1.0 rig s" in text
    assert "< line 14" in text and "< line 2" not in text  # the tail: the last ten lines only
    assert r"\x1b[31mno end\x00" in text and "(no line end yet)" in text  # control characters escaped
    assert str(loop_engine.transcript.path) in text and err.log_path == str(loop_engine.transcript.path)
    assert err.patterns == (r"^\+EVT:JOINED$",)


def test_transcript_file_has_both_directions_in_rig_time(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    loop_engine.send_line("AT+VER=?")
    loop_engine.expect("VER", Deadline.after(clock, 5))
    path = loop_engine.transcript.path
    assert path is not None
    lines = path.read_text().splitlines()
    assert re.fullmatch(r"\[\s*\d+\.\d{3}\] > AT\+VER=\?", lines[0])
    assert re.fullmatch(r"\[\s*\d+\.\d{3}\] < AT\+VER=\?", lines[1])  # loop:// echoes what was sent
    assert loop_engine.transcript.text().splitlines() == lines


def test_transcript_redacts_every_line(tmp_path: Path, clock: ScaledClock) -> None:
    transcript = Transcript(tmp_path / "t.log", redact=lambda s: s.replace("hunter2", "****"))
    transcript.add(clock.now(), ">", "set key hunter2")
    transcript.add(clock.now(), "<", "echo hunter2\x07")
    transcript.close()
    text = (tmp_path / "t.log").read_text()
    assert "hunter2" not in text and "set key ****" in text and r"echo ****\x07" in text


def test_a_failing_redactor_withholds_the_line(tmp_path: Path, clock: ScaledClock) -> None:
    def broken(text: str) -> str:
        raise RuntimeError(text)

    transcript = Transcript(tmp_path / "t.log", redact=broken)
    entry = transcript.add(clock.now(), ">", "AT+APPKEY=2B7E151628AED2A6ABF7158809CF4F3C")
    transcript.close()
    assert "2B7E" not in entry.text and "2B7E" not in (tmp_path / "t.log").read_text()


def test_collect_gathers_a_burst_of_lines(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    since = loop_engine.mark()
    loop_engine.transport.write(b"a\r\nb\r\nc\r\n")
    got = loop_engine.collect(since, Deadline.after(clock, 5), quiet_s=0.5)
    assert [line.text for line in got] == ["a", "b", "c"]


# -- ports -----------------------------------------------------------------------------------------


def test_socket_port_that_listens_late_is_waited_for(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        conn.sendall(b"\r\nRAKwireless booted\r\n")

    server_thread = threading.Thread(target=serve, name="test-serial-server")

    def start_listening() -> None:
        server.listen(1)
        server_thread.start()

    clock = HookClock(start_listening)
    clock.start()
    console = DutConsole(f"socket://127.0.0.1:{port}", "rak3172", clock, transcript_path=tmp_path / "c.log")
    try:
        console.open(Deadline.after(clock, 30))
        assert console.transport.attempts == 2  # refused once, then the port was there
        console.expect("booted", Deadline.after(clock, 10))
    finally:
        console.close()
        clock.stop()
        server_thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()
    assert not _reader_threads()
    assert "2 attempt(s)" in (tmp_path / "c.log").read_text()


def test_device_path_that_reenumerates_is_waited_for(tmp_path: Path) -> None:
    link = tmp_path / "usb-Silicon_Labs_CP2102-if00-port0"  # a /dev/serial/by-id style name

    def answer(data: bytes) -> None:
        for _ in range(data.count(b"\r")):
            pty.write(b"\r\nOK\r\n")

    pty = PtyPort("late-uart", on_data=answer)
    clock = HookClock(lambda: os.symlink(pty.path, link))
    clock.start()
    console = DutConsole(str(link), "rak3172", clock, transcript_path=tmp_path / "c.log")
    try:
        console.open(Deadline.after(clock, 30))
        console.wait_ready(Deadline.after(clock, 10))
        assert console.transport.attempts == 2
    finally:
        console.close()
        clock.stop()
        pty.close()


def test_port_that_never_appears_is_a_rig_fault(tmp_path: Path, clock: ScaledClock) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    console = DutConsole(url, "rak3172", clock, transcript_path=tmp_path / "c.log")
    try:
        with pytest.raises(ConsolePortError) as caught:
            console.open(Deadline.after(clock, 2))
    finally:
        server.close()
        console.close()
    assert isinstance(caught.value, RigFault) and not isinstance(caught.value, AssertionError)  # a rig fault
    assert url in str(caught.value) and "attempt(s)" in str(caught.value)
    assert console.transport.attempts > 1


def test_bad_url_fails_at_once(tmp_path: Path, clock: ScaledClock) -> None:
    transport = SerialTransport("nosuchscheme://x", 9600, clock)
    with pytest.raises(ConsolePortError, match="not a usable port URL"):
        transport.open(Deadline.after(clock, 100))
    assert transport.attempts == 1


def test_lost_port_raises_a_rig_fault_without_waiting_out_the_deadline(tmp_path: Path, clock: ScaledClock) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    console = DutConsole(f"socket://127.0.0.1:{server.getsockname()[1]}", "rak3172", clock,
                         transcript_path=tmp_path / "c.log")
    try:
        console.open(Deadline.after(clock, 10))
        conn, _ = server.accept()
        conn.sendall(b"hello\r\n")
        console.expect("hello", Deadline.after(clock, 10))
        conn.close()  # the "USB cable" is pulled
        deadline = Deadline.after(clock, 600)
        with pytest.raises(ConsolePortError, match="lost"):
            console.expect("never", deadline)
        assert deadline.remaining > 300  # it did not wait the deadline out
    finally:
        console.close()
        server.close()
    assert "port lost" in (tmp_path / "c.log").read_text()
    assert not _reader_threads()


def test_close_leaves_no_thread_and_is_idempotent(tmp_path: Path, clock: ScaledClock) -> None:
    console = DutConsole("loop://", "rak3172", clock, transcript_path=tmp_path / "c.log")
    console.open()
    assert console.is_open and len(_reader_threads()) == 1
    thread = console.engine.thread
    console.close()
    console.close()
    assert thread is not None and not thread.is_alive()
    assert not _reader_threads() and not console.is_open
    with pytest.raises(ConsolePortError, match="not open"):
        console.expect("x", Deadline.after(clock, 1))


def test_reopen_after_close_appends_to_the_transcript(tmp_path: Path, clock: ScaledClock) -> None:
    console = DutConsole("loop://", "rak3172", clock, transcript_path=tmp_path / "c.log")
    console.open()
    console.send_line("before")
    console.reopen(Deadline.after(clock, 5))
    console.send_line("after")
    console.close()
    text = (tmp_path / "c.log").read_text()
    assert "> before" in text and "> after" in text and text.count("# opened") == 2


def test_collect_on_a_stopped_engine_is_a_rig_fault(loop_engine: ExpectEngine, clock: ScaledClock) -> None:
    since = loop_engine.mark()
    loop_engine.stop()
    with pytest.raises(ConsolePortError, match="not open"):
        loop_engine.collect(since, Deadline.after(clock, 600), quiet_s=0.5)
