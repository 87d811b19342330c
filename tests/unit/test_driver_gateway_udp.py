"""drivers.gateway.semtech_udp against raw UDP sockets playing a Semtech packet forwarder
(PROTOCOL.TXT v2; lorawan-facts §11): an "up" socket for PUSH_DATA and a "down" socket for
PULL_DATA / PULL_RESP / TX_ACK, as lora_pkt_fwd has."""

from __future__ import annotations

import base64
import json
import logging
import os
import select
import socket
import threading
from typing import Any

import pytest

from drivers.gateway import SemtechUdpTransport, TransportConnectError, TransportError
from drivers.gateway.semtech_udp import UdpPacketError, format_datr, parse_datr, rxpk_to_uplink, txpk_for
from hil.clock import ScaledClock
from hil.lorawan.frames import EncryptedJoinAccept, JoinRequest, decode
from hil.network import DownlinkFrame, DownlinkItem, NetworkServer, TransportClosedError, TxAck, UplinkFrame
from tests.unit.gateway_support import WAIT_S, Inbox, Observed
from tests.unit.network_support import EU868, NET_ID, otaa_config

EUI = bytes.fromhex("0016c001f153a14c")
GW = EUI.hex()
PHY = bytes.fromhex("80a6fe6a018005000138873a7304")
# PROTOCOL.TXT's example rxpk, with a real frame in "data" (the document's own string mixes the
# standard and URL-safe base64 alphabets and is not valid base64).
RXPK = {"time": "2013-03-31T16:21:17.528002Z", "tmst": 3512348611, "chan": 2, "rfch": 0, "freq": 866.349812,
        "stat": 1, "modu": "LORA", "datr": "SF7BW125", "codr": "4/6", "rssi": -35, "lsnr": 5.1, "size": len(PHY),
        "data": base64.b64encode(PHY).decode()}


# -- codec ---------------------------------------------------------------------------------------


def test_datr_both_ways():
    assert parse_datr("SF7BW125") == (7, 125_000)
    assert parse_datr("SF12BW500") == (12, 500_000)
    assert parse_datr("SF10BW800") == (10, 812_500)  # LoRa 2.4 GHz
    assert format_datr(12, 125_000) == "SF12BW125"
    assert format_datr(10, 812_500) == "SF10BW800"
    with pytest.raises(UdpPacketError, match="FSK"):
        parse_datr(50000)
    with pytest.raises(UdpPacketError, match="SF7BW125"):
        parse_datr("sf7")
    with pytest.raises(UdpPacketError, match="62501 Hz"):
        format_datr(7, 62_500 + 1)


def test_protocol_txt_rxpk_becomes_an_uplink():
    up = rxpk_to_uplink(RXPK, gateway_id=GW, uplink_id=0x1234, now=7.0)
    assert up == UplinkFrame(PHY, 866_349_812, 7, 125_000, "4/6", -35, 5.1, GW,
                             (3512348611).to_bytes(4, "big"), 0x1234, 7.0)


def test_rsig_gives_the_strongest_antenna_when_rssi_is_absent():
    rxpk = {k: v for k, v in RXPK.items() if k not in ("rssi", "lsnr")}
    rxpk["rsig"] = [{"ant": 0, "chan": 2, "rssic": -90, "lsnr": -3.0}, {"ant": 1, "chan": 2, "rssic": -70, "lsnr": 8.5}]
    up = rxpk_to_uplink(rxpk, gateway_id=GW)
    assert (up.rssi, up.snr) == (-70, 8.5)


