"""Semtech UDP packet-forwarder protocol v2: the server a packet forwarder is pointed at.

Behaves like ChirpStack Gateway Bridge's ``semtechudp`` backend: PUSH_DATA is answered with
PUSH_ACK and each ``rxpk`` becomes an UplinkFrame (``context`` = 4-byte big-endian ``tmst``,
``uplink_id`` = the datagram's token); PULL_DATA is answered with PULL_ACK and tells where the
gateway listens for downlinks. A DownlinkFrame goes out as PULL_RESP with token
``downlink_id & 0xFFFF`` (little-endian on the wire, as the bridge writes it), first item first;
a TX_ACK with an error makes it try the next item, and the final TxAck carries one status per
item (``OK`` for the one sent, ``IGNORED`` after it). Tokens are opaque to the forwarder, which
echoes the two bytes.

Threads: one reader thread (select on the socket and a stop pipe) calls the server's callbacks;
``send_downlink`` may be called from any thread. Datagrams that are not protocol v2 or not
valid are logged and dropped. No timing is done here: ``txpk.tmst`` is the uplink's
``tmst`` plus the item's delay, the forwarder schedules it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any, Mapping

from drivers.gateway import TransportConnectError, TransportError
from hil.protojson import decode_bytes, encode_bytes
from hil.clock import Clock
from hil.network.errors import TransportClosedError
from hil.network.transport import (
    DownlinkFrame,
    DownlinkItem,
    TxAck,
    TxAckHandler,
    TxAckStatus,
    UplinkFrame,
    UplinkHandler,
)

log = logging.getLogger(__name__)

__all__ = [
    "PROTOCOL_VERSION",
    "SemtechUdpTransport",
    "UdpPacketError",
    "format_datr",
    "parse_datr",
    "rxpk_to_uplink",
    "txpk_for",
]

PROTOCOL_VERSION = 2
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
_IDENTIFIERS = {PUSH_DATA: "PUSH_DATA", PUSH_ACK: "PUSH_ACK", PULL_DATA: "PULL_DATA", PULL_RESP: "PULL_RESP",
                PULL_ACK: "PULL_ACK", TX_ACK: "TX_ACK"}
_HEADER = 12  # version, token (2), identifier, gateway EUI (8)
_MAX_DATAGRAM = 65535
_JOIN_TIMEOUT_S = 5.0  # real seconds for the reader thread to finish its last datagram at close()
_TMST_MODULO = 2**32
_DATR_RE = re.compile(r"^SF(\d{1,2})BW(\d{1,4})$")
# LoRa 2.4 GHz bandwidths are written rounded in datr (SX1280: 812.5 kHz -> "BW800").
_BW_FROM_DATR = {200: 203_125, 400: 406_250, 800: 812_500, 1600: 1_625_000}
_BW_TO_DATR = {hz: khz for khz, hz in _BW_FROM_DATR.items()}
# txpk_ack.error values (PF PROTOCOL.TXT) other than NONE are TxAckStatus names.
_TX_ERRORS = frozenset(s.value for s in TxAckStatus) - {TxAckStatus.IGNORED.value, TxAckStatus.OK.value}
_CRC_STAT = {-1: "CRC failed", 0: "no CRC"}


class UdpPacketError(ValueError):
    """A packet-forwarder datagram, ``rxpk`` or downlink item that does not fit the protocol."""


# -- codec (pure functions) --------------------------------------------------------------------


def parse_datr(datr: object) -> tuple[int, int]:
    """``"SF7BW125"`` -> (7, 125000); UdpPacketError for FSK (a number) or anything else."""
    if isinstance(datr, (int, float)) and not isinstance(datr, bool):
        raise UdpPacketError(f"datr {datr!r} is an FSK bit rate; the network server takes LoRa only")
    match = _DATR_RE.match(datr) if isinstance(datr, str) else None
    if match is None:
        raise UdpPacketError(f"datr: expected a LoRa data rate like \"SF7BW125\", got {datr!r}")
    sf, khz = int(match.group(1)), int(match.group(2))
    return sf, _BW_FROM_DATR.get(khz, khz * 1000)


def format_datr(spreading_factor: int, bandwidth_hz: int) -> str:
    """(12, 125000) -> ``"SF12BW125"``; UdpPacketError for a bandwidth datr cannot name."""
    khz = _BW_TO_DATR.get(bandwidth_hz)
    if khz is None:
        if bandwidth_hz <= 0 or bandwidth_hz % 1000:
            raise UdpPacketError(f"bandwidth {bandwidth_hz} Hz cannot be written as a datr (kHz)")
        khz = bandwidth_hz // 1000
    return f"SF{spreading_factor}BW{khz}"


def _number(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UdpPacketError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _integer(obj: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UdpPacketError(f"{where}.{key}: expected an integer in {lo}..{hi}, got {value!r}")
    return value


def _signal(rxpk: Mapping[str, Any], where: str) -> tuple[float, float]:
    """(RSSI, SNR): the rxpk's own, else the strongest antenna's in ``rsig`` (multi-antenna forwarders)."""
    rssi, snr = _number(rxpk, "rssi", where), _number(rxpk, "lsnr", where)
    rsig = rxpk.get("rsig")
    if (rssi is None or snr is None) and isinstance(rsig, list):
        best: tuple[float, float] | None = None
        for i, entry in enumerate(rsig):
            if isinstance(entry, dict):
                level = _number(entry, "rssic", f"{where}.rsig[{i}]")
                if level is not None and (best is None or level > best[0]):
                    best = (level, _number(entry, "lsnr", f"{where}.rsig[{i}]") or 0.0)
        if best is not None:
            rssi = best[0] if rssi is None else rssi
            snr = best[1] if snr is None else snr
    return (rssi or 0.0), (snr or 0.0)


def rxpk_to_uplink(rxpk: object, *, gateway_id: str, uplink_id: int = 0, now: float | None = None,
                   where: str = "rxpk") -> UplinkFrame:
    """One ``rxpk`` object as an UplinkFrame; UdpPacketError (a ValueError) naming the field."""
    if not isinstance(rxpk, dict):
        raise UdpPacketError(f"{where}: expected an object, got {type(rxpk).__name__}")
    modu = rxpk.get("modu", "LORA")
    if not isinstance(modu, str) or modu.upper() != "LORA":
        raise UdpPacketError(f"{where}.modu {modu!r}: the network server takes LoRa uplinks only")
    stat = _integer(rxpk, "stat", where, -1, 1)
    if stat is not None and stat != 1:
        raise UdpPacketError(f"{where}.stat {stat} ({_CRC_STAT[stat]}): only frames with a good CRC are forwarded")
    try:
        sf, bw = parse_datr(rxpk.get("datr"))
    except UdpPacketError as exc:
        raise UdpPacketError(f"{where}.{exc}") from None
    codr = rxpk.get("codr", "4/5")
    if not isinstance(codr, str):
        raise UdpPacketError(f"{where}.codr: expected a code rate like \"4/5\", got {codr!r}")
    freq = _number(rxpk, "freq", where)
    if freq is None or freq <= 0:
        raise UdpPacketError(f"{where}.freq: expected the frequency in MHz, got {rxpk.get('freq')!r}")
    tmst = _integer(rxpk, "tmst", where, 0, _TMST_MODULO - 1)
    if "data" not in rxpk:
        raise UdpPacketError(f"{where}.data: missing")
    try:
        phy = decode_bytes(rxpk["data"], f"{where}.data")
    except ValueError as exc:
        raise UdpPacketError(str(exc)) from None
    if not phy:
        raise UdpPacketError(f"{where}.data: empty")
    size = _integer(rxpk, "size", where, 0, _MAX_DATAGRAM)
    if size is not None and size != len(phy):
        log.warning("%s.size %d but data holds %d bytes (gateway %s); the data is used", where, size, len(phy),
                    gateway_id)
    rssi, snr = _signal(rxpk, where)
    return UplinkFrame(
        phy_payload=phy,
        frequency_hz=round(freq * 1_000_000),
        spreading_factor=sf,
        bandwidth_hz=bw,
        code_rate=codr,
        rssi=rssi,
        snr=snr,
        gateway_id=gateway_id,
        context=b"" if tmst is None else tmst.to_bytes(4, "big"),
        uplink_id=uplink_id,
        time=now,
    )


def txpk_for(item: DownlinkItem) -> dict[str, Any]:
    """The ``txpk`` object for one downlink item (``tmst`` = context tmst + delay in µs, mod 2^32).

    UdpPacketError if a delayed item's context is not the 4-byte tmst or the radio settings
    cannot be written.
    """
    txpk: dict[str, Any] = {}
    if item.delay_s is None:
        txpk["imme"] = True
    else:
        if len(item.context) != 4:
            raise UdpPacketError(f"a delayed downlink needs the uplink's 4-byte tmst context, got "
                                 f"{len(item.context)} bytes")
        tmst = int.from_bytes(item.context, "big") + round(item.delay_s * 1_000_000)
        txpk["tmst"] = tmst % _TMST_MODULO
    phy = bytes(item.phy_payload)
    txpk.update(
        freq=round(item.frequency_hz / 1_000_000, 6),
        rfch=0,
        powe=int(round(item.power_dbm)),
        modu="LORA",
        datr=format_datr(item.spreading_factor, item.bandwidth_hz),
        codr=item.code_rate,
        ipol=bool(item.polarization_inversion),
        size=len(phy),
        data=encode_bytes(phy),
    )
    return txpk


def _header(identifier: int, token: bytes) -> bytes:
    return bytes([PROTOCOL_VERSION]) + token + bytes([identifier])


# -- transport ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Gateway:
    address: tuple[str, int]  # where its PULL_DATA came from: PULL_RESP goes there
    last_pull: float


@dataclass(slots=True)
class _Pending:
    """A downlink handed to a gateway, waiting for its TX_ACK."""

    frame: DownlinkFrame
    gateway_id: str
    address: tuple[str, int]
    token: int
    statuses: list[str]
    index: int = 0

    def ack(self) -> TxAck:
        return TxAck(self.frame.downlink_id, list(self.statuses), self.gateway_id)


class SemtechUdpTransport:
    """The network server's end of the Semtech UDP packet-forwarder protocol v2.

    The socket is bound at construction (``bind_port=0``: a free port), so :attr:`address` can go
    into a rig file before :meth:`start`. TransportConnectError if it cannot be bound.
    """

    def __init__(self, bind_host: str = "127.0.0.1", bind_port: int = 0, *, clock: Clock) -> None:
        self.clock = clock
        try:
            family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise TransportConnectError(f"cannot open a UDP socket for {bind_host}:{bind_port}: {exc}",
                                        host=bind_host, port=bind_port) from None
        try:
            sock.bind((bind_host, bind_port))
        except OSError as exc:
            sock.close()
            raise TransportConnectError(f"cannot bind UDP {bind_host}:{bind_port}: {exc}",
                                        host=bind_host, port=bind_port) from None
        sock.setblocking(False)
        self._sock = sock
        self._address: tuple[str, int] = sock.getsockname()[:2]
        self._stop_r, self._stop_w = os.pipe()
        self._lock = threading.Lock()
        self._gateways: dict[str, _Gateway] = {}
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._on_uplink: UplinkHandler | None = None
        self._on_tx_ack: TxAckHandler | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public ---------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): where a packet forwarder's ``server_address``/``serv_port_*`` point."""
        return self._address

    @property
    def gateways(self) -> dict[str, tuple[str, int]]:
        """Each gateway heard with PULL_DATA (EUI as 16 hex digits) and its downlink address."""
        with self._lock:
            return {eui: gw.address for eui, gw in self._gateways.items()}

    def start(self, on_uplink: UplinkHandler, on_tx_ack: TxAckHandler) -> None:
        """Start the reader thread; uplinks and TX acks go to the callbacks from it."""
        if self._closed:
            raise TransportClosedError("SemtechUdpTransport is closed")
        if self._thread is not None:
            raise TransportError(f"SemtechUdpTransport on {self._address[0]}:{self._address[1]} is already started")
        self._on_uplink, self._on_tx_ack = on_uplink, on_tx_ack
        self._thread = threading.Thread(target=self._run, name=f"semtech-udp-{self._address[1]}", daemon=True)
        self._thread.start()
        log.info("Semtech UDP server listening on %s:%s", *self._address)

    def send_downlink(self, frame: DownlinkFrame) -> None:
        """Send ``frame``'s first item as PULL_RESP to its gateway; never raises for a gateway problem.

        A gateway never heard from (no PULL_DATA) or an item that cannot be sent is answered
        with a TxAck whose status says so (INTERNAL_ERROR), and a log line.
        """
        if self._closed:
            raise TransportClosedError("SemtechUdpTransport is closed")
        if self._on_tx_ack is None:
            raise TransportError("SemtechUdpTransport.send_downlink before start()")
        gateway_id = str(frame.gateway_id).lower()
        with self._lock:
            gateway = self._gateways.get(gateway_id)
        if not frame.items:
            log.warning("downlink %s for gateway %s has no items: nothing sent", frame.downlink_id, gateway_id)
            self._deliver_ack(TxAck(frame.downlink_id, [], gateway_id))
            return
        if gateway is None:
            log.warning("downlink %s not sent: gateway %s was never heard (no PULL_DATA), so its address is "
                        "unknown", frame.downlink_id, gateway_id)
            statuses = [TxAckStatus.INTERNAL_ERROR.value] * len(frame.items)
            self._deliver_ack(TxAck(frame.downlink_id, statuses, gateway_id))
            return
        token = frame.downlink_id & 0xFFFF
        pending = _Pending(frame, gateway_id, gateway.address, token, [TxAckStatus.IGNORED.value] * len(frame.items))
        with self._lock:
            previous = self._pending.get((gateway_id, token))
        if previous is not None:
            log.warning("downlink %s reuses token %04x of downlink %s to gateway %s, which was never acknowledged",
                        frame.downlink_id, token, previous.frame.downlink_id, gateway_id)
        final = self._attempt(pending, 0)
        if final is not None:
            self._deliver_ack(final)

    def close(self) -> None:
        """Stop the reader thread and close the socket; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.write(self._stop_w, b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)  # infrastructure teardown in real seconds
            if thread.is_alive():
                log.error("Semtech UDP reader thread did not stop within %s s (a callback is blocked)",
                          _JOIN_TIMEOUT_S)
        self._sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
        self._on_uplink = self._on_tx_ack = None

    def __enter__(self) -> "SemtechUdpTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("started" if self._thread else "not started")
        return f"SemtechUdpTransport({self._address[0]}:{self._address[1]}, {len(self._gateways)} gateways, {state})"

    # -- downlinks ----------------------------------------------------------------------------

    def _attempt(self, pending: _Pending, start: int) -> TxAck | None:
        """Send the first item from ``start`` on that can be sent; the final TxAck if none is left."""
        key = (pending.gateway_id, pending.token)
        items = pending.frame.items
        for index in range(start, len(items)):
            try:
                txpk = txpk_for(items[index])
            except ValueError as exc:
                log.warning("downlink %s item %d for gateway %s cannot be sent: %s", pending.frame.downlink_id,
                            index, pending.gateway_id, exc)
                pending.statuses[index] = TxAckStatus.INTERNAL_ERROR.value
                continue
            body = json.dumps({"txpk": txpk}, separators=(",", ":")).encode()
            datagram = _header(PULL_RESP, pending.token.to_bytes(2, "little")) + body
            with self._lock:  # registered before sending: the TX_ACK may come back at once
                pending.index = index
                self._pending[key] = pending
            try:
                self._sock.sendto(datagram, pending.address)
            except OSError as exc:
                log.warning("PULL_RESP for downlink %s to gateway %s at %s failed: %s", pending.frame.downlink_id,
                            pending.gateway_id, pending.address, exc)
                pending.statuses[index] = TxAckStatus.INTERNAL_ERROR.value
                continue
            log.debug("PULL_RESP token %04x (downlink %s item %d) to gateway %s", pending.token,
                      pending.frame.downlink_id, index, pending.gateway_id)
            return None
        with self._lock:
            if self._pending.get(key) is pending:
                del self._pending[key]
        return pending.ack()

    def _on_tx_ack_datagram(self, gateway_id: str, token: int, body: bytes, addr: object) -> None:
        error = "NONE"
        text = body.rstrip(b"\x00 \r\n\t")
        if text:
            try:
                obj = json.loads(text.decode("utf-8"))
                ack = obj.get("txpk_ack", {}) if isinstance(obj, dict) else None
                if not isinstance(ack, dict):
                    raise ValueError("expected {\"txpk_ack\": {...}}")
                error = ack.get("error") or "NONE"
                if not isinstance(error, str):
                    raise ValueError(f"txpk_ack.error: expected a string, got {error!r}")
                if ack.get("warn"):
                    log.info("gateway %s TX_ACK token %04x warns: %s", gateway_id, token, ack["warn"])
            except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                log.warning("TX_ACK from gateway %s at %s dropped: bad JSON (%s): %r", gateway_id, addr, exc,
                            body[:160])
                return
        with self._lock:
            pending = self._pending.get((gateway_id, token))
        if pending is None:
            log.warning("TX_ACK from gateway %s (token %04x, error %s): no downlink awaits it; dropped", gateway_id,
                        token, error)
            return
        index = pending.index
        if error == "NONE":
            pending.statuses[index] = TxAckStatus.OK.value
            with self._lock:
                if self._pending.get((gateway_id, token)) is pending:
                    del self._pending[(gateway_id, token)]
            self._deliver_ack(pending.ack())
            return
        status = error if error in _TX_ERRORS else TxAckStatus.INTERNAL_ERROR.value
        if status != error:
            log.warning("gateway %s TX_ACK error %r is not a known txpk_ack error; taken as %s", gateway_id, error,
                        status)
        pending.statuses[index] = status
        more = "; trying the next item" if index + 1 < len(pending.frame.items) else ""
        log.info("gateway %s refused downlink %s item %d: %s%s", gateway_id, pending.frame.downlink_id, index,
                 error, more)
        final = self._attempt(pending, index + 1)
        if final is not None:
            self._deliver_ack(final)

    def _deliver_ack(self, ack: TxAck) -> None:
        handler = self._on_tx_ack
        if handler is None:
            return
        try:
            handler(ack)
        except Exception:  # the server's bug must not stop the gateway link
            log.exception("the TX ack handler failed")

    # -- reader -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                readable, _, _ = select.select([self._sock, self._stop_r], [], [])
            except (OSError, ValueError):  # closed under us
                return
            if self._stop_r in readable:
                return
            try:
                data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                continue
            except OSError as exc:  # e.g. ICMP port unreachable from an earlier send
                log.debug("UDP receive error (ignored): %s", exc)
                continue
            try:
                self._handle(data, addr)
            except Exception:  # never let one datagram stop the server
                log.exception("handling a datagram from %s failed", addr)

    def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 4:
            log.warning("datagram from %s dropped: %d bytes, shorter than the 4-byte header", addr, len(data))
            return
        version, token, identifier = data[0], data[1:3], data[3]
        if version != PROTOCOL_VERSION:
            log.warning("datagram from %s dropped: protocol version %d, expected %d", addr, version,
                        PROTOCOL_VERSION)
            return
        name = _IDENTIFIERS.get(identifier)
        if identifier not in (PUSH_DATA, PULL_DATA, TX_ACK):
            what = f"{name}, which only a server sends" if name else f"unknown identifier 0x{identifier:02x}"
            log.warning("datagram from %s dropped: %s", addr, what)
            return
        if len(data) < _HEADER:
            log.warning("%s from %s dropped: %d bytes, shorter than its %d-byte header", name, addr, len(data),
                        _HEADER)
            return
        gateway_id = data[4:12].hex()
        if identifier == PULL_DATA:
            self._on_pull_data(gateway_id, token, addr)
        elif identifier == PUSH_DATA:
            self._on_push_data(gateway_id, token, data[_HEADER:], addr)
        else:
            self._on_tx_ack_datagram(gateway_id, int.from_bytes(token, "little"), data[_HEADER:], addr)

    def _reply(self, datagram: bytes, addr: tuple[str, int], what: str) -> None:
        try:
            self._sock.sendto(datagram, addr)
        except OSError as exc:
            log.warning("%s to %s failed: %s", what, addr, exc)

    def _on_pull_data(self, gateway_id: str, token: bytes, addr: tuple[str, int]) -> None:
        with self._lock:
            known = self._gateways.get(gateway_id)
            self._gateways[gateway_id] = _Gateway(addr, self.clock.now())
        if known is None or known.address != addr:
            log.info("gateway %s pulls downlinks from %s:%s", gateway_id, addr[0], addr[1])
        self._reply(_header(PULL_ACK, token), addr, "PULL_ACK")

    def _on_push_data(self, gateway_id: str, token: bytes, body: bytes, addr: tuple[str, int]) -> None:
        try:
            obj = json.loads(body.rstrip(b"\x00").decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except ValueError as exc:
            log.warning("PUSH_DATA from gateway %s at %s dropped (not acknowledged): bad JSON (%s): %r", gateway_id,
                        addr, exc, body[:160])
            return
        self._reply(_header(PUSH_ACK, token), addr, "PUSH_ACK")
        rxpks = obj.get("rxpk", [])
        if not isinstance(rxpks, list):
            log.warning("PUSH_DATA from gateway %s: rxpk is %s, not a list; ignored", gateway_id,
                        type(rxpks).__name__)
            rxpks = []
        uplink_id = int.from_bytes(token, "little")
        frames: list[UplinkFrame] = []
        for i, rxpk in enumerate(rxpks):
            try:
                frames.append(rxpk_to_uplink(rxpk, gateway_id=gateway_id, uplink_id=uplink_id,
                                             now=self.clock.now(), where=f"rxpk[{i}]"))
            except ValueError as exc:
                log.warning("PUSH_DATA from gateway %s: %s; that packet is dropped", gateway_id, exc)
        handler = self._on_uplink
        for frame in frames:
            if handler is None:
                break
            try:
                handler(frame)
            except Exception:  # the server's bug must not stop the gateway link
                log.exception("the uplink handler failed")
