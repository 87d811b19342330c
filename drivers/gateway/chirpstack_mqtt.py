"""ChirpStack Gateway Bridge v4 over MQTT (JSON marshaler): the network server's side.

Talks to one or all bridges through an MQTT broker exactly as ChirpStack v4 does: it subscribes
``<prefix>gateway/<id|+>/event/up``, ``.../event/ack`` and ``.../state/conn`` and publishes
``<prefix>gateway/<id>/command/down``. Payloads are gw.proto messages in the protobuf JSON
mapping (see :mod:`hil.protojson`); the bridge must run with ``marshaler = "json"``
and the same topic prefix (ChirpStack's EU868 region uses ``eu868``).

Threads: paho's network thread calls the server's callbacks (uplinks, TX acks); a malformed
message is logged with its topic and the reason and dropped, never raised into that thread.
Time: the connection wait is in rig time (a Deadline on the clock given), and ``UplinkFrame.time``
is the clock's time on arrival. The connection wait needs a clock that runs (System/ScaledClock).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from drivers.gateway import TransportConnectError, TransportError
from hil.protojson import (
    ProtoJsonError,
    ProtoReader,
    code_rate_from_enum,
    code_rate_to_enum,
    dumps,
    encode_duration,
    message,
)
from hil.clock import Clock, Deadline
from hil.network.errors import TransportClosedError
from hil.network.transport import DownlinkFrame, TxAck, TxAckHandler, UplinkFrame, UplinkHandler

log = logging.getLogger(__name__)

__all__ = [
    "CONN_STATES",
    "ChirpStackMqttTransport",
    "TX_ACK_STATUSES",
    "decode_conn_state",
    "decode_tx_ack",
    "decode_uplink",
    "encode_downlink",
]

# gw.proto enums, in enum-number order.
TX_ACK_STATUSES: tuple[str, ...] = (
    "IGNORED", "OK", "TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON", "TX_FREQ", "TX_POWER",
    "GPS_UNLOCKED", "QUEUE_FULL", "INTERNAL_ERROR", "DUTY_CYCLE_OVERFLOW",
)
CONN_STATES: tuple[str, ...] = ("OFFLINE", "ONLINE")
_CRC_STATUSES: tuple[str, ...] = ("NO_CRC", "BAD_CRC", "CRC_OK")

_GATEWAY_ID_RE = re.compile(r"^[0-9a-fA-F]{16}$")
_UINT32_MAX = 2**32 - 1
_EVENTS = ("event/up", "event/ack", "state/conn")


# -- codec (pure functions) --------------------------------------------------------------------


def _gateway_id(value: str, where: str) -> str:
    if not isinstance(value, str) or not _GATEWAY_ID_RE.match(value):
        raise ProtoJsonError(f"{where}: expected a gateway ID of 16 hex digits, got {value!r}")
    return value.lower()


def _uint32(value: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT32_MAX:
        raise ProtoJsonError(f"{where}: expected an integer in 0..{_UINT32_MAX}, got {value!r}")
    return value


def encode_downlink(frame: DownlinkFrame) -> dict[str, Any]:
    """A DownlinkFrame as the protojson object ChirpStack publishes on ``command/down``.

    ProtoJsonError (a ValueError) if a field does not fit gw.proto (gateway ID, code rate, ranges).
    """
    gateway = _gateway_id(frame.gateway_id, "DownlinkFrame.gateway_id")
    items = []
    for i, item in enumerate(frame.items):
        where = f"DownlinkFrame.items[{i}]"
        timing = {"immediately": {}} if item.delay_s is None else {"delay": {"delay": encode_duration(item.delay_s)}}
        lora = message(
            bandwidth=_uint32(item.bandwidth_hz, f"{where}.bandwidth_hz"),
            spreading_factor=_uint32(item.spreading_factor, f"{where}.spreading_factor"),
            code_rate=code_rate_to_enum(item.code_rate),
            polarization_inversion=bool(item.polarization_inversion),
        )
        tx_info = message(
            frequency=_uint32(item.frequency_hz, f"{where}.frequency_hz"),
            power=int(round(item.power_dbm)),
            modulation={"lora": lora},
            timing=timing,
            context=bytes(item.context),
        )
        items.append(message(phy_payload=bytes(item.phy_payload), tx_info=tx_info))
    return message(downlink_id=_uint32(frame.downlink_id, "DownlinkFrame.downlink_id"), gateway_id=gateway,
                   items=items)


def decode_uplink(payload: bytes, *, topic_gateway_id: str, now: float | None = None) -> UplinkFrame:
    """An ``event/up`` payload (gw.proto UplinkFrame JSON) as an UplinkFrame received at ``now``.

    ProtoJsonError naming the field if it is not a LoRa frame the network can use.
    """
    msg = ProtoReader.loads(payload, "UplinkFrame")
    phy = msg.bytes("phy_payload")
    if not phy:
        raise ProtoJsonError("phyPayload: missing or empty")
    tx, rx = msg.message("tx_info"), msg.message("rx_info")
    frequency = tx.uint32("frequency")
    if not frequency:
        raise ProtoJsonError("txInfo.frequency: missing (0 Hz)")
    modulation = tx.message("modulation")
    if not modulation.has("lora"):
        other = [name for name in ("fsk", "lr_fhss") if modulation.has(name)]
        kind = f"{other[0]} modulation" if other else "no modulation"
        raise ProtoJsonError(f"txInfo.modulation: {kind}; the network server takes LoRa uplinks only")
    lora = modulation.message("lora")
    sf, bw = lora.uint32("spreading_factor"), lora.uint32("bandwidth")
    if not sf or not bw:
        raise ProtoJsonError(f"{lora.where('spreading_factor')}/bandwidth: missing (SF {sf}, {bw} Hz)")
    code_rate = code_rate_from_enum(lora.raw("code_rate"), lora.where("code_rate"))
    code_rate = code_rate or lora.string("code_rate_legacy") or "4/5"
    if rx.enum("crc_status", _CRC_STATUSES) == "BAD_CRC":
        raise ProtoJsonError("rxInfo.crcStatus: BAD_CRC; a frame with a bad CRC is not forwarded")
    gateway = rx.string("gateway_id") or topic_gateway_id
    return UplinkFrame(
        phy_payload=phy,
        frequency_hz=frequency,
        spreading_factor=sf,
        bandwidth_hz=bw,
        code_rate=code_rate,
        rssi=rx.int32("rssi"),
        snr=rx.double("snr"),
        gateway_id=_gateway_id(gateway, rx.where("gateway_id")),
        context=rx.bytes("context"),
        uplink_id=rx.uint32("uplink_id"),
        time=now,
    )


def decode_tx_ack(payload: bytes, *, topic_gateway_id: str) -> TxAck:
    """An ``event/ack`` payload (gw.proto DownlinkTxAck JSON); an item ``{}`` is IGNORED."""
    msg = ProtoReader.loads(payload, "DownlinkTxAck")
    statuses = [item.enum("status", TX_ACK_STATUSES) for item in msg.messages("items")]
    gateway = msg.string("gateway_id") or topic_gateway_id
    return TxAck(msg.uint32("downlink_id"), statuses, _gateway_id(gateway, msg.where("gateway_id")))


def decode_conn_state(payload: bytes, *, topic_gateway_id: str) -> tuple[str, str]:
    """A ``state/conn`` payload (gw.proto ConnState JSON) as (gateway ID, "ONLINE" | "OFFLINE")."""
    msg = ProtoReader.loads(payload, "ConnState")
    gateway = msg.string("gateway_id") or topic_gateway_id
    return _gateway_id(gateway, msg.where("gateway_id")), msg.enum("state", CONN_STATES)


def _excerpt(payload: bytes, limit: int = 160) -> str:
    text = repr(bytes(payload[:limit]))
    return text + ("..." if len(payload) > limit else "")


# -- transport ---------------------------------------------------------------------------------


class ChirpStackMqttTransport:
    """The network server's end of ChirpStack Gateway Bridge v4 (JSON) over MQTT.

    ``gateway_id`` None listens to every gateway (topic wildcard ``+``); otherwise only to that
    one. ``topic_prefix`` is the bridge's prefix (``"eu868/"``; a missing trailing ``/`` is
    added). ``connect_timeout_s`` bounds, in rig seconds, the wait for the broker's CONNACK and
    SUBACK in :meth:`start`. ``qos`` is used for subscriptions and downlinks (ChirpStack: 0).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        topic_prefix: str = "eu868/",
        gateway_id: str | None = None,
        clock: Clock,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        client_id: str | None = None,
        qos: int = 0,
        connect_timeout_s: float = 30.0,
        keepalive_s: int = 30,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        self.host = host
        self.port = int(port)
        self.topic_prefix = topic_prefix if not topic_prefix or topic_prefix.endswith("/") else topic_prefix + "/"
        self.gateway_id = None if gateway_id is None else _gateway_id(gateway_id, "gateway_id")
        self.clock = clock
        self.qos = qos
        self.connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._username = username
        self._password = password
        self._tls = tls
        self._ca_file = ca_file
        self._client_id = client_id or ""
        self._client: mqtt.Client | None = None
        self._on_uplink: UplinkHandler | None = None
        self._on_tx_ack: TxAckHandler | None = None
        self._cond = threading.Condition()
        self._sub_mid: int | None = None
        self._subscribed = False
        self._failure: str | None = None
        self._closed = False
        self._connected = False
        self._states: dict[str, str] = {}

    # -- public ---------------------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """The topic filters subscribed to."""
        gateway = self.gateway_id or "+"
        return [f"{self.topic_prefix}gateway/{gateway}/{kind}" for kind in _EVENTS]

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (paho reconnects by itself after a loss)."""
        return self._connected

    @property
    def gateway_states(self) -> dict[str, str]:
        """Each gateway's last ``state/conn`` (``"ONLINE"`` / ``"OFFLINE"``), by gateway ID."""
        with self._cond:
            return dict(self._states)

    def start(self, on_uplink: UplinkHandler, on_tx_ack: TxAckHandler) -> None:
        """Connect, subscribe, and deliver uplinks and TX acks to the callbacks from now on.

        TransportConnectError (naming host:port) if the broker cannot be reached, refuses the
        client or its subscriptions, or does not answer within ``connect_timeout_s``.
        """
        if self._closed:
            raise TransportClosedError("ChirpStackMqttTransport is closed")
        if self._client is not None:
            raise TransportError(f"ChirpStackMqttTransport to {self.host}:{self.port} is already started")
        self._on_uplink, self._on_tx_ack = on_uplink, on_tx_ack
        with self._cond:
            self._sub_mid, self._subscribed, self._failure = None, False, None
        where = f"MQTT broker {self.host}:{self.port}"
        client: mqtt.Client | None = None
        try:
            client = self._client = self._make_client()
            client.connect(self.host, self.port, keepalive=self._keepalive_s)
        except (OSError, ValueError) as exc:  # refused, unreachable, bad TLS files, bad port
            if client is not None:
                self._release(client)
            raise TransportConnectError(f"cannot connect to {where}: {type(exc).__name__}: {exc}",
                                        host=self.host, port=self.port) from None
        client.loop_start()
        deadline = Deadline.after(self.clock, self.connect_timeout_s)
        with self._cond:
            self.clock.wait_for(self._cond, lambda: self._subscribed or self._failure is not None, deadline)
            subscribed, failure = self._subscribed, self._failure
        if not subscribed:
            self._release(client)
            reason = failure or f"no CONNACK/SUBACK within {self.connect_timeout_s:g} rig s"
            raise TransportConnectError(f"{where}: {reason}", host=self.host, port=self.port)
        log.info("connected to %s, listening on %s", where, ", ".join(self.topics))

    def send_downlink(self, frame: DownlinkFrame) -> None:
        """Publish ``frame`` on ``<prefix>gateway/<gateway_id>/command/down``.

        ValueError (ProtoJsonError) if the frame does not fit gw.proto; TransportError if the
        broker connection is down (the bridge then never sees it).
        """
        if self._closed:
            raise TransportClosedError("ChirpStackMqttTransport is closed")
        client = self._client
        if client is None:
            raise TransportError("ChirpStackMqttTransport.send_downlink before start()")
        body = encode_downlink(frame)
        topic = f"{self.topic_prefix}gateway/{body['gatewayId']}/command/down"
        info = client.publish(topic, dumps(body), qos=self.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"downlink {frame.downlink_id} not published on {topic}: "
                                 f"{mqtt.error_string(info.rc)} (MQTT broker {self.host}:{self.port})")
        log.debug("downlink %s published on %s (%d items)", frame.downlink_id, topic, len(frame.items))

    def close(self) -> None:
        """Disconnect and stop paho's thread; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            self._release(client)
        self._on_uplink = self._on_tx_ack = None

    def __enter__(self) -> "ChirpStackMqttTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("started" if self._client else "not started")
        who = f", user {self._username!r}" if self._username else ""
        return (f"ChirpStackMqttTransport({self.host}:{self.port}, prefix {self.topic_prefix!r}, "
                f"gateway {self.gateway_id or '+'}{who}, {state})")

    # -- paho ---------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        real = self.clock.real_seconds(self.connect_timeout_s)
        client.connect_timeout = real if real > 0 else self.connect_timeout_s  # the TCP connect, real seconds
        # Reconnect soon after a broker restart, backing off to 30 s; close() waits out at most one
        # step of paho's reconnect pause (it naps in steps of up to 1 s), so start small.
        client.reconnect_delay_set(min_delay=0.25, max_delay=30)  # type: ignore[arg-type]
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set(ca_certs=self._ca_file)
        client.on_connect = self._handle_connect
        client.on_subscribe = self._handle_subscribe
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return client

    def _release(self, client: mqtt.Client) -> None:
        """Disconnect, join paho's thread, close paho's sockets and drop the client."""
        with self._cond:
            if self._client is client:
                self._client = None
        try:
            client.disconnect()
        except Exception:  # already gone: nothing to say goodbye to
            log.debug("MQTT disconnect from %s:%s failed", self.host, self.port, exc_info=True)
        client.loop_stop()
        client.on_connect = client.on_subscribe = client.on_disconnect = client.on_message = None
        # paho closes its wake-up socket pair only when the client is collected, which a traceback
        # kept in a log record can delay indefinitely: close it now (paho 2.x, no public API for it).
        reset = getattr(client, "_reset_sockets", None)
        if callable(reset):
            reset()

    def _handle_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                        properties: object) -> None:
        try:
            if reason.is_failure:
                with self._cond:
                    self._failure = f"the broker refused the connection: {reason}"
                    self._cond.notify_all()
                log.error("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
                return
            _, mid = client.subscribe([(topic, self.qos) for topic in self.topics])
            with self._cond:
                self._sub_mid = mid
                self._connected = True
        except Exception:  # never into paho's thread
            log.exception("MQTT on_connect handling failed")

    def _handle_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[Any],
                          properties: object) -> None:
        try:
            with self._cond:
                if mid != self._sub_mid:
                    return
                refused = [f"{topic}: {rc}" for topic, rc in zip(self.topics, reasons) if rc.is_failure]
                if refused:
                    self._failure = f"the broker refused the subscriptions ({'; '.join(refused)})"
                    log.error("MQTT broker %s:%s %s", self.host, self.port, self._failure)
                else:
                    self._subscribed = True
                self._cond.notify_all()
        except Exception:  # never into paho's thread
            log.exception("MQTT on_subscribe handling failed")

    def _handle_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                           properties: object) -> None:
        self._connected = False
        if client is self._client:  # not our own disconnect in close() or a failed start()
            log.warning("lost the MQTT broker %s:%s (%s); paho reconnects", self.host, self.port, reason)

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._dispatch(msg.topic, bytes(msg.payload))
        except Exception:  # a bug here must not kill paho's network thread
            log.exception("handling MQTT message on %s failed", msg.topic)

    # -- messages -------------------------------------------------------------------------------

    def _parse_topic(self, topic: str) -> tuple[str, str] | None:
        if not topic.startswith(self.topic_prefix):
            return None
        parts = topic[len(self.topic_prefix):].split("/")
        if len(parts) != 4 or parts[0] != "gateway":
            return None
        kind = f"{parts[2]}/{parts[3]}"
        return (parts[1], kind) if kind in _EVENTS else None

    def _dispatch(self, topic: str, payload: bytes) -> None:
        parsed = self._parse_topic(topic)
        if parsed is None:
            log.debug("ignored MQTT message on %s", topic)
            return
        topic_gateway, kind = parsed
        if kind == "state/conn" and not payload:  # a retained state cleared
            with self._cond:
                self._states.pop(topic_gateway.lower(), None)
            return
        try:
            if kind == "event/up":
                uplink = decode_uplink(payload, topic_gateway_id=topic_gateway, now=self.clock.now())
                self._deliver(self._on_uplink, uplink, "uplink")
            elif kind == "event/ack":
                ack = decode_tx_ack(payload, topic_gateway_id=topic_gateway)
                self._deliver(self._on_tx_ack, ack, "TX ack")
            else:
                gateway, state = decode_conn_state(payload, topic_gateway_id=topic_gateway)
                with self._cond:
                    previous = self._states.get(gateway)
                    self._states[gateway] = state
                if previous != state:
                    log.info("gateway %s is %s", gateway, state)
        except ProtoJsonError as exc:
            log.warning("dropped MQTT message on %s: %s; payload %s", topic, str(exc), _excerpt(payload))

    def _deliver(self, handler: Any, item: object, what: str) -> None:
        if handler is None:
            return
        try:
            handler(item)
        except Exception:  # the server's bug must not stop the gateway link
            log.exception("the %s handler failed", what)
