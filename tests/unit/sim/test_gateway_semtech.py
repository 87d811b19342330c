"""The virtual gateway's Semtech UDP packet forwarder, with a plain UDP socket playing the network server."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hil.clock import ManualClock, ScaledClock
from hil.sim.gateway import TMST_MODULO, Concentrator, SemtechForwarder
from hil.sim.gateway.semtech_forwarder import PULL_ACK, PULL_DATA, PULL_RESP, PUSH_ACK, PUSH_DATA, TX_ACK
from hil.sim.radio import RadioMedium
from hil.sim.scheduler import Scheduler
from tests.unit.sim.test_gateway_support import FakeDut, pump, thread_names

EUI = "0016c001f153a14c"


class FakeServer:
    """The network server's end of the UDP link."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.gateway: tuple[str, int] | None = None

    def recv(self, scheduler: Scheduler | None = None, timeout_s: float = 5.0) -> tuple[int, int, bytes, bytes]:
        """The next datagram as (token, type, EUI, JSON body), pumping a manual scheduler meanwhile."""
        self.sock.settimeout(0.002 if scheduler is not None else timeout_s)
        got: list[bytes] = []

        def arrived() -> bool:
            try:
                data, self.gateway = self.sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError):
                return False
            got.append(data)
            return True

        if scheduler is not None:
            pump(scheduler, arrived, timeout_s)
        else:
            assert arrived()
        data = got[0]
        assert data[0] == 2, data
        return int.from_bytes(data[1:3], "big"), data[3], data[4:12], data[12:]

    def send(self, datagram: bytes) -> None:
        assert self.gateway is not None
        self.sock.sendto(datagram, self.gateway)

    def ack(self, token: int, kind: int) -> None:
        self.send(bytes([2]) + token.to_bytes(2, "big") + bytes([kind]))

    def pull_resp(self, txpk: dict[str, Any], token: int = 0x1234) -> None:
        self.send(bytes([2]) + token.to_bytes(2, "big") + bytes([PULL_RESP]) + json.dumps({"txpk": txpk}).encode())

    def close(self) -> None:
        self.sock.close()


class Rig:
    def __init__(self, clock: ManualClock | ScaledClock | None = None, stat_interval_s: float | None = None,
                 **gw: Any) -> None:
        self.clock = clock or ManualClock()
        self.scheduler = Scheduler(self.clock)
        self.medium = RadioMedium(self.scheduler)
        self.gateway = Concentrator(self.medium, self.scheduler, **gw)
        self.dut = FakeDut(self.medium, self.scheduler)
        self.server = FakeServer()
        self.fwd = SemtechForwarder(self.gateway, self.scheduler, "127.0.0.1", self.server.port, EUI,
                                    keepalive_s=5.0, push_timeout_s=1.0, stat_interval_s=stat_interval_s,
                                    rng=random.Random(3))

    def start(self) -> None:
        """Start and answer the first PULL_DATA."""
        self.fwd.start()
        token, kind, eui, body = self.server.recv()
        assert (kind, eui, body) == (PULL_DATA, bytes.fromhex(EUI), b"")
        self.server.ack(token, PULL_ACK)
        pump(self.scheduler, lambda: self.fwd.stats().pull_acked == 1)

    def uplink(self, ack: bool = True) -> tuple[Any, dict[str, Any]]:
        tx = self.dut.send()
        self.scheduler.run_until(tx.end)
        token, kind, eui, body = self.server.recv()
        while kind == PULL_DATA:  # a keepalive came due first
            self.server.ack(token, PULL_ACK)
            token, kind, eui, body = self.server.recv()
        assert kind == PUSH_DATA and eui == bytes.fromhex(EUI)
        if ack:
            acked = self.fwd.stats().push_acked
            self.server.ack(token, PUSH_ACK)
            pump(self.scheduler, lambda: self.fwd.stats().push_acked == acked + 1)
        return tx, json.loads(body)["rxpk"][0]

    def close(self) -> None:
        self.fwd.stop()
        self.server.close()


def txpk(tmst: int | None, *, sf: int = 7, freq: float = 868.1, **extra: Any) -> dict[str, Any]:
    data = base64.b64decode("YKb+agGgAwCSzNbb")
    pk: dict[str, Any] = {"freq": freq, "rfch": 0, "powe": 14, "modu": "LORA", "datr": f"SF{sf}BW125",
                          "codr": "4/5", "ipol": True, "size": len(data), "data": base64.b64encode(data).decode()}
    pk.update({"imme": True} if tmst is None else {"tmst": tmst})
    pk.update(extra)
    return pk


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    r.start()
    try:
        yield r
    finally:
        r.close()


