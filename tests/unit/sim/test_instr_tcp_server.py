"""The raw-socket line server under the virtual SCPI instruments."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from hil.sim.instruments.tcp_server import LineServer, ServerError, SocketInstrument
from hil.sim.scheduler import Scheduler

TIMEOUT_S = 2.0  # real seconds; every socket read in these tests is bounded by it


def echo(line: str) -> str | None:
    if line == "silent":
        return None
    if line == "boom":
        raise RuntimeError("handler bug")
    return f"echo:{line}"


class Client:
    """A raw-socket client reading whole reply lines (one recv may carry several)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT_S)
        self._reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def line(self) -> str:
        line = self._reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError(f"closed after {line!r}")
        return line.decode()

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def server():
    srv = LineServer(echo, name="test-lines")
    srv.start()
    yield srv
    srv.stop()
    assert srv.threads() == []


def test_lines_crlf_partial_writes_and_silent_commands(server: LineServer) -> None:
    with Client(server.address) as sock:
        sock.send(b"one\r\ntw")
        assert sock.line() == "echo:one\n"
        sock.send(b"o\nsilent\n\nthree\n")  # no reply to "silent" or to the empty line
        assert sock.line() == "echo:two\n"
        assert sock.line() == "echo:three\n"


def test_several_clients_and_a_handler_bug_does_not_kill_the_server(server: LineServer) -> None:
    clients = [Client(server.address) for _ in range(3)]
    try:
        for i, sock in enumerate(clients):
            sock.send(b"boom\n" + f"c{i}\n".encode())
        for i, sock in enumerate(clients):
            assert sock.line() == f"echo:c{i}\n"
        assert server.client_count == 3
    finally:
        for sock in clients:
            sock.close()


def test_stop_closes_clients_and_the_listener_and_joins_threads() -> None:
    srv = LineServer(echo, name="stopper")
    address = srv.start()
    sock = Client(address)
    sock.send(b"hi\n")
    assert sock.line() == "echo:hi\n"
    assert len(srv.threads()) == 2
    srv.stop()
    assert srv.threads() == []
    assert sock.sock.recv(10) == b""  # the server closed our connection
    sock.close()
    with pytest.raises(OSError):
        Client(address).close()
    with pytest.raises(ServerError, match="not started"):
        _ = srv.address
    srv.stop()  # idempotent


def test_restart_and_busy_port() -> None:
    srv = LineServer(echo, name="first")
    host, port = srv.start()
    try:
        other = LineServer(echo, port=port, name="second")
        with pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            other.start()
    finally:
        srv.stop()
    srv.start()
    with Client(srv.address) as sock:
        sock.send(b"again\n")
        assert sock.line() == "echo:again\n"
    srv.stop()


def test_an_overlong_line_is_dropped_and_the_client_keeps_working() -> None:
    srv = LineServer(echo, name="long", max_line_bytes=1000)
    srv.start()
    try:
        with Client(srv.address) as sock:
            sock.send(b"x" * 5000)
            sock.send(b"\nok\n" + b"y" * 1001 + b"\nfine\n")  # one too long whatever the segmentation
            assert sock.line() == "echo:ok\n"
            assert sock.line() == "echo:fine\n"
    finally:
        srv.stop()


class Upper(SocketInstrument):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(name="upper", **kwargs)  # type: ignore[arg-type]
        self.threads: list[str] = []

    def handle_line(self, line: str) -> str | None:
        self.threads.append(threading.current_thread().name)
        return line.upper()


def test_socket_instrument_resource_and_scheduler_handoff(compressed_clock: Any) -> None:
    clock = compressed_clock(100)
    scheduler = Scheduler(clock, name="handoff-sched")
    scheduler.start()
    inst = Upper(scheduler=scheduler)
    try:
        host, port = inst.start()
        assert inst.resource == f"TCPIP0::127.0.0.1::{port}::SOCKET"
        with Client((host, port)) as sock:
            sock.send(b"abc\n")
            assert sock.line() == "ABC\n"
        assert inst.threads == ["handoff-sched"]  # executed on the scheduler's thread
    finally:
        inst.stop()
        scheduler.stop()
    without = Upper()
    with without:
        with Client(without.address) as sock:
            sock.send(b"xyz\n")
            assert sock.line() == "XYZ\n"
    assert without.threads[0].startswith("upper-client-")