@pytest.mark.parametrize("change, match", [
    ({"stat": -1}, r"rxpk\.stat -1 \(CRC failed\)"),
    ({"modu": "FSK", "datr": 50000}, r"rxpk\.modu 'FSK'"),
    ({"datr": "SF7"}, r"rxpk\.datr: expected a LoRa data rate"),
    ({"freq": "866.3"}, r"rxpk\.freq: expected a number"),
    ({"tmst": 2**32}, r"rxpk\.tmst: expected an integer in 0\.\.4294967295"),
    ({"tmst": 1.5}, r"rxpk\.tmst"),
    ({"data": "-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"}, r"rxpk\.data: expected base64"),
    ({"data": ""}, r"rxpk\.data: empty"),
    ({"codr": 5}, r"rxpk\.codr"),
    ({"rssi": True}, r"rxpk\.rssi: expected a number"),
])
def test_bad_rxpk_fields_are_named(change, match):
    with pytest.raises(UdpPacketError, match=match):
        rxpk_to_uplink({**RXPK, **change}, gateway_id=GW)


def test_txpk_tmst_is_context_plus_delay_with_32_bit_wrap():
    ctx = bytes.fromhex("c70c7419")  # tmst 3339482137 (lorawan-facts §10)
    rx1 = txpk_for(DownlinkItem(b"\x20\x01", 868_100_000, 7, 125_000, 14, 5.0, ctx))
    assert rx1 == {"tmst": 3344482137, "freq": 868.1, "rfch": 0, "powe": 14, "modu": "LORA", "datr": "SF7BW125",
                   "codr": "4/5", "ipol": True, "size": 2, "data": "IAE="}
    assert txpk_for(DownlinkItem(b"\x20", 869_525_000, 12, 125_000, 27, 6.0, ctx))["tmst"] == 3345482137
    late = (2**32 - 400_000).to_bytes(4, "big")  # 0.4 s before the counter wraps
    assert txpk_for(DownlinkItem(b"\x20", 868_100_000, 7, 125_000, 14, 1.0, late))["tmst"] == 600_000
    imme = txpk_for(DownlinkItem(b"\x60", 869_525_000, 12, 125_000, 14.4, None, b""))
    assert imme["imme"] is True and "tmst" not in imme and imme["powe"] == 14 and imme["freq"] == 869.525
    with pytest.raises(UdpPacketError, match="4-byte tmst context, got 0 bytes"):
        txpk_for(DownlinkItem(b"\x60", 868_100_000, 7, 125_000, 14, 1.0, b""))


# -- over UDP ------------------------------------------------------------------------------------


class FakeForwarder:
    """A packet forwarder's two sockets: ``up`` (PUSH_DATA) and ``down`` (PULL_DATA, PULL_RESP, TX_ACK)."""

    def __init__(self, server: tuple[str, int], clock: ScaledClock, eui: bytes = EUI) -> None:
        self.server, self.clock, self.eui = server, clock, eui
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.up, self.down):
            s.bind(("127.0.0.1", 0))

    def recv(self, sock: socket.socket) -> bytes:
        ready, _, _ = select.select([sock], [], [], self.clock.real_seconds(WAIT_S))
        assert ready, f"nothing received within {WAIT_S} rig s"
        return sock.recv(65535)

    def push(self, rxpks: list[dict[str, Any]], token: bytes = b"\x12\x34") -> bytes:
        """PUSH_DATA; returns the PUSH_ACK."""
        self.up.sendto(bytes([2]) + token + b"\x00" + self.eui + json.dumps({"rxpk": rxpks}).encode(), self.server)
        return self.recv(self.up)

    def pull(self, token: bytes = b"\xab\xcd") -> bytes:
        """PULL_DATA; returns the PULL_ACK."""
        self.down.sendto(bytes([2]) + token + b"\x02" + self.eui, self.server)
        return self.recv(self.down)

    def pull_resp(self) -> tuple[int, dict[str, Any]]:
        """The next PULL_RESP: (token as the bridge writes it, little-endian; txpk)."""
        data = self.recv(self.down)
        assert data[0] == 2 and data[3] == 0x03, data[:4]
        return int.from_bytes(data[1:3], "little"), json.loads(data[4:])["txpk"]

    def tx_ack(self, token: int, error: str | None = None) -> None:
        body = b"" if error is None else json.dumps({"txpk_ack": {"error": error}}).encode()
        self.down.sendto(bytes([2]) + token.to_bytes(2, "little") + b"\x05" + self.eui + body, self.server)

    def close(self) -> None:
        self.up.close()
        self.down.close()


