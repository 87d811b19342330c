"""PtyPort: a pty that pyserial opens like a UART; one I/O thread; no leaks."""

from __future__ import annotations

import os
import threading

import pytest

from hil.sim.dut.console.pty_port import PtyPort
from tests.unit.sim.fake_firmware import READ_TIMEOUT_S, open_serial, read_until


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def echo_port():
    """A port that answers every chunk with it upper-cased."""
    holder: dict[str, PtyPort] = {}
    port = PtyPort("echo", on_data=lambda data: holder["port"].write(data.upper()))
    holder["port"] = port
    yield port
    port.close()


def test_pyserial_round_trip(echo_port: PtyPort) -> None:
    with open_serial(echo_port.path) as ser:
        ser.write(b"hello pty\n")
        assert read_until(ser, b"\n") == b"HELLO PTY\n"


def test_raw_mode_no_echo_of_output(echo_port: PtyPort) -> None:
    # Without tty.setraw the slave's ECHO would feed our output back to us as input.
    with open_serial(echo_port.path) as ser:
        ser.write(b"a\n")
        assert read_until(ser, b"\n") == b"A\n"
        ser.write(b"b\n")
        assert read_until(ser, b"\n") == b"B\n"


def test_submit_runs_jobs_in_order_on_the_io_thread(echo_port: PtyPort) -> None:
    seen: list[tuple[int, threading.Thread]] = []
    done = threading.Event()
    for i in range(5):
        echo_port.submit(lambda i=i: seen.append((i, threading.current_thread())))
    echo_port.submit(done.set)
    assert done.wait(READ_TIMEOUT_S)
    assert [i for i, _ in seen] == list(range(5))
    assert all(t is echo_port.thread for _, t in seen)


def test_a_failing_handler_does_not_kill_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    raised = threading.Event()
    holder: dict[str, PtyPort] = {}

    def handler(data: bytes) -> None:
        if not raised.is_set():
            raised.set()
            raise RuntimeError("boom")
        holder["port"].write(b"alive\n")

    with PtyPort("fragile", on_data=handler) as port:
        holder["port"] = port
        with open_serial(port.path) as ser:
            ser.write(b"first\n")
            assert raised.wait(READ_TIMEOUT_S)
            ser.write(b"second\n")
            assert read_until(ser, b"alive\n") == b"alive\n"
    assert "input handler failed" in caplog.text


def test_writing_with_nobody_reading_never_blocks() -> None:
    with PtyPort("unread", max_backlog=4096) as port:
        done = threading.Event()
        for _ in range(100):
            port.write(b"x" * 1024)  # 100 KiB: more than the pty's ~20 KiB buffer plus the backlog
        port.submit(done.set)
        assert done.wait(READ_TIMEOUT_S)
        assert port.dropped_bytes > 0


def test_close_leaves_no_thread_or_fd() -> None:
    fds_before = _open_fds()
    threads_before = set(threading.enumerate())
    port = PtyPort("leak-check", on_data=lambda data: None)
    with open_serial(port.path) as ser:
        ser.write(b"hi\n")
    port.close()
    assert not port.thread.is_alive()
    assert set(threading.enumerate()) == threads_before
    assert _open_fds() == fds_before


def test_close_is_idempotent_and_later_calls_are_ignored() -> None:
    port = PtyPort("twice")
    port.close()
    port.close()
    port.write(b"ignored")
    port.submit(lambda: None)
    assert port.closed


def test_close_from_its_own_callback() -> None:
    fds_before = _open_fds()
    holder: dict[str, PtyPort] = {}
    port = PtyPort("self-close", on_data=lambda data: holder["port"].close())
    holder["port"] = port
    with open_serial(port.path) as ser:
        ser.write(b"bye\n")
        port.thread.join(READ_TIMEOUT_S)
    assert not port.thread.is_alive()
    port.close()  # from another thread now: nothing left to do
    assert _open_fds() == fds_before
