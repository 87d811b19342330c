"""The virtual gateway's ChirpStack Gateway Bridge v4 (JSON marshaler) over MQTT.

Topics, with ``topic_prefix`` (ChirpStack v4 uses ``eu868/`` for EU868)::

    <prefix>gateway/<id>/state/conn      retained ConnState, ONLINE / OFFLINE (also the LWT)
    <prefix>gateway/<id>/event/up        UplinkFrame for every received packet
    <prefix>gateway/<id>/event/ack       DownlinkTxAck for every DownlinkFrame
    <prefix>gateway/<id>/command/down    DownlinkFrame (subscribed as command/#)

Payloads are the protobuf JSON mapping of ChirpStack's ``gw.proto`` (see :mod:`hil.protojson`).
``rxInfo.context`` is the 4-byte big-endian ``tmst`` of the end of reception; a downlink item
with ``timing.delay`` is sent at ``context tmst + delay``. Items are tried in order until the
concentrator accepts one; the ack carries one status per item (untried ones IGNORED, ``{}``).

Threads: paho's network thread only parses; concentrator work runs on the scheduler thread
(``Scheduler.call_soon``). Connecting and stopping wait on the broker in real time, bounded.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from hil import protojson as pj
from hil.network.transport import TxAckStatus
from hil.sim.gateway.concentrator import Concentrator, GatewayError, RxPacket, TxRequest, tmst_add
from hil.sim.scheduler import Scheduler

log = logging.getLogger(__name__)


class BridgeConnectionError(GatewayError):
    """The bridge could not connect to (or subscribe at) the MQTT broker."""


@dataclass(frozen=True, slots=True)
class _Timing:
    """``delay_us`` None: immediately. ``gps`` True: GPS-epoch timing (this gateway has no GPS)."""

    delay_us: int | None
    gps: bool = False


@dataclass(frozen=True, slots=True)
class _Item:
    phy_payload: bytes
    frequency_hz: int
    power_dbm: int
    spreading_factor: int
    bandwidth_hz: int
    code_rate: str
    polarization_inversion: bool
    timing: _Timing
    context: bytes


@dataclass(frozen=True, slots=True)
class _Downlink:
    downlink_id: int
    items: tuple[_Item, ...]


class _BadDownlink(ValueError):
    """A command/down that cannot be read; ``downlink_id``/``item_count`` if they could be."""

    def __init__(self, message: str, downlink_id: int | None = None, item_count: int = 0) -> None:
        super().__init__(message)
        self.downlink_id = downlink_id
        self.item_count = item_count


def _check_gateway_id(gateway_id: str) -> str:
    text = gateway_id.strip().lower() if isinstance(gateway_id, str) else ""
    if len(text) != 16 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"gateway_id must be 16 hex digits, got {gateway_id!r}")
    return text


def uplink_frame_json(packet: RxPacket, gateway_id: str, uplink_id: int, unix_time: float) -> dict[str, Any]:
    """The UplinkFrame of ``packet`` as protojson (defaults omitted)."""
    return pj.without_defaults({
        "phyPayload": pj.encode_bytes(packet.phy_payload),
        "txInfo": {
            "frequency": packet.frequency_hz,
            "modulation": {"lora": {
                "bandwidth": packet.bandwidth_hz,
                "spreadingFactor": packet.spreading_factor,
                "codeRate": pj.code_rate_to_enum(packet.code_rate),
            }},
        },
        "rxInfo": {
            "gatewayId": gateway_id,
            "uplinkId": uplink_id,
            "gwTime": pj.format_timestamp(unix_time),
            "rssi": int(round(packet.rssi)),
            "snr": float(packet.snr),
            "channel": packet.channel,
            "context": pj.encode_bytes(packet.tmst.to_bytes(4, "big")),
            "crcStatus": "CRC_OK" if packet.crc_ok else "BAD_CRC",
        },
    })


def _parse_timing(timing: dict[str, Any]) -> _Timing:
    if "immediately" in timing:
        pj.parse_message(timing["immediately"], "timing.immediately")
        return _Timing(None)
    if "delay" in timing:
        delay = pj.parse_message(timing["delay"], "timing.delay")
        seconds = pj.decode_duration(delay["delay"], "timing.delay.delay") if "delay" in delay else 0.0
        return _Timing(round(seconds * 1_000_000))
    if "gpsEpoch" in timing:
        pj.parse_message(timing["gpsEpoch"], "timing.gpsEpoch")
        return _Timing(None, gps=True)
    raise pj.ProtoJsonError("timing: expected one of immediately, delay, gpsEpoch")


def _code_rate(value: Any, where: str) -> str:
    """A downlink's CodeRate; CR_UNDEFINED cannot be transmitted."""
    code_rate = pj.code_rate_from_enum(value, where)
    if code_rate is None:
        raise pj.ProtoJsonError(f"{where}: expected a code rate like \"CR_4_5\", got CR_UNDEFINED")
    return code_rate