def test_push_data_carries_the_rxpk(rig: Rig) -> None:
    rig.clock.advance(12.0)
    tx, rxpk = rig.uplink()
    assert rxpk["tmst"] == round(tx.end * 1_000_000)
    assert (rxpk["chan"], rxpk["rfch"], rxpk["freq"], rxpk["stat"], rxpk["modu"]) == (0, 0, 868.1, 1, "LORA")
    assert (rxpk["datr"], rxpk["codr"], rxpk["rssi"], rxpk["size"]) == ("SF7BW125", "4/5", -76, len(tx.phy_payload))
    assert base64.b64decode(rxpk["data"]) == tx.phy_payload and isinstance(rxpk["lsnr"], float)
    assert rxpk["time"].startswith("2023-11-14T22:13:32.") and rxpk["time"].endswith("Z") and len(rxpk["time"]) == 27
    stats = rig.fwd.stats()
    assert (stats.push_sent, stats.push_acked, stats.push_missed) == (1, 1, 0)


def test_pull_resp_is_transmitted_at_rxpk_tmst_plus_one_second(rig: Rig) -> None:
    tx, rxpk = rig.uplink()
    rig.server.pull_resp(txpk(rxpk["tmst"] + 1_000_000, sf=9), token=0xBEEF)
    token, kind, eui, body = rig.server.recv(rig.scheduler)
    assert (token, kind, eui) == (0xBEEF, TX_ACK, bytes.fromhex(EUI))
    assert json.loads(body) == {"txpk_ack": {"error": "NONE"}}
    rig.scheduler.run_until(tx.end + 2.0)
    down = rig.dut.heard[0].tx
    assert down.start == pytest.approx(tx.end + 1.0, abs=1e-6)
    assert (down.frequency_hz, down.spreading_factor, down.downlink) == (868_100_000, 9, True)
    assert rig.fwd.stats().tx_acks == {"NONE": 1}


def test_too_late_when_the_pull_resp_arrives_after_the_deadline(rig: Rig) -> None:
    tx, rxpk = rig.uplink()
    rig.clock.advance(0.99)  # 10 ms before RX1
    rig.server.pull_resp(txpk(rxpk["tmst"] + 1_000_000))
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "TOO_LATE"}}
    rig.server.pull_resp(txpk(rxpk["tmst"] + 2_000_000, sf=12, freq=869.525))
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "NONE"}}
    rig.server.pull_resp(txpk(rxpk["tmst"] + 2_000_000, sf=12, freq=869.525))
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "COLLISION_PACKET"}}
    rig.server.pull_resp(txpk(rxpk["tmst"] + 3_000_000, freq=915.0))
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "TX_FREQ"}}
    rig.server.pull_resp(txpk(rxpk["tmst"] + 5_000_000, tmms=1234))
    del_tmst = txpk(None, tmms=1234)
    del del_tmst["imme"]
    rig.server.pull_resp(del_tmst)
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "NONE"}}  # tmst wins
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "GPS_UNLOCKED"}}


def test_immediate_txpk(rig: Rig) -> None:
    rig.clock.advance(2.0)
    rig.server.pull_resp(txpk(None))
    assert json.loads(rig.server.recv(rig.scheduler)[3]) == {"txpk_ack": {"error": "NONE"}}
    rig.scheduler.run_for(2.0)
    assert rig.dut.heard[0].tx.start == pytest.approx(3.0, abs=1e-6)


def test_tmst_wrap_around() -> None:
    r = Rig(tmst_offset=TMST_MODULO - 400_000)
    r.start()
    try:
        tx, rxpk = r.uplink()
        rx1 = (rxpk["tmst"] + 1_000_000) % TMST_MODULO
        assert rx1 < rxpk["tmst"]
        r.server.pull_resp(txpk(rx1))
        assert json.loads(r.server.recv(r.scheduler)[3]) == {"txpk_ack": {"error": "NONE"}}
        r.scheduler.run_for(2.0)
        assert r.dut.heard[0].tx.start == pytest.approx(tx.end + 1.0, abs=1e-6)
    finally:
        r.close()


def test_keepalive_and_missed_acks(rig: Rig) -> None:
    rig.uplink(ack=False)
    rig.scheduler.run_for(1.0)
    assert rig.fwd.stats().push_missed == 1
    rig.scheduler.run_for(4.0)  # t = 5 s: the second PULL_DATA
    token, kind, _, _ = rig.server.recv()
    assert kind == PULL_DATA
    rig.scheduler.run_for(5.0)  # no PULL_ACK for it
    assert rig.server.recv()[1] == PULL_DATA
    stats = rig.fwd.stats()
    assert (stats.pull_sent, stats.pull_acked, stats.pull_missed) == (3, 1, 1)