@pytest.fixture
def clock(compressed_clock):
    return compressed_clock(100)


@pytest.fixture
def no_leaks():
    """Every thread and descriptor a test opens is gone when it ends."""
    threads, fds = set(threading.enumerate()), len(os.listdir("/proc/self/fd"))
    yield
    left = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert len(os.listdir("/proc/self/fd")) <= fds, "file descriptors leaked"


@pytest.fixture
def rig(clock, no_leaks):
    """A started transport, its callbacks' inboxes and a forwarder pointed at it."""
    count = threading.active_count()
    transport = SemtechUdpTransport(clock=clock)
    ups, acks = Inbox(clock), Inbox(clock)
    transport.start(ups.put, acks.put)
    gw = FakeForwarder(transport.address, clock)
    yield transport, gw, ups, acks
    transport.close()
    gw.close()
    assert threading.active_count() == count


def _frame(downlink_id: int = 0x1_2345, n: int = 2) -> DownlinkFrame:
    ctx = (3512348611).to_bytes(4, "big")
    items = [DownlinkItem(b"\x20\x01\x02", 866_349_812, 7, 125_000, 14, 1.0, ctx),
             DownlinkItem(b"\x20\x01\x02", 869_525_000, 12, 125_000, 27, 2.0, ctx)]
    return DownlinkFrame(downlink_id, GW, items[:n])


def test_push_data_is_acked_and_each_rxpk_delivered(rig, clock):
    transport, gw, ups, _ = rig
    assert transport.address[0] == "127.0.0.1" and transport.address[1] > 0
    second = {**RXPK, "tmst": 5, "freq": 868.1, "datr": "SF12BW125", "codr": "4/5"}
    assert gw.push([RXPK, second], token=b"\x12\x34") == b"\x02\x12\x34\x01"
    first, other = ups.wait(2, "uplinks")
    assert first.phy_payload == PHY and first.frequency_hz == 866_349_812 and first.gateway_id == GW
    assert (first.spreading_factor, first.bandwidth_hz, first.code_rate) == (7, 125_000, "4/6")
    assert (first.rssi, first.snr, first.context) == (-35, 5.1, (3512348611).to_bytes(4, "big"))
    assert first.uplink_id == 0x3412 and 0 <= first.time <= clock.now()
    assert (other.frequency_hz, other.spreading_factor, other.context) == (868_100_000, 12, b"\x00\x00\x00\x05")


