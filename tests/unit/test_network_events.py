"""Reference network: the event log (filters, subscribers, report rows, threads) and the loopback transport."""

from __future__ import annotations

import csv
import io
import threading
from typing import Any

import pytest

from hil.lorawan.types import EUI64
from hil.network import (
    DownlinkFrame,
    EventLog,
    FrameEvent,
    GatewayTransport,
    LoopbackTransport,
    TransportClosedError,
    TxAck,
    UplinkFrame,
)
from tests.unit.network_support import Device, make_server, otaa_config


def _event(n: int = 0, **fields) -> FrameEvent:
    fields.setdefault("outcome", "accepted")
    return FrameEvent(time=float(n), direction="up", mtype="unconfirmed_data_up", **fields)


def test_filter_by_fields_predicates_and_device_forms():
    log = EventLog()
    log.append(_event(1, dev_eui="0004a30b00000001", fcnt=1))
    log.append(_event(2, dev_eui="0004a30b00000002", fcnt=5, outcome="rejected"))
    assert [e.time for e in log.filter(outcome="rejected")] == [2.0]
    assert [e.time for e in log.filter(fcnt=lambda n: n > 2)] == [2.0]
    assert [e.time for e in log.filter(dev_eui=EUI64("0004A30B00000001"))] == [1.0]
    assert [e.time for e in log.filter(dev_eui="00-04-A3-0B-00-00-00-02")] == [2.0]
    assert log.last(direction="up").time == 2.0 and log.last(direction="down") is None
    with pytest.raises(TypeError, match="no field colour"):
        log.filter(colour="red")


def test_subscribe_and_unsubscribe_and_a_failing_subscriber_does_not_break_logging():
    log = EventLog()
    seen: list[FrameEvent] = []
    stop = log.subscribe(seen.append)
    log.subscribe(lambda e: 1 / 0)
    log.append(_event(1))
    stop()
    log.append(_event(2))
    assert [e.time for e in seen] == [1.0] and len(log) == 2


def test_rows_are_flat_and_csv_ready():
    log = EventLog()
    log.append(_event(1, payload=b"\x01\xab", mac_commands=("LinkCheckReq", "DeviceTimeReq"), phy_payload=b"\x40"))
    [row] = log.to_rows()
    assert row["payload"] == "01ab" and row["phy_payload"] == "40"
    assert row["mac_commands"] == "LinkCheckReq,DeviceTimeReq" and row["faults"] == ""
    assert all(not isinstance(v, (bytes, tuple, list, dict)) for v in row.values())
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerows(log.to_rows())
    assert "LinkCheckReq,DeviceTimeReq" in out.getvalue()


def test_maxlen_keeps_the_newest():
    log = EventLog(maxlen=3)
    for n in range(5):
        log.append(_event(n))
    assert [e.time for e in log.events()] == [2.0, 3.0, 4.0]


def test_log_is_thread_safe():
    log = EventLog()
    seen: list[FrameEvent] = []
    log.subscribe(seen.append)

    def writer(base: int) -> None:
        for n in range(500):
            log.append(_event(base + n))

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log) == 2000 and len(seen) == 2000
    assert len({e.time for e in log.events()}) == 2000


def test_server_logs_every_frame_in_and_out_with_rig_time():
    server, _, clock = make_server()
    config = otaa_config(1)
    server.add_device(config)
    dev = Device(config, server.transport, clock)  # type: ignore[arg-type]
    clock.advance(12.5)
    dev.joined(0)
    clock.advance(7)
    dev.up(1, b"c", confirmed=True)
    rows = server.events.to_rows()
    assert [(r["direction"], r["mtype"], r["outcome"]) for r in rows] == [
        ("up", "join_request", "join_accepted"),
        ("down", "join_accept", "sent"),
        ("up", "confirmed_data_up", "accepted"),
        ("down", "unconfirmed_data_down", "sent"),
    ]
    assert [r["time"] for r in rows] == [12.5, 12.5, 19.5, 19.5]
    assert rows[1]["downlink_id"] == 1 and rows[3]["downlink_id"] == 2


def test_server_subscriber_sees_events_live():
    server, _, clock = make_server()
    seen: list[str] = []
    server.events.subscribe(lambda e: seen.append(e.outcome))
    server.transport.inject_uplink(UplinkFrame(b"\x00", 868_100_000, 7, 125_000))  # type: ignore[union-attr]
    assert seen == ["rejected"]


# -- loopback transport ---------------------------------------------------------------------------


def test_loopback_is_a_gateway_transport_and_round_trips():
    received: list[DownlinkFrame] = []
    loop = LoopbackTransport(on_downlink=received.append, auto_ack=True)
    assert isinstance(loop, GatewayTransport)
    ups: list[UplinkFrame] = []
    acks: list[TxAck] = []
    loop.start(ups.append, acks.append)
    frame = UplinkFrame(b"\x40", 868_100_000, 7, 125_000)
    loop.inject_uplink(frame)
    assert ups == [frame]
    down = DownlinkFrame(7, "0016c001f153a14c", [])
    loop.send_downlink(down)
    assert received == [down] and loop.sent == [down]
    assert acks == [TxAck(7, ["OK"], "0016c001f153a14c")] and acks[0].sent
    assert loop.take_sent() == [down] and loop.sent == []
    loop.close()
    with pytest.raises(TransportClosedError):
        loop.inject_uplink(frame)
    with pytest.raises(TransportClosedError):
        loop.send_downlink(down)


def test_loopback_before_start():
    with pytest.raises(TransportClosedError, match="before start"):
        LoopbackTransport().inject_uplink(UplinkFrame(b"", 1, 7, 125_000))


def test_server_survives_a_failing_gateway_and_a_failing_application():
    class BrokenGateway(LoopbackTransport):
        def send_downlink(self, frame: DownlinkFrame) -> None:
            raise ConnectionError("broker gone")

    from hil.clock import ManualClock
    from hil.lorawan.region import get_region
    from hil.network import NetworkServer

    clock = ManualClock()
    loop = BrokenGateway()
    server = NetworkServer(get_region("EU868"), clock, transport=loop)
    config = otaa_config(1)
    server.add_device(config)
    server.on_uplink(lambda up: 1 / 0)
    dev = Device(config, loop, clock)
    loop.inject_uplink(UplinkFrame(dev.join_request(0), 868_100_000, 7, 125_000))
    failed = server.events.last(direction="down")
    assert failed.outcome == "send_failed" and "broker gone" in failed.reason
    assert server.events.filter(outcome="error") == []


def test_wait_for_returns_matching_events_or_nothing_at_the_deadline(compressed_clock: Any) -> None:
    import threading

    from hil.clock import Deadline
    from hil.network.events import EventLog, FrameEvent

    clock = compressed_clock(100)
    log = EventLog()
    threading.Timer(0.01, lambda: log.append(FrameEvent(time=1.0, direction="up", mtype="unconfirmed_data_up",
                                                         outcome="accepted", fport=2))).start()
    assert [e.fport for e in log.wait_for(clock, Deadline.after(clock, 60.0), fport=2)] == [2]
    assert log.wait_for(clock, Deadline.after(clock, 1.0), fport=3) == []
