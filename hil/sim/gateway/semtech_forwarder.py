"""The virtual gateway's Semtech UDP packet forwarder (protocol version 2, Lora-net ``PROTOCOL.TXT``).

Upstream: every received packet goes out as PUSH_DATA ``{"rxpk":[...]}``, answered by PUSH_ACK
with the same token. Downstream: PULL_DATA at start and every ``keepalive_s`` of rig time keeps
the path open (PULL_ACK); the server's PULL_RESP ``{"txpk":{...}}`` is handed to the
concentrator, and the forwarder answers TX_ACK ``{"txpk_ack":{"error":"NONE"|...}}``.

One UDP socket bound to 127.0.0.1:0 and connected to the server (as ``lora_pkt_fwd`` does, so
datagrams from elsewhere never arrive). A reader thread waits in ``select`` on the socket and a
stop pipe; it only parses and counts, and hands PULL_RESP work to the scheduler thread with
``call_soon``. Garbage (too short, wrong version, unknown type, bad JSON or fields) is logged
and dropped, as the real forwarder drops it (no TX_ACK for a txpk it cannot read).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import random
import re
import select
import socket
import threading
from typing import Any

from hil.network.transport import TxAckStatus
from hil import protojson as pj
from hil.sim.gateway.concentrator import Concentrator, GatewayError, RxPacket, TxRequest
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
_DATR_RE = re.compile(r"^SF(\d{1,2})BW(\d{2,3})$")
#: lora_pkt_fwd send_tx_ack: a full JIT queue is reported as a packet collision.
_TX_ACK_ERRORS = {TxAckStatus.OK: "NONE", TxAckStatus.QUEUE_FULL: "COLLISION_PACKET"}


class ForwarderError(GatewayError):
    """The forwarder could not open its socket."""


class BadTxpk(ValueError):
    """A PULL_RESP txpk the forwarder cannot read (it answers nothing, like lora_pkt_fwd)."""


@dataclasses.dataclass
class ForwarderStats:
    """What the forwarder counted since start (read under the forwarder's lock via :meth:`SemtechForwarder.stats`)."""

    push_sent: int = 0
    push_acked: int = 0
    push_missed: int = 0
    pull_sent: int = 0
    pull_acked: int = 0
    pull_missed: int = 0
    pull_resp: int = 0
    tx_acks: dict[str, int] = dataclasses.field(default_factory=dict)
    dropped_datagrams: int = 0


def parse_datr(datr: Any) -> tuple[int, int]:
    """``"SF7BW125"`` -> (7, 125000); BadTxpk otherwise (FSK is not modelled)."""
    match = _DATR_RE.match(datr) if isinstance(datr, str) else None
    sf, bw = (int(match.group(1)), int(match.group(2)) * 1000) if match else (0, 0)
    if sf not in range(7, 13) or bw not in (125_000, 250_000, 500_000):
        raise BadTxpk(f"txpk.datr: expected a LoRa data rate SF7..SF12, BW125/250/500, got {datr!r:.40}")
    return sf, bw


def format_rxpk_time(unix_time: float) -> str:
    """rxpk.time: UTC, ISO 8601 with microseconds (``2013-03-31T16:21:17.528002Z``)."""
    micros = round(unix_time * 1_000_000)
    moment = _dt.datetime.fromtimestamp(micros // 1_000_000, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros % 1_000_000:06d}Z"


def rxpk_json(packet: RxPacket, unix_time: float) -> dict[str, Any]:
    """The rxpk object of ``packet``, field for field as lora_pkt_fwd writes it."""
    return {
        "time": format_rxpk_time(unix_time),
        "tmst": packet.tmst,
        "chan": packet.channel,
        "rfch": 0,
        "freq": round(packet.frequency_hz / 1_000_000, 6),
        "stat": 1 if packet.crc_ok else -1,
        "modu": "LORA",
        "datr": f"SF{packet.spreading_factor}BW{packet.bandwidth_hz // 1000}",
        "codr": packet.code_rate,
        "rssi": int(round(packet.rssi)),
        "lsnr": round(float(packet.snr), 1),
        "size": len(packet.phy_payload),
        "data": pj.encode_bytes(packet.phy_payload),
    }


def _txpk_int(txpk: dict[str, Any], key: str, default: int | None = None) -> int:
    value = txpk.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise BadTxpk(f"txpk.{key}: expected an integer, got {value!r:.40}")
    return int(value)


def parse_txpk(payload: bytes) -> tuple[TxRequest | None, str | None]:
    """A PULL_RESP body -> (the request, None) or (None, a txpk_ack error this gateway answers).

    BadTxpk for JSON or fields the forwarder cannot read (it then sends no TX_ACK).
    """
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadTxpk(f"PULL_RESP is not JSON: {exc}") from None
    txpk = message.get("txpk") if isinstance(message, dict) else None
    if not isinstance(txpk, dict):
        raise BadTxpk("PULL_RESP has no txpk object")
    modu = txpk.get("modu")
    if modu != "LORA":
        raise BadTxpk(f"txpk.modu: expected \"LORA\" (FSK is not modelled), got {modu!r:.40}")
    sf, bw = parse_datr(txpk.get("datr"))
    freq = txpk.get("freq")
    if isinstance(freq, bool) or not isinstance(freq, int | float):
        raise BadTxpk(f"txpk.freq: expected MHz as a number, got {freq!r:.40}")
    codr = txpk.get("codr")
    if codr not in ("4/5", "4/6", "4/7", "4/8"):
        raise BadTxpk(f"txpk.codr: expected \"4/5\" .. \"4/8\", got {codr!r:.40}")
    try:
        data = pj.decode_bytes(txpk.get("data"), "txpk.data")
    except pj.ProtoJsonError as exc:
        raise BadTxpk(str(exc)) from None
    size = _txpk_int(txpk, "size")
    if size != len(data):
        raise BadTxpk(f"txpk.size {size} does not match the {len(data)} bytes of txpk.data")
    ipol = txpk.get("ipol", False)
    if not isinstance(ipol, bool):
        raise BadTxpk(f"txpk.ipol: expected true or false, got {ipol!r:.40}")
    power = _txpk_int(txpk, "powe", 14)
    if txpk.get("imme") is True:
        tmst: int | None = None
    elif "tmst" in txpk:
        tmst = _txpk_int(txpk, "tmst")
        if not 0 <= tmst < 1 << 32:
            raise BadTxpk(f"txpk.tmst: expected a uint32, got {tmst}")
    elif "tmms" in txpk:
        return None, "GPS_UNLOCKED"  # GPS-timed downlink on a gateway without GPS
    else:
        raise BadTxpk("txpk: none of imme, tmst, tmms")
    request = TxRequest(data, round(freq * 1_000_000), sf, bw, power, codr, tmst, ipol)
    return request, None


class SemtechForwarder:
    """A Semtech UDP packet forwarder for a :class:`Concentrator`.

    ``keepalive_s``: PULL_DATA period (rig seconds). ``push_timeout_s``: rig seconds after which
    an unacknowledged PUSH_DATA counts as missed (lora_pkt_fwd uses 100 ms of real time; a
    compressed rig needs more slack, hence 1 s). ``stat_interval_s``: send a ``stat`` PUSH_DATA
    that often (None: never). ``rng`` makes tokens reproducible.
    """

    def __init__(
        self,
        concentrator: Concentrator,
        scheduler: Scheduler,
        server_host: str,
        server_port: int,
        gateway_eui: str,
        keepalive_s: float = 5.0,
        push_timeout_s: float = 1.0,
        *,
        stat_interval_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        text = gateway_eui.strip().lower() if isinstance(gateway_eui, str) else ""
        if len(text) != 16 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"gateway_eui must be 16 hex digits, got {gateway_eui!r}")
        if not keepalive_s > 0 or not push_timeout_s > 0:
            raise ValueError(f"keepalive_s and push_timeout_s must be > 0, got {keepalive_s}, {push_timeout_s}")
        self.concentrator = concentrator
        self.scheduler = scheduler
        self.server = (server_host, int(server_port))
        self.gateway_eui = text
        self._eui = bytes.fromhex(text)
        self.keepalive_s = keepalive_s
        self.push_timeout_s = push_timeout_s
        self.stat_interval_s = stat_interval_s
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stats = ForwarderStats()
        self._pending_push: dict[int, Timer] = {}
        self._pull_token: int | None = None
        self._keepalive_timer: Timer | None = None
        self._stat_timer: Timer | None = None
        self._sock: socket.socket | None = None
        self._stop_r = self._stop_w = -1
        self._thread: threading.Thread | None = None
        self._running = False
        self._rx_since_stat = [0, 0]  # received, forwarded
        self._tx_since_stat = [0, 0]  # downlinks received, emitted

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """The forwarder's own UDP address (after :meth:`start`)."""
        if self._sock is None:
            raise ForwarderError("the forwarder is not started")
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Open the socket, start the reader thread, send the first PULL_DATA and forward uplinks."""
        if self._running:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.connect(self.server)
        except OSError as exc:
            sock.close()
            raise ForwarderError(f"gateway {self.gateway_eui}: cannot open UDP to {self.server}: {exc}") from exc
        self._sock = sock
        self._stop_r, self._stop_w = os.pipe()
        self._running = True
        self._thread = threading.Thread(target=self._read_loop, name=f"semtech-fwd-{self.gateway_eui}", daemon=True)
        self._thread.start()
        self.concentrator.add_listener(self._on_rx)
        self._send_pull()
        with self._lock:
            self._keepalive_timer = self.scheduler.call_later(self.keepalive_s, self._keepalive,
                                                              name="semtech-keepalive")
            if self.stat_interval_s:
                self._stat_timer = self.scheduler.call_later(self.stat_interval_s, self._send_stat,
                                                             name="semtech-stat")
        log.info("gateway %s: Semtech UDP forwarder %s -> %s:%d", self.gateway_eui, self.local_address,
                 *self.server)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop timers and the reader thread (joined, ``timeout_s`` real seconds), close the socket."""
        self.concentrator.remove_listener(self._on_rx)
        if not self._running:
            return
        self._running = False
        with self._lock:
            for timer in [self._keepalive_timer, self._stat_timer, *self._pending_push.values()]:
                if timer is not None:
                    timer.cancel()
            self._keepalive_timer = self._stat_timer = None
            self._pending_push.clear()
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("gateway %s: reader thread did not stop within %s s", self.gateway_eui, timeout_s)
            self._thread = None
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_r = self._stop_w = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SemtechForwarder":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> ForwarderStats:
        """A copy of the counters."""
        with self._lock:
            s = self._stats
            return dataclasses.replace(s, tx_acks=dict(s.tx_acks))

    # -- sending -------------------------------------------------------------------------------

    def _header(self, token: int, ident: int, with_eui: bool = True) -> bytes:
        head = bytes([PROTOCOL_VERSION]) + token.to_bytes(2, "big") + bytes([ident])
        return head + self._eui if with_eui else head

    def _send(self, datagram: bytes) -> bool:
        sock = self._sock
        if sock is None or not self._running:
            return False
        try:
            sock.send(datagram)
            return True
        except OSError as exc:  # e.g. ECONNREFUSED after an ICMP port-unreachable: the server is away
            log.warning("gateway %s: UDP send to %s failed: %s", self.gateway_eui, self.server, exc)
            return False

    def _send_pull(self) -> None:
        token = self._rng.getrandbits(16)
        with self._lock:
            self._pull_token = token
            self._stats.pull_sent += 1
        self._send(self._header(token, PULL_DATA))

    def _keepalive(self) -> None:
        if not self._running:
            return
        with self._lock:
            if self._pull_token is not None:
                log.info("gateway %s: no PULL_ACK for the last PULL_DATA", self.gateway_eui)
                self._stats.pull_missed += 1
        self._send_pull()
        with self._lock:
            if self._running:
                self._keepalive_timer = self.scheduler.call_later(self.keepalive_s, self._keepalive,
                                                                  name="semtech-keepalive")

    def _push(self, body: dict[str, Any]) -> None:
        token = self._rng.getrandbits(16)
        payload = json.dumps(body, separators=(",", ":")).encode()
        with self._lock:
            if not self._running:
                return
            old = self._pending_push.pop(token, None)
            if old is not None:
                old.cancel()
            self._pending_push[token] = self.scheduler.call_later(self.push_timeout_s, self._push_timeout, token,
                                                                  name="semtech-push-timeout")
            self._stats.push_sent += 1
        self._send(self._header(token, PUSH_DATA) + payload)

    def _push_timeout(self, token: int) -> None:
        with self._lock:
            if self._pending_push.pop(token, None) is None:
                return
            self._stats.push_missed += 1
        log.warning("gateway %s: no PUSH_ACK for token %04x within %s s", self.gateway_eui, token, self.push_timeout_s)

    def _on_rx(self, packet: RxPacket) -> None:
        with self._lock:
            self._rx_since_stat[0] += 1
            self._rx_since_stat[1] += 1
        self._push({"rxpk": [rxpk_json(packet, self.concentrator.unix_time_at(packet.time))]})

    def _send_stat(self) -> None:
        if not self._running:
            return
        with self._lock:
            rxnb, rxfw = self._rx_since_stat
            dwnb, txnb = self._tx_since_stat
            self._rx_since_stat = [0, 0]
            self._tx_since_stat = [0, 0]
            acked, sent = self._stats.push_acked, self._stats.push_sent
        unix = self.concentrator.clock.unix_time()
        moment = _dt.datetime.fromtimestamp(int(unix), tz=_dt.timezone.utc)
        stat = {
            "time": moment.strftime("%Y-%m-%d %H:%M:%S GMT"),
            "rxnb": rxnb, "rxok": rxnb, "rxfw": rxfw,
            "ackr": round(100.0 * acked / sent, 1) if sent else 0.0,
            "dwnb": dwnb, "txnb": txnb,
        }
        self._push({"stat": stat})
        with self._lock:
            if self._running and self.stat_interval_s:
                self._stat_timer = self.scheduler.call_later(self.stat_interval_s, self._send_stat,
                                                             name="semtech-stat")

    # -- receiving (reader thread) ---------------------------------------------------------------

    def _read_loop(self) -> None:
        sock, stop_r = self._sock, self._stop_r
        assert sock is not None
        while True:
            try:
                readable, _, _ = select.select([sock, stop_r], [], [])
            except (OSError, ValueError):
                return
            if stop_r in readable:
                return
            try:
                datagram = sock.recv(65535)
            except OSError as exc:  # ICMP port unreachable reported on a connected UDP socket
                log.debug("gateway %s: UDP receive error: %s", self.gateway_eui, exc)
                continue
            try:
                self._handle_datagram(datagram)
            except Exception:  # never let a datagram kill the reader
                log.exception("gateway %s: failed to handle datagram %.60r", self.gateway_eui, datagram)

    def _drop(self, datagram: bytes, why: str) -> None:
        with self._lock:
            self._stats.dropped_datagrams += 1
        log.warning("gateway %s: dropped datagram (%s): %.60r", self.gateway_eui, why, datagram)

    def _handle_datagram(self, datagram: bytes) -> None:
        if len(datagram) < 4:
            return self._drop(datagram, f"{len(datagram)} bytes, shorter than a header")
        if datagram[0] != PROTOCOL_VERSION:
            return self._drop(datagram, f"protocol version {datagram[0]}, expected {PROTOCOL_VERSION}")
        token, ident = int.from_bytes(datagram[1:3], "big"), datagram[3]
        if ident == PUSH_ACK:
            with self._lock:
                timer = self._pending_push.pop(token, None)
                if timer is not None:
                    timer.cancel()
                    self._stats.push_acked += 1
            if timer is None:
                log.info("gateway %s: PUSH_ACK with unknown or late token %04x", self.gateway_eui, token)
        elif ident == PULL_ACK:
            with self._lock:
                known = token == self._pull_token
                if known:
                    self._stats.pull_acked += 1
                    self._pull_token = None
            if not known:
                log.info("gateway %s: PULL_ACK with unknown token %04x", self.gateway_eui, token)
        elif ident == PULL_RESP:
            try:
                request, error = parse_txpk(datagram[4:])
            except BadTxpk as exc:
                return self._drop(datagram, str(exc))
            with self._lock:
                self._stats.pull_resp += 1
                self._tx_since_stat[0] += 1
            self.scheduler.call_soon(self._transmit, token, request, error, name="semtech-txpk")
        else:
            self._drop(datagram, f"unexpected packet type 0x{ident:02x}")

    # -- scheduler thread ----------------------------------------------------------------------

    def _transmit(self, token: int, request: TxRequest | None, error: str | None) -> None:
        if not self._running:
            return
        if request is not None:
            try:
                status = self.concentrator.schedule(request)
            except ValueError as exc:
                log.warning("gateway %s: txpk cannot be sent: %s", self.gateway_eui, exc)
                return
            error = _TX_ACK_ERRORS.get(status, status.value)
            if status == TxAckStatus.OK:
                with self._lock:
                    self._tx_since_stat[1] += 1
        assert error is not None
        with self._lock:
            self._stats.tx_acks[error] = self._stats.tx_acks.get(error, 0) + 1
        body = json.dumps({"txpk_ack": {"error": error}}, separators=(",", ":")).encode()
        self._send(self._header(token, TX_ACK) + body)