def test_pull_data_is_acked_and_downlink_goes_to_the_pull_address(rig):
    transport, gw, _, acks = rig
    assert gw.pull(b"\xab\xcd") == b"\x02\xab\xcd\x04"
    assert transport.gateways == {GW: gw.down.getsockname()}
    transport.send_downlink(_frame(0x1_2345))
    token, txpk = gw.pull_resp()
    assert token == 0x2345  # downlink_id & 0xFFFF
    assert txpk == {"tmst": (3512348611 + 1_000_000) % 2**32, "freq": 866.349812, "rfch": 0, "powe": 14,
                    "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "ipol": True, "size": 3, "data": "IAEC"}
    gw.tx_ack(token)  # empty JSON: no error
    assert acks.wait(1, "acks") == [TxAck(0x1_2345, ["OK", "IGNORED"], GW)]
    assert acks.items[0].sent


def test_tx_ack_error_tries_the_next_item(rig):
    transport, gw, _, acks = rig
    gw.pull()
    transport.send_downlink(_frame(7))
    token, rx1 = gw.pull_resp()
    gw.tx_ack(token, "TOO_LATE")
    token2, rx2 = gw.pull_resp()
    assert token2 == token == 7
    assert rx2["tmst"] == (3512348611 + 2_000_000) % 2**32 and rx2["freq"] == 869.525 and rx2["datr"] == "SF12BW125"
    assert rx2["powe"] == 27
    gw.tx_ack(token, "NONE")
    assert acks.wait(1, "acks") == [TxAck(7, ["TOO_LATE", "OK"], GW)]


def test_every_item_refused(rig, caplog):
    transport, gw, _, acks = rig
    gw.pull()
    transport.send_downlink(_frame(8))
    token, _ = gw.pull_resp()
    gw.tx_ack(token, "COLLISION_PACKET")
    gw.pull_resp()
    with caplog.at_level(logging.WARNING, logger="drivers.gateway.semtech_udp"):
        gw.tx_ack(token, "WEIRD_ERROR")
        assert acks.wait(1, "acks") == [TxAck(8, ["COLLISION_PACKET", "INTERNAL_ERROR"], GW)]
    assert "'WEIRD_ERROR' is not a known txpk_ack error" in caplog.text
    assert not acks.items[0].sent


def test_immediate_and_unsendable_items(rig, caplog):
    transport, gw, _, acks = rig
    gw.pull()
    items = [DownlinkItem(b"\x60", 868_100_000, 7, 125_000, 14, 1.0, b""),  # delayed without a tmst context
             DownlinkItem(b"\x60", 869_525_000, 12, 125_000, 14, None, b"")]
    with caplog.at_level(logging.WARNING, logger="drivers.gateway.semtech_udp"):
        transport.send_downlink(DownlinkFrame(0x10000, GW, items))
    token, txpk = gw.pull_resp()
    assert token == 0 and txpk["imme"] is True and "tmst" not in txpk
    assert "item 0 for gateway 0016c001f153a14c cannot be sent" in caplog.text
    gw.tx_ack(token, "")
    assert acks.wait(1, "acks") == [TxAck(0x10000, ["INTERNAL_ERROR", "OK"], GW)]


def test_downlink_for_an_unknown_gateway_is_a_tx_ack_not_an_exception(rig, caplog):
    transport, _, _, acks = rig
    with caplog.at_level(logging.WARNING, logger="drivers.gateway.semtech_udp"):
        transport.send_downlink(DownlinkFrame(9, "0102030405060708", _frame().items))
    assert acks.items == [TxAck(9, ["INTERNAL_ERROR", "INTERNAL_ERROR"], "0102030405060708")]
    assert "gateway 0102030405060708 was never heard (no PULL_DATA)" in caplog.text


def test_garbage_datagrams_are_logged_and_dropped(rig, caplog):
    transport, gw, ups, _ = rig
    garbage = [
        (b"\x02\x00", "shorter than the 4-byte header"),
        (b"\x01\x00\x00\x02" + EUI, "protocol version 1, expected 2"),
        (b"\x02\x00\x00\x09" + EUI, "unknown identifier 0x09"),
        (b"\x02\x00\x00\x01", "PUSH_ACK, which only a server sends"),
        (b"\x02\x00\x00\x00\x00\x16", "PUSH_DATA from ('127.0.0.1'"),
        (b"\x02\x00\x00\x00" + EUI + b"{rxpk", "bad JSON"),
        (b"\x02\x00\x00\x00" + EUI + b"[]", "expected a JSON object"),
        (b"\x02\x00\x00\x05" + EUI + b"{]", "TX_ACK from gateway"),
        (b"\x02\x99\x99\x05" + EUI, "no downlink awaits it"),
    ]
    with caplog.at_level(logging.WARNING, logger="drivers.gateway.semtech_udp"):
        for datagram, _ in garbage:
            gw.up.sendto(datagram, transport.address)
        # None of them is answered: the next datagram read is the PUSH_ACK of a good PUSH_DATA.
        bad_rxpk = {**RXPK, "datr": 50000, "modu": "FSK"}
        assert gw.push([bad_rxpk, "nonsense", RXPK], token=b"\x00\x07") == b"\x02\x00\x07\x01"
        assert [u.phy_payload for u in ups.wait(1, "uplinks")] == [PHY]
    messages = [r.getMessage() for r in caplog.records]
    for (_, expected), message in zip(garbage, messages):
        assert expected in message
    assert "rxpk[0].modu 'FSK'" in messages[len(garbage)]
    assert "rxpk[1]: expected an object, got str" in messages[len(garbage) + 1]
    assert len(messages) == len(garbage) + 2


def test_a_failing_handler_does_not_stop_the_reader(clock, no_leaks, caplog):
    seen = Inbox(clock)

    def handler(up: UplinkFrame) -> None:
        seen.put(up)
        raise RuntimeError("server bug")

    transport = SemtechUdpTransport(clock=clock)
    transport.start(handler, lambda ack: None)
    gw = FakeForwarder(transport.address, clock)
    try:
        with caplog.at_level(logging.ERROR, logger="drivers.gateway.semtech_udp"):
            gw.push([RXPK])
            gw.push([RXPK])
            seen.wait(2, "uplinks")
        assert "the uplink handler failed" in caplog.text
    finally:
        transport.close()
        gw.close()


def test_lifecycle_errors(clock, no_leaks):
    transport = SemtechUdpTransport(clock=clock)
    host, port = transport.address
    with pytest.raises(TransportError, match="before start"):
        transport.send_downlink(_frame())
    with pytest.raises(TransportConnectError, match=f"cannot bind UDP {host}:{port}") as info:
        SemtechUdpTransport(host, port, clock=clock)
    assert (info.value.host, info.value.port) == (host, port)
    transport.start(lambda up: None, lambda ack: None)
    with pytest.raises(TransportError, match="already started"):
        transport.start(lambda up: None, lambda ack: None)
    transport.close()
    transport.close()
    with pytest.raises(TransportClosedError):
        transport.send_downlink(_frame())
    with pytest.raises(TransportClosedError):
        transport.start(lambda up: None, lambda ack: None)
    SemtechUdpTransport(clock=clock).close()  # never started: closes as well


# -- end to end: the reference network server behind the transport -------------------------------


def test_network_server_answers_a_join_through_a_packet_forwarder(clock, no_leaks):
    count = threading.active_count()
    acks = Inbox(clock)
    udp = SemtechUdpTransport(clock=clock)
    server = NetworkServer(EU868, clock, net_id=NET_ID, transport=Observed(udp, acks))
    gw = FakeForwarder(udp.address, clock)
    try:
        config = otaa_config(1)
        server.add_device(config)
        phy = JoinRequest(config.join_eui, config.dev_eui, 3).signed(config.root_key).to_bytes()
        rxpk = {**RXPK, "tmst": 2**32 - 1_000_000, "freq": 868.1, "codr": "4/5", "size": len(phy),
                "data": base64.b64encode(phy).decode()}
        gw.pull()
        gw.push([rxpk])
        token, rx1 = gw.pull_resp()
        assert rx1["tmst"] == 4_000_000  # + JOIN_ACCEPT_DELAY1 5 s, wrapped
        assert (rx1["freq"], rx1["datr"], rx1["ipol"], "imme" in rx1) == (868.1, "SF7BW125", True, False)
        accept = decode(base64.b64decode(rx1["data"]))
        assert isinstance(accept, EncryptedJoinAccept)
        assert accept.decrypt(config.root_key).mic_valid(config.root_key)
        gw.tx_ack(token, "TOO_LATE")
        token2, rx2 = gw.pull_resp()
        assert token2 == token and rx2["tmst"] == 5_000_000 and rx2["freq"] == 869.525
        assert rx2["datr"] == "SF12BW125" and rx2["data"] == rx1["data"]
        gw.tx_ack(token, None)
        (ack,) = acks.wait(1, "acks at the server")
        assert ack.statuses == ["TOO_LATE", "OK"] and ack.gateway_id == GW and ack.downlink_id & 0xFFFF == token
        assert server.tx_acks == [ack]
        assert server.events.last(direction="up", mtype="join_request").outcome == "join_accepted"
    finally:
        server.close()
        gw.close()
    assert threading.active_count() == count
