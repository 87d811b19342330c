"""A virtual Shelly Gen2 smart meter (Plus 1PM style) on MQTT, metering the relay's load circuit.

The meter sits between the DUT relay's contact and the load: power flows when its own switch
is on (it is, unless an RPC ``Switch.Set`` turns it off) and the contact is closed with mains
present. It then reads the mains RMS voltage, and current and power from
:class:`~hil.sim.mains.MainsConfig` ``load_ohms``; otherwise 0. Energy is integrated in rig time.

MQTT, as a Shelly with ``status_ntf`` and ``rpc_ntf`` on (``<prefix>`` = its topic prefix):

* ``<prefix>/status/switch:0`` — the full switch status (JSON) on start (``source: "init"``),
  when the load circuit changes (``"switch"``, or ``"MQTT"`` after an RPC ``Switch.Set``), and
  every ``status_period_s`` of rig time (``"timer"``);
* ``<prefix>/events/rpc`` — ``NotifyFullStatus`` on start, ``NotifyStatus`` with the changed
  fields after every status above;
* ``<prefix>/rpc`` — JSON-RPC requests; the reply goes to ``<src>/rpc``. Malformed JSON or an
  unknown method gets an error reply when a ``src`` can be found, else it is logged and dropped;
* ``<prefix>/online`` — ``true`` (retained) while connected, ``false`` as the last will.

Contact changes are debounced by ``debounce_s`` rig seconds (the meter samples, it does not see
a few milliseconds of contact bounce); ``debounce_s=0`` publishes every change. Timed work runs
on the rig's :class:`~hil.sim.scheduler.Scheduler`; RPCs arriving on the MQTT thread are handed
to it (``call_soon``) while it runs, and handled under the meter's lock otherwise (manual clock).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hil.clock import Deadline, SystemClock
from hil.sim.mains import RelayContact
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)


class SmartMeterError(RuntimeError):
    """The meter could not reach its broker (a rig fault, not a product failure)."""


class RpcError(Exception):
    """A JSON-RPC error the meter replies with (Shelly codes: -103 invalid argument, 404 no handler...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ShellyConfig:
    """The meter's identity and behaviour."""

    topic_prefix: str = "shellyplus1pm-hil"
    device_id: str | None = None  # the RPC ``src`` of its replies; defaults to the topic prefix
    status_period_s: float = 60.0
    debounce_s: float = 0.02
    temperature_c: float = 40.0
    model: str = "SNSW-001P16EU"
    app: str = "Plus1PM"
    firmware: str = "1.4.4"
    mac: str = "A8032ABE0001"
    qos: int = 1
    connect_timeout_s: float = 5.0  # real seconds: broker start-up is infrastructure, before rig time matters

    @property
    def src(self) -> str:
        return self.device_id or self.topic_prefix


class EnergyCounter:
    """Active energy in rig time: the total (Wh) and per-minute buckets (mWh) by the rig's Unix time."""

    def __init__(self, now: Callable[[], float], unix_time: Callable[[], float]) -> None:
        self._now = now
        self._unix = unix_time
        self._t = now()
        self._power = 0.0
        self.total_wh = 0.0
        self._minutes: dict[int, float] = {}

    def update(self, power_w: float) -> None:
        """Account the power held since the last update, then hold ``power_w``."""
        now = self._now()
        dt = now - self._t
        if dt > 0 and self._power > 0:
            self.total_wh += self._power * dt / 3600.0
            end = self._unix()
            start = end - dt
            while start < end:
                minute = math.floor(start / 60.0)
                seg_end = min(end, (minute + 1) * 60.0)
                self._minutes[minute] = self._minutes.get(minute, 0.0) + self._power * (seg_end - start) / 3.6
                start = seg_end
            for old in [m for m in self._minutes if m < minute - 4]:
                del self._minutes[old]
        self._t = max(self._t, now)
        self._power = power_w

    def snapshot(self) -> dict[str, Any]:
        """Shelly's ``aenergy``: ``by_minute[0]`` is the last complete minute, ``minute_ts`` the current one's start."""
        self.update(self._power)
        current = math.floor(self._unix() / 60.0)
        return {
            "total": round(self.total_wh, 3),
            "by_minute": [round(self._minutes.get(current - k, 0.0), 3) for k in (1, 2, 3)],
            "minute_ts": int(current * 60),
        }


_SRC = re.compile(rb'"src"\s*:\s*"([^"\\]{1,128})"')
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,12})')