def _parse_item(raw: Any, n: int) -> _Item:
    item = pj.parse_message(raw, f"items[{n}]")
    if "phyPayload" not in item:
        raise pj.ProtoJsonError(f"items[{n}]: missing phyPayload")
    payload = pj.decode_bytes(item["phyPayload"], f"items[{n}].phyPayload")
    tx_info = pj.parse_message(item.get("txInfo"), f"items[{n}].txInfo")
    modulation = pj.parse_message(tx_info.get("modulation"), f"items[{n}].txInfo.modulation")
    lora = pj.parse_message(modulation.get("lora"), f"items[{n}].txInfo.modulation.lora")
    for key in ("bandwidth", "spreadingFactor", "codeRate"):
        if key not in lora:
            raise pj.ProtoJsonError(f"items[{n}].txInfo.modulation.lora: missing {key}")
    if "frequency" not in tx_info:
        raise pj.ProtoJsonError(f"items[{n}].txInfo: missing frequency")
    if "timing" not in tx_info:
        raise pj.ProtoJsonError(f"items[{n}].txInfo: missing timing")
    return _Item(
        phy_payload=payload,
        frequency_hz=pj.parse_uint32(tx_info["frequency"], f"items[{n}].txInfo.frequency"),
        power_dbm=pj.parse_int32(tx_info.get("power", 0), f"items[{n}].txInfo.power"),
        spreading_factor=pj.parse_uint32(lora["spreadingFactor"], f"items[{n}]...spreadingFactor"),
        bandwidth_hz=pj.parse_uint32(lora["bandwidth"], f"items[{n}]...bandwidth"),
        code_rate=_code_rate(lora["codeRate"], f"items[{n}]...codeRate"),
        polarization_inversion=pj.parse_bool(lora.get("polarizationInversion", False),
                                             f"items[{n}]...polarizationInversion"),
        timing=_parse_timing(pj.parse_message(tx_info["timing"], f"items[{n}].txInfo.timing")),
        context=pj.decode_bytes(tx_info.get("context", ""), f"items[{n}].txInfo.context"),
    )