def test_stat_object_every_interval() -> None:
    r = Rig(stat_interval_s=10.0)
    r.start()
    try:
        r.uplink()
        r.clock.advance(4.0)
        r.scheduler.run_until(10.0)
        kinds: dict[int, bytes] = {}
        for _ in range(2):  # a PULL_DATA at 5 s and the stat at 10 s
            _, kind, _, body = r.server.recv()
            kinds[kind] = body
        stat = json.loads(kinds[PUSH_DATA])["stat"]
        assert (stat["rxnb"], stat["rxok"], stat["rxfw"], stat["ackr"], stat["dwnb"], stat["txnb"]) == (1, 1, 1, 100.0, 0, 0)
        assert stat["time"].endswith(" GMT")
    finally:
        r.close()


def test_garbage_datagrams_are_dropped(rig: Rig) -> None:
    rig.server.send(b"\x02")
    rig.server.send(b"\x01\x00\x00\x01")  # protocol version 1
    rig.server.send(b"\x02\x00\x00\x09")  # unknown type
    rig.server.send(b"\x02\x00\x01\x03not json")
    rig.server.send(b"\x02\x00\x02\x03[]")
    rig.server.pull_resp(txpk(5_000_000, size=3), token=3)  # size mismatch
    rig.server.pull_resp(txpk(5_000_000, datr="SF13BW125"), token=4)
    rig.server.pull_resp(txpk(5_000_000, modu="FSK"), token=5)
    rig.server.pull_resp(txpk(5_000_000, data="***"), token=6)
    rig.server.pull_resp(txpk(5_000_000, codr="5/4"), token=7)
    no_timing = txpk(5_000_000)
    del no_timing["tmst"]
    rig.server.pull_resp(no_timing, token=8)
    rig.server.ack(0x7777, PUSH_ACK)  # unknown token: ignored
    rig.server.pull_resp(txpk(5_000_000), token=0x0A0B)
    token, kind, _, body = rig.server.recv(rig.scheduler)  # the first answer is for the good one
    assert (token, kind, json.loads(body)) == (0x0A0B, TX_ACK, {"txpk_ack": {"error": "NONE"}})
    assert rig.fwd.stats().dropped_datagrams == 11
    assert rig.fwd.running and rig.scheduler.errors == []


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stop_leaves_no_thread_or_socket() -> None:
    fds, threads = open_fds(), thread_names()
    r = Rig()
    r.start()
    assert any(n.startswith("semtech-fwd-") for n in thread_names())
    r.fwd.stop()
    r.fwd.stop()  # idempotent
    assert thread_names() <= threads
    r.server.close()
    assert open_fds() == fds
    with pytest.raises(Exception, match="not started"):
        r.fwd.local_address


def test_server_away_does_not_break_the_forwarder() -> None:
    fds = open_fds()
    server = FakeServer()
    server.close()  # nobody listens: the kernel answers ICMP port unreachable
    clock = ManualClock()
    scheduler = Scheduler(clock)
    medium = RadioMedium(scheduler)
    gateway = Concentrator(medium, scheduler)
    dut = FakeDut(medium, scheduler)
    fwd = SemtechForwarder(gateway, scheduler, "127.0.0.1", server.port, EUI)
    fwd.start()
    try:
        for _ in range(3):
            dut.send()
            scheduler.run_for(6.0)
        assert fwd.running and fwd.stats().push_missed == 3 and scheduler.errors == []
    finally:
        fwd.stop()
    assert open_fds() == fds
    with pytest.raises(ValueError, match="16 hex"):
        SemtechForwarder(gateway, scheduler, "127.0.0.1", 1700, "00")


def test_class_a_on_a_running_scaled_clock(compressed_clock: Any) -> None:
    r = Rig(clock=compressed_clock(50))
    r.scheduler.start()
    try:
        r.fwd.start()
        token, kind, _, _ = r.server.recv()
        r.server.ack(token, PULL_ACK)
        tx = r.dut.send()
        token, kind, _, body = r.server.recv()
        r.server.ack(token, PUSH_ACK)
        tmst = json.loads(body)["rxpk"][0]["tmst"]
        r.server.pull_resp(txpk(tmst + 5_000_000))
        assert json.loads(r.server.recv()[3]) == {"txpk_ack": {"error": "NONE"}}
        done = threading.Event()
        r.scheduler.call_at(tx.end + 5.5, done.set)
        assert r.clock.wait(done, 30.0)
        assert r.dut.heard[0].tx.start == pytest.approx(tx.end + 5.0, abs=1e-6)
    finally:
        r.close()
        r.scheduler.stop()