class ShellyMeter:
    """A Shelly Gen2 switch with power metering on the rig's MQTT broker."""

    def __init__(
        self,
        contact: RelayContact,
        scheduler: Scheduler,
        *,
        host: str,
        port: int,
        config: ShellyConfig | None = None,
    ) -> None:
        self.contact = contact
        self.scheduler = scheduler
        self.host = host
        self.port = port
        self.config = config or ShellyConfig()
        self._lock = threading.RLock()
        self._switch_on = True
        self._running = False
        self._subscribed = False
        self._client: mqtt.Client | None = None
        self._timer: Timer | None = None
        self._debounce: Timer | None = None
        self._energy = EnergyCounter(scheduler.clock.now, scheduler.clock.unix_time)
        self._started_at = scheduler.clock.now()
        self._source = "init"
        self._published: dict[str, Any] = {}
        self.published_count = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "Switch.GetStatus": self._rpc_switch_get_status,
            "Switch.Set": self._rpc_switch_set,
            "Switch.Toggle": self._rpc_switch_toggle,
            "Switch.GetConfig": self._rpc_switch_get_config,
            "Shelly.GetStatus": self._rpc_shelly_get_status,
            "Shelly.GetDeviceInfo": self._rpc_shelly_get_device_info,
        }

    # -- topics --------------------------------------------------------------------------------

    @property
    def status_topic(self) -> str:
        return f"{self.config.topic_prefix}/status/switch:0"

    @property
    def events_topic(self) -> str:
        return f"{self.config.topic_prefix}/events/rpc"

    @property
    def rpc_topic(self) -> str:
        return f"{self.config.topic_prefix}/rpc"

    @property
    def online_topic(self) -> str:
        return f"{self.config.topic_prefix}/online"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Connect, subscribe to RPC, publish the initial status; returns the broker's (host, port)."""
        if self._running:
            return self.host, self.port
        cfg = self.config
        ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.src, clean_session=True)
        client.will_set(self.online_topic, "false", qos=1, retain=True)

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if reason.is_failure:
                log.error("%s: broker refused the connection: %s", cfg.src, reason)
                return
            c.subscribe(self.rpc_topic, qos=1)

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
            ready.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = self._on_message
        # Real time: reaching the broker is infrastructure start-up (a just-started broker may not
        # listen yet when it says so), not rig behaviour.
        real = SystemClock()
        deadline = Deadline.after(real, cfg.connect_timeout_s)
        while True:
            try:
                client.connect(self.host, self.port, keepalive=60)
                break
            except OSError as exc:
                if deadline.expired:
                    raise SmartMeterError(f"{cfg.src}: cannot connect to the MQTT broker at {self.host}:{self.port} "
                                          f"within {cfg.connect_timeout_s} s: {exc}") from exc
                real.sleep(min(0.02, deadline.remaining))
        client.loop_start()
        if not ready.wait(max(0.0, deadline.remaining)):
            client.disconnect()
            client.loop_stop()
            raise SmartMeterError(f"{cfg.src}: no CONNACK/SUBACK from {self.host}:{self.port} within "
                                  f"{cfg.connect_timeout_s} s")
        self._client = client
        with self._lock:
            self._running = True
            self._source = "init"
            self._energy.update(self._power_w())
        client.publish(self.online_topic, "true", qos=1, retain=True)
        if not self._subscribed:
            self.contact.subscribe(self._on_contact)  # RelayContact has no unsubscribe: stop() mutes it
            self._subscribed = True
        self._publish("init", full=True)
        self._timer = self.scheduler.call_later(cfg.status_period_s, self._on_timer, name=f"{cfg.src} status")
        return self.host, self.port

    def stop(self) -> None:
        """Stop publishing and disconnect; no MQTT thread is left behind."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            for timer in (self._timer, self._debounce):
                if timer is not None:
                    timer.cancel()
            self._timer = self._debounce = None
        client = self._client
        self._client = None
        if client is not None:
            info = client.publish(self.online_topic, "false", qos=1, retain=True)
            try:
                info.wait_for_publish(self.config.connect_timeout_s)
            except (RuntimeError, ValueError):
                pass  # not connected any more: the broker publishes the will instead
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> "ShellyMeter":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    # -- the measurement -----------------------------------------------------------------------

    def _volts(self) -> float:
        return self.contact.output_voltage_rms() if self._switch_on else 0.0

    def _power_w(self) -> float:
        volts = self._volts()
        return volts * volts / self.contact.config.load_ohms

    def status(self) -> dict[str, Any]:
        """The ``switch:0`` status now (what ``Switch.GetStatus`` returns)."""
        with self._lock:
            volts = self._volts()
            self._energy.update(self._power_w())
            t_c = self.config.temperature_c
            return {
                "id": 0,
                "source": self._source,
                "output": volts > 0,
                "apower": round(self._power_w(), 1),
                "voltage": round(volts, 1),
                "current": round(volts / self.contact.config.load_ohms, 3),
                "aenergy": self._energy.snapshot(),
                "temperature": {"tC": round(t_c, 1), "tF": round(t_c * 9 / 5 + 32, 1)},
            }

    # -- publishing ----------------------------------------------------------------------------

    def _publish(self, source: str, *, full: bool = False, only_if_changed: bool = False) -> None:
        with self._lock:
            if not self._running or self._client is None:
                return
            status = {**self.status(), "source": source}
            live = {k: status[k] for k in ("output", "apower", "voltage", "current")}
            if only_if_changed and live == {k: self._published.get(k) for k in live}:
                return
            if full:
                notify = {"method": "NotifyFullStatus", "params": {"ts": self._ts(), "switch:0": status}}
            else:
                delta = {k: v for k, v in live.items() if self._published.get(k) != v}
                if source == "timer":
                    delta["aenergy"] = status["aenergy"]
                notify = {"method": "NotifyStatus", "params": {"ts": self._ts(), "switch:0": {"id": 0, **delta}}}
            self._source = source
            self._published = live
            self.published_count += 1
            client = self._client
        # publish outside the lock: paho's network thread takes its own locks and calls back into us
        qos = self.config.qos
        client.publish(self.status_topic, json.dumps(status), qos=qos)
        event = {"src": self.config.src, "dst": f"{self.config.topic_prefix}/events", **notify}
        client.publish(self.events_topic, json.dumps(event), qos=qos)

    def _ts(self) -> float:
        return round(self.scheduler.clock.unix_time(), 2)

    def _on_timer(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._timer = self.scheduler.call_later(self.config.status_period_s, self._on_timer,
                                                    name=f"{self.config.src} status")
        self._publish("timer")

    def _on_contact(self, closed: bool) -> None:
        """RelayContact listener (scheduler thread): account energy, publish after the debounce."""
        self._changed("switch")

    def _changed(self, source: str) -> None:
        with self._lock:
            if not self._running:
                return
            self._energy.update(self._power_w())
            if self.config.debounce_s <= 0:
                self._publish(source, only_if_changed=True)
                return
            if self._debounce is not None:
                self._debounce.cancel()
            self._debounce = self.scheduler.call_later(self.config.debounce_s, self._settled, source,
                                                       name=f"{self.config.src} debounce")

    def _settled(self, source: str) -> None:
        with self._lock:
            self._debounce = None
        self._publish(source, only_if_changed=True)

    # -- RPC -----------------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        if self.scheduler.running:
            self.scheduler.call_soon(self.handle_rpc, payload, name=f"{self.config.src} rpc")
        else:
            self.handle_rpc(payload)

    def handle_rpc(self, payload: bytes) -> dict[str, Any] | None:
        """Answer one JSON-RPC request (published to ``<src>/rpc``); returns the reply, or None if dropped."""
        try:
            request = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            src = _SRC.search(payload)
            rid = _ID.search(payload)
            if src is None:
                log.warning("%s: dropped malformed RPC (no src to answer): %s; payload %r", self.config.src, exc,
                            payload[:200])
                return None
            return self._reply(src.group(1).decode("utf-8", "replace"), int(rid.group(1)) if rid else None,
                               error=RpcError(-32700, f"Parse error: {exc}"))
        if not isinstance(request, dict) or not isinstance(request.get("src"), str) or not request["src"]:
            log.warning("%s: dropped RPC without a src to answer: %r", self.config.src, payload[:200])
            return None
        src, rid = request["src"], request.get("id")
        method = request.get("method")
        params = request.get("params", {})
        try:
            if not isinstance(method, str):
                raise RpcError(-103, "Missing required argument 'method'!")
            handler = self._methods.get(method)
            if handler is None:
                raise RpcError(404, f"No handler for {method}")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise RpcError(-103, "Invalid argument 'params': expected an object")
            with self._lock:
                result = handler(params)
        except RpcError as exc:
            return self._reply(src, rid, error=exc)
        return self._reply(src, rid, result=result)

    def _reply(self, dst: str, rid: Any, *, result: Any = None, error: RpcError | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = {"id": rid, "src": self.config.src, "dst": dst}
        if error is not None:
            reply["error"] = {"code": error.code, "message": error.message}
            log.info("%s: RPC error to %s: %s", self.config.src, dst, error)
        else:
            reply["result"] = result
        client = self._client
        if client is not None and self._running:
            client.publish(f"{dst}/rpc", json.dumps(reply), qos=self.config.qos)
        return reply

    @staticmethod
    def _component_id(params: dict[str, Any]) -> None:
        cid = params.get("id")
        if cid is None:
            raise RpcError(-103, "Missing required argument 'id'!")
        if cid != 0 or isinstance(cid, bool):
            raise RpcError(-105, f"Argument 'id', value {cid} not found!")

    def _rpc_switch_get_status(self, params: dict[str, Any]) -> dict[str, Any]:
        self._component_id(params)
        return self.status()

    def _set_switch(self, on: bool) -> dict[str, Any]:
        was_on = self._switch_on
        self._energy.update(self._power_w())
        self._switch_on = on
        if was_on != on:
            self._changed("MQTT")
        return {"was_on": was_on}

    def _rpc_switch_set(self, params: dict[str, Any]) -> dict[str, Any]:
        self._component_id(params)
        on = params.get("on")
        if not isinstance(on, bool):
            raise RpcError(-103, "Invalid argument 'on': expected true or false")
        return self._set_switch(on)

    def _rpc_switch_toggle(self, params: dict[str, Any]) -> dict[str, Any]:
        self._component_id(params)
        return self._set_switch(not self._switch_on)

    def _rpc_switch_get_config(self, params: dict[str, Any]) -> dict[str, Any]:
        self._component_id(params)
        return {"id": 0, "name": None, "in_mode": "follow", "initial_state": "on", "auto_on": False,
                "auto_off": False, "power_limit": 4480, "voltage_limit": 280, "current_limit": 16.0}

    def _rpc_shelly_get_status(self, params: dict[str, Any]) -> dict[str, Any]:
        clock = self.scheduler.clock
        return {"switch:0": self.status(),
                "sys": {"mac": self.config.mac, "uptime": int(clock.now() - self._started_at),
                        "unixtime": int(clock.unix_time())}}

    def _rpc_shelly_get_device_info(self, params: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        return {"name": None, "id": cfg.src, "mac": cfg.mac, "model": cfg.model, "gen": 2, "fw_id": cfg.firmware,
                "ver": cfg.firmware, "app": cfg.app, "auth_en": False, "auth_domain": None}