def parse_downlink_frame(payload: bytes) -> _Downlink:
    """Read a command/down DownlinkFrame; _BadDownlink (with the downlinkId if readable) otherwise."""
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadDownlink(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise _BadDownlink(f"expected a JSON object, got {type(message).__name__}")
    try:
        downlink_id = pj.parse_uint32(message.get("downlinkId", 0), "downlinkId")
    except pj.ProtoJsonError as exc:
        raise _BadDownlink(str(exc)) from None
    raw_items = message.get("items")
    count = len(raw_items) if isinstance(raw_items, list) else 1
    if not isinstance(raw_items, list) or not raw_items:
        raise _BadDownlink(f"items: expected a non-empty list, got {raw_items!r:.40}", downlink_id, count)
    try:
        items = tuple(_parse_item(raw, n) for n, raw in enumerate(raw_items))
    except pj.ProtoJsonError as exc:
        raise _BadDownlink(str(exc), downlink_id, count) from None
    return _Downlink(downlink_id, items)


class ChirpStackBridge:
    """ChirpStack Gateway Bridge v4 (JSON) for a :class:`Concentrator`, over a real MQTT broker.

    ``connect_timeout_s`` bounds the real-time wait for CONNACK and SUBACK in :meth:`start`.
    ``rng`` (optional) makes uplink ids reproducible.
    """

    def __init__(
        self,
        concentrator: Concentrator,
        scheduler: Scheduler,
        broker_host: str,
        broker_port: int,
        gateway_id: str,
        topic_prefix: str = "eu868/",
        username: str | None = None,
        password: str | None = None,
        *,
        qos: int = 0,
        connect_timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.concentrator = concentrator
        self.scheduler = scheduler
        self.broker_host = broker_host
        self.broker_port = int(broker_port)
        self.gateway_id = _check_gateway_id(gateway_id)
        prefix = topic_prefix or ""
        self.topic_prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.qos = qos
        self.connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        base = f"{self.topic_prefix}gateway/{self.gateway_id}"
        self.state_topic = f"{base}/state/conn"
        self.up_topic = f"{base}/event/up"
        self.ack_topic = f"{base}/event/ack"
        self.command_topic = f"{base}/command/#"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"hil-gw-{self.gateway_id}", protocol=mqtt.MQTTv311
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.will_set(self.state_topic, self._state_payload("OFFLINE"), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._ready = threading.Event()
        self._connect_error: str | None = None
        self._sub_mid: int | None = None
        self._lock = threading.Lock()
        self._running = False
        self.uplinks_published = 0
        self.downlinks_received = 0
        self.downlinks_dropped = 0
        self.acks_published = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, publish ONLINE (retained), subscribe to commands and forward uplinks.

        BridgeConnectionError if the broker refuses or does not answer within ``connect_timeout_s``.
        """
        if self._running:
            return
        self._ready.clear()
        self._connect_error = None
        try:
            self._client.connect(self.broker_host, self.broker_port, keepalive=30)
        except OSError as exc:
            raise BridgeConnectionError(
                f"gateway {self.gateway_id}: cannot connect to MQTT broker {self.broker_host}:{self.broker_port}: {exc}"
            ) from exc
        self._client.loop_start()
        # real time: infrastructure start-up, as the broker's own; a ManualClock could not wait here
        if not self._ready.wait(self.connect_timeout_s) or self._connect_error is not None:
            why = self._connect_error or f"no CONNACK/SUBACK within {self.connect_timeout_s} s"
            self._client.disconnect()
            self._client.loop_stop()
            raise BridgeConnectionError(
                f"gateway {self.gateway_id}: MQTT broker {self.broker_host}:{self.broker_port}: {why}"
            )
        self._running = True
        self.concentrator.add_listener(self._on_rx)
        log.info("gateway %s: ChirpStack bridge online at %s:%d (prefix %r)", self.gateway_id, self.broker_host,
                 self.broker_port, self.topic_prefix)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish OFFLINE (retained), disconnect and stop paho's thread. ``timeout_s`` is real time."""
        self.concentrator.remove_listener(self._on_rx)
        if not self._running:
            return
        self._running = False
        try:
            info = self._client.publish(self.state_topic, self._state_payload("OFFLINE"), qos=1, retain=True)
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:  # not connected any more: the LWT says OFFLINE
            log.warning("gateway %s: could not publish OFFLINE: %s", self.gateway_id, exc)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> "ChirpStackBridge":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- paho callbacks (network thread) ---------------------------------------------------------

    def _state_payload(self, state: str) -> bytes:
        return json.dumps({"gatewayId": self.gateway_id, "state": state}, separators=(",", ":")).encode()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._connect_error = f"connection refused: {reason}"
            self._ready.set()
            return
        client.publish(self.state_topic, self._state_payload("ONLINE"), qos=1, retain=True)
        result, mid = client.subscribe(self.command_topic, qos=self.qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._connect_error = f"subscribe to {self.command_topic} failed ({result})"
            self._ready.set()
            return
        self._sub_mid = mid

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(r.is_failure for r in reasons):
            self._connect_error = f"subscription to {self.command_topic} refused: {reasons}"
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._running:
            log.warning("gateway %s: MQTT connection lost (%s); paho reconnects", self.gateway_id, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        command = message.topic.rsplit("/", 1)[-1]
        if command != "down":
            log.info("gateway %s: ignoring command %r (not modelled)", self.gateway_id, command)
            return
        with self._lock:
            self.downlinks_received += 1
        try:
            frame = parse_downlink_frame(message.payload)
        except _BadDownlink as exc:
            with self._lock:
                self.downlinks_dropped += 1
            log.warning("gateway %s: dropped malformed command/down (%s): %.200r", self.gateway_id, exc,
                        message.payload)
            if exc.downlink_id is not None:
                statuses = [TxAckStatus.INTERNAL_ERROR] * max(1, exc.item_count)
                self.scheduler.call_soon(self._publish_ack, exc.downlink_id, statuses, name="gw-ack")
            return
        self.scheduler.call_soon(self._send_downlink, frame, name="gw-downlink")

    # -- scheduler thread ----------------------------------------------------------------------

    def _on_rx(self, packet: RxPacket) -> None:
        if not self._running:
            return
        uplink_id = self._rng.getrandbits(32)
        body = uplink_frame_json(packet, self.gateway_id, uplink_id, self.concentrator.unix_time_at(packet.time))
        self._client.publish(self.up_topic, json.dumps(body, separators=(",", ":")), qos=self.qos)
        with self._lock:
            self.uplinks_published += 1

    def _send_downlink(self, frame: _Downlink) -> None:
        if not self._running:
            return  # arrived while stopping: a stopped gateway sends nothing
        statuses: list[TxAckStatus] = [TxAckStatus.IGNORED] * len(frame.items)
        for n, item in enumerate(frame.items):
            status = self._try_item(frame.downlink_id, n, item)
            statuses[n] = status
            if status == TxAckStatus.OK:
                break
        self._publish_ack(frame.downlink_id, statuses)

    def _try_item(self, downlink_id: int, n: int, item: _Item) -> TxAckStatus:
        if item.timing.gps:
            return TxAckStatus.GPS_UNLOCKED
        tmst: int | None = None
        if item.timing.delay_us is not None:
            if len(item.context) != 4:
                log.warning("gateway %s: downlink %d item %d: context must be 4 bytes, got %d", self.gateway_id,
                            downlink_id, n, len(item.context))
                return TxAckStatus.INTERNAL_ERROR
            tmst = tmst_add(int.from_bytes(item.context, "big"), item.timing.delay_us)
        request = TxRequest(item.phy_payload, item.frequency_hz, item.spreading_factor, item.bandwidth_hz,
                            item.power_dbm, item.code_rate, tmst, item.polarization_inversion)
        try:
            return self.concentrator.schedule(request)
        except ValueError as exc:
            log.warning("gateway %s: downlink %d item %d cannot be sent: %s", self.gateway_id, downlink_id, n, exc)
            return TxAckStatus.INTERNAL_ERROR

    def _publish_ack(self, downlink_id: int, statuses: list[TxAckStatus]) -> None:
        if not self._running:
            return
        items = [{"status": s.value} if s != TxAckStatus.IGNORED else {} for s in statuses]
        body = pj.without_defaults({"gatewayId": self.gateway_id, "downlinkId": downlink_id, "items": items})
        self._client.publish(self.ack_topic, json.dumps(body, separators=(",", ":")), qos=self.qos)
        with self._lock:
            self.acks_published += 1
