"""The TCP probe server: pyocd's JSON-lines protocol on a pre-bound port; a client that vanishes
without closing the probe leaves the unit free; stop() leaves no thread, connection or port."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from hil.clock import Deadline
from hil.sim.scheduler import Scheduler
from hil.sim.swd import DebugUnit
from hil.sim.swd.server import ProbeServer


def request(stream, conn: socket.socket, number: int, name: str, *args: object) -> dict:  # type: ignore[no-untyped-def]
    conn.sendall(json.dumps({"id": number, "request": name, "arguments": list(args)}).encode() + b"\n")
    return json.loads(stream.readline())


def test_serves_the_unit_and_stops_cleanly(unit: DebugUnit, scheduler: Scheduler) -> None:
    before = set(threading.enumerate())
    server = ProbeServer(unit).start()
    assert server.probe_uid == f"remote:127.0.0.1:{server.port}" and server.port > 0  # known before any client
    with socket.create_connection((server.host, server.port), timeout=10) as conn, conn.makefile("rb") as stream:
        assert request(stream, conn, 1, "hello", 1)["status"] == 0
        assert request(stream, conn, 2, "readprop", "unique_id") == {"id": 2, "status": 0, "result": unit.name}
        assert request(stream, conn, 3, "open")["status"] == 0 and unit.owner is not None
        assert request(stream, conn, 4, "read_dp", 0) == {"id": 4, "status": 0, "result": 0x2BA01477}
    # the client went away without 'close': the unit is free again once its connection has ended
    deadline, never = Deadline.after(scheduler.clock, 200.0), threading.Event()  # 2 real s at time_scale 100
    while unit.owner is not None and not deadline.expired:
        scheduler.clock.wait(never, 1.0)
    assert unit.owner is None
    with socket.create_connection((server.host, server.port), timeout=10) as conn, conn.makefile("rb") as stream:
        assert request(stream, conn, 1, "open")["status"] == 0
        server.stop()  # with this client still connected
        assert stream.readline() == b""  # its connection was closed
    assert unit.owner is None and set(threading.enumerate()) <= before
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()


def test_a_server_nobody_used_stops_at_once(unit: DebugUnit) -> None:
    before = set(threading.enumerate())
    ProbeServer(unit).start().stop()
    assert set(threading.enumerate()) <= before
