"""The feedback-meter role: is there mains voltage at the relay output?

Two meters answer the same small protocol, :class:`FeedbackMeter` (``ac_voltage()`` and
``mains_present()``):

* :class:`Dmm`: a bench DMM on VISA (Keysight 34461A, Rigol DM3058 profiles), configured
  once for AC volts on a fixed range, then one reading per call;
* :class:`SmartMeter`: a Shelly Gen2 smart plug/relay on MQTT (paho-mqtt 2.x) that publishes
  its switch status on ``<prefix>/status/switch:0`` and answers ``Switch.GetStatus`` RPCs.

The mains decision uses a fixed threshold, :data:`MAINS_THRESHOLD_V` = 100 V, not half of the
nominal voltage: half of 230 V (115 V) would read 115 V mains as absent. 100 V sits between the
0 V of an open relay output and both 115 V and 230 V mains, and above what a high-impedance DMM
reads on an open contact from induced or leakage voltage (typically below 30 V).

Readings are kept in ``events`` with their rig times, and each is logged as a step on
``hil.steps``. A meter that cannot be reached raises :class:`InstrumentError` (a rig fault); a
malformed status message from a smart meter is logged and ignored.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable
from urllib.parse import urlsplit

from drivers.instruments.profiles import DmmProfile, load_dmm_profile
from drivers.instruments.visa import InstrumentError, ScpiSession, Transport, connect
from hil.clock import Clock, Deadline
from hil.report.steps import rig_step_method

log = logging.getLogger(__name__)
steps = logging.getLogger("hil.steps")

__all__ = ["MAINS_THRESHOLD_V", "Dmm", "FeedbackMeter", "MeterStatus", "Reading", "SmartMeter"]

#: Volts RMS at or above which mains counts as present (see the module's docstring for why 100 V).
MAINS_THRESHOLD_V = 100.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One AC-volts reading at a rig time, from ``source`` (the meter's name)."""

    time: float
    volts: float
    source: str


@runtime_checkable
class FeedbackMeter(Protocol):
    """What a relay test needs from a meter at the relay output."""

    events: list[Reading]

    def ac_voltage(self) -> float:
        """Volts RMS at the relay output now."""
        ...

    def mains_present(self, threshold_v: float = MAINS_THRESHOLD_V) -> bool:
        """True if the output carries mains (``ac_voltage() >= threshold_v``)."""
        ...

    def close(self) -> None:
        ...


def _decide(meter: Any, volts: float, threshold_v: float) -> bool:
    present = volts >= threshold_v
    steps.info("%s: mains %s (%.1f V, threshold %.1f V) at %.3f rig s", meter.name,
               "present" if present else "absent", volts, threshold_v, meter.clock.now())
    return present


# -- the DMM --------------------------------------------------------------------------------------


class Dmm:
    """A bench DMM reading AC volts at the relay output, through its profile ``dialect``.

    ``range`` is the AC range in volts (the smallest of the profile's ranges holding it) or
    ``"AUTO"``; a fixed 750 V range avoids range changes on a 0 V / 230 V step.
    """

    def __init__(
        self,
        resource: str,
        dialect: str | Path | DmmProfile,
        clock: Clock,
        *,
        range: float | str = 750.0,  # noqa: A002 — the instrument's word
        profiles_dir: str | Path | None = None,
        visa_library: str = "@py",
        transport: Transport | None = None,
        name: str = "dmm",
    ) -> None:
        self.profile = dialect if isinstance(dialect, DmmProfile) else load_dmm_profile(dialect, profiles_dir)
        self.range_token = self.profile.range_token(range)  # ValueError naming the profile before anything is sent
        self.range = range
        self.resource = resource
        self.clock = clock
        self.name = name
        self.visa_library = visa_library
        self.events: list[Reading] = []
        self.idn: str | None = None
        self._transport = transport
        self._session: ScpiSession | None = None

    def open(self) -> "Dmm":
        """Connect, identify, empty a stale error queue and configure AC volts; InstrumentError if unreachable."""
        if self._session is not None:
            return self
        session, self.idn = connect(self.resource, self.profile, self.clock, name=self.name,
                                    transport=self._transport, visa_library=self.visa_library)
        try:
            for template in self.profile.commands.configure_ac:
                session.write_checked(template.format(value=self.range_token))
        except BaseException:
            session.close()
            raise
        self._session = session
        steps.info("%s: AC volts, range %s, at %.3f rig s (%s)", self.name, self.range, self.clock.now(), self.idn)
        return self

    def close(self) -> None:
        """Close the connection; idempotent."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> "Dmm":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dmm({self.resource!r}, {self.profile.name}, {'open' if self._session else 'closed'})"

    @property
    def session(self) -> ScpiSession:
        if self._session is None:
            raise InstrumentError(f"{self.name}: {self.resource} is not open (call open())", resource=self.resource)
        return self._session

    def write_checked(self, command: str) -> None:
        """Send a raw setting command and check the error queue."""
        self.session.write_checked(command)

    def query(self, command: str) -> str:
        """Send a raw query and return its reply."""
        return self.session.query(command)

    @rig_step_method("meter: measure AC volts")
    def ac_voltage(self) -> float:
        """One AC-volts reading; InstrumentError on an overload or a reply that is not a number."""
        t = self.clock.now()
        reply = self.session.query(self.profile.commands.read_ac)
        try:
            volts = self.profile.replies.number(reply.split(",")[0])
        except ValueError as exc:
            raise InstrumentError(f"{self.name} ({self.profile.name}) at {self.resource}: reading: {exc}",
                                  resource=self.resource, command=self.profile.commands.read_ac) from None
        overload = self.profile.replies.overload_at
        if not math.isfinite(volts) or (overload is not None and abs(volts) >= overload):
            raise InstrumentError(f"{self.name} ({self.profile.name}) at {self.resource}: overload ({reply.strip()}) "
                                  f"on the {self.range} V AC range", resource=self.resource,
                                  command=self.profile.commands.read_ac)
        self.events.append(Reading(t, volts, self.name))
        steps.info("%s: %.2f V AC at %.3f rig s", self.name, volts, t)
        return volts

    def mains_present(self, threshold_v: float = MAINS_THRESHOLD_V) -> bool:
        """True if a reading is at or above ``threshold_v`` (default 100 V, see the module docstring)."""
        return _decide(self, self.ac_voltage(), threshold_v)


# -- the MQTT smart meter -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """A smart meter's switch status as received at rig time ``time``."""

    time: float
    voltage: float
    output: bool | None
    apower: float | None
    current: float | None
    source: str | None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_status(payload: Any, time: float) -> MeterStatus:
    """A Shelly ``switch:0`` status object as a MeterStatus; ValueError naming what is wrong."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    volts = _number(payload.get("voltage"))
    if volts is None or not math.isfinite(volts):
        raise ValueError(f"'voltage': expected a number, got {payload.get('voltage')!r}")
    output = payload.get("output")
    source = payload.get("source")
    return MeterStatus(time, volts, output if isinstance(output, bool) else None, _number(payload.get("apower")),
                       _number(payload.get("current")), source if isinstance(source, str) else None)


class SmartMeter:
    """A Shelly Gen2 meter on MQTT: the latest ``switch:0`` status, and ``Switch.GetStatus`` on demand.

    ``broker_url`` is ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; ``topic_prefix`` the
    Shelly's MQTT prefix. Waits are rig seconds: ``connect_timeout_s`` for CONNACK/SUBACK,
    ``status_timeout_s`` for a first status, ``rpc_timeout_s`` for an RPC reply. The password
    never appears in a message or repr.
    """

    def __init__(
        self,
        broker_url: str,
        topic_prefix: str,
        clock: Clock,
        username: str | None = None,
        password: str | None = None,
        *,
        connect_timeout_s: float = 30.0,
        status_timeout_s: float = 10.0,
        rpc_timeout_s: float = 10.0,
        ca_file: str | None = None,
        qos: int = 1,
        name: str = "meter",
    ) -> None:
        parts = urlsplit(broker_url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ValueError(f"broker_url {broker_url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        self.tls = parts.scheme in ("mqtts", "ssl")
        self.host = parts.hostname
        try:
            self.port = parts.port or (8883 if self.tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker_url {broker_url!r}: {exc}") from None
        self.broker_url = f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
        self.topic_prefix = topic_prefix.rstrip("/")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            raise ValueError(f"topic_prefix {topic_prefix!r}: expected a topic without wildcards")
        self.clock = clock
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.status_timeout_s = status_timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self.qos = qos
        self.events: list[Reading] = []
        self.ignored = 0  # malformed status messages dropped
        self.src = f"hil-{secrets.token_hex(4)}"
        self._username = username
        self._password = password
        self._ca_file = ca_file
        self._cond = threading.Condition()
        self._client: Any = None
        self._latest: MeterStatus | None = None
        self._sub_mid: int | None = None
        self._subscribed = False
        self._failure: str | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._waiting: set[int] = set()

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/status/switch:0"

    @property
    def rpc_topic(self) -> str:
        return f"{self.topic_prefix}/rpc"

    @property
    def reply_topic(self) -> str:
        return f"{self.src}/rpc"

    @property
    def resource(self) -> str:
        """Where the meter is, for messages: ``mqtt://host:port <prefix>``."""
        return f"{self.broker_url} {self.topic_prefix}"

    def __repr__(self) -> str:
        who = f", user {self._username!r}" if self._username else ""
        return f"SmartMeter({self.broker_url}, prefix {self.topic_prefix!r}{who}, " \
               f"{'open' if self._client is not None else 'closed'})"

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> "SmartMeter":
        """Connect, subscribe to the status and RPC-reply topics, and ask for a first status.

        InstrumentError naming the broker and prefix if the broker cannot be reached, refuses
        the client, or does not answer within ``connect_timeout_s`` rig seconds.
        """
        if self._client is not None:
            return self
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.src}-meter", clean_session=True,
                             protocol=mqtt.MQTTv311)
        real = self.clock.real_seconds(self.connect_timeout_s)
        client.connect_timeout = real if real > 0 else self.connect_timeout_s
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self.tls:
            client.tls_set(ca_certs=self._ca_file)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        with self._cond:
            self._subscribed, self._failure, self._sub_mid = False, None, None
        self._client = client
        try:
            client.connect(self.host, self.port, keepalive=60)
        except (OSError, ValueError) as exc:
            self._release()
            raise InstrumentError(f"{self.name}: cannot connect to the MQTT broker {self.broker_url} (meter "
                                  f"{self.topic_prefix}): {type(exc).__name__}: {exc}", resource=self.resource) from None
        client.loop_start()
        deadline = Deadline.after(self.clock, self.connect_timeout_s)
        with self._cond:
            self.clock.wait_for(self._cond, lambda: self._subscribed or self._failure is not None, deadline)
            subscribed, failure = self._subscribed, self._failure
        if not subscribed:
            self._release()
            reason = failure or f"no CONNACK/SUBACK within {self.connect_timeout_s:g} rig s"
            raise InstrumentError(f"{self.name}: MQTT broker {self.broker_url} (meter {self.topic_prefix}): {reason}",
                                  resource=self.resource)
        self._publish_rpc(next(self._ids), "Switch.GetStatus")  # the reply, if any, is a first status
        steps.info("%s: listening to %s at %.3f rig s", self.name, self.status_topic, self.clock.now())
        return self

    def close(self) -> None:
        """Disconnect and stop paho's network thread; idempotent."""
        self._release()

    def __enter__(self) -> "SmartMeter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _release(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        except Exception:  # already gone
            log.debug("%s: MQTT disconnect failed", self.name, exc_info=True)
        client.loop_stop()
        client.on_connect = client.on_subscribe = client.on_message = None
        # paho closes its wake-up socket pair only when the client is collected (paho 2.x; no public API).
        reset = getattr(client, "_reset_sockets", None)
        if callable(reset):
            reset()

    # -- paho callbacks (its network thread: never raise) ---------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        try:
            if reason.is_failure:
                with self._cond:
                    self._failure = f"the broker refused the connection: {reason}"
                    self._cond.notify_all()
                return
            _, mid = client.subscribe([(self.status_topic, self.qos), (self.reply_topic, self.qos)])
            with self._cond:
                self._sub_mid = mid
        except Exception:
            log.exception("%s: MQTT on_connect handling failed", self.name)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        try:
            with self._cond:
                if mid != self._sub_mid:
                    return
                refused = [str(rc) for rc in reasons if rc.is_failure]
                if refused:
                    self._failure = f"the broker refused the subscriptions ({', '.join(refused)})"
                else:
                    self._subscribed = True
                self._cond.notify_all()
        except Exception:
            log.exception("%s: MQTT on_subscribe handling failed", self.name)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self._handle(msg.topic, bytes(msg.payload))
        except Exception:  # a bug here must not kill paho's thread
            log.exception("%s: handling MQTT message on %s failed", self.name, msg.topic)

    def _handle(self, topic: str, payload: bytes) -> None:
        now = self.clock.now()
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.ignored += 1
            log.warning("%s: ignored malformed JSON on %s: %s; payload %r", self.name, topic, exc, payload[:200])
            return
        if topic == self.status_topic:
            self._accept_status(body, now, topic)
        elif topic == self.reply_topic:
            self._accept_reply(body, now)

    def _accept_status(self, body: Any, now: float, where: str) -> None:
        try:
            status = parse_status(body, now)
        except ValueError as exc:
            self.ignored += 1
            log.warning("%s: ignored status on %s: %s", self.name, where, exc)
            return
        with self._cond:
            if self._latest is None or status.time >= self._latest.time:
                self._latest = status
            self._cond.notify_all()

    def _accept_reply(self, body: Any, now: float) -> None:
        rid = body.get("id") if isinstance(body, dict) else None
        if not isinstance(rid, int) or isinstance(rid, bool):
            self.ignored += 1
            log.warning("%s: ignored RPC reply without an id on %s: %r", self.name, self.reply_topic, body)
            return
        result = body.get("result")
        if isinstance(result, dict) and "error" not in body:
            self._accept_status(result, now, f"{self.reply_topic} (id {rid})")
        with self._cond:
            if rid in self._waiting:
                self._replies[rid] = body
                self._cond.notify_all()
                return
        if "error" in body:  # the GetStatus sent at open(): the meter may have RPC over MQTT disabled
            log.warning("%s: RPC %d answered %r", self.name, rid, body["error"])

    # -- requests ------------------------------------------------------------------------------

    def _publish_rpc(self, rid: int, method: str) -> None:
        client = self._client
        if client is None:
            raise InstrumentError(f"{self.name}: {self.resource} is not open (call open())", resource=self.resource)
        request = {"id": rid, "src": self.src, "method": method, "params": {"id": 0}}
        info = client.publish(self.rpc_topic, json.dumps(request), qos=self.qos)
        if info.rc != 0:
            raise InstrumentError(f"{self.name}: {method} not published on {self.rpc_topic} ({self.broker_url}): "
                                  f"rc {info.rc}", resource=self.resource, command=method)

    def request_status(self, timeout_s: float | None = None) -> MeterStatus:
        """Ask the meter (RPC ``Switch.GetStatus`` on ``<prefix>/rpc``) and wait for its reply on ``<src>/rpc``.

        InstrumentError if no reply comes within ``timeout_s`` (default ``rpc_timeout_s``) rig
        seconds, or the meter answers with an RPC error (its code and message).
        """
        timeout = self.rpc_timeout_s if timeout_s is None else timeout_s
        rid = next(self._ids)
        with self._cond:
            self._waiting.add(rid)
        try:
            self._publish_rpc(rid, "Switch.GetStatus")
            deadline = Deadline.after(self.clock, timeout)
            with self._cond:
                self.clock.wait_for(self._cond, lambda: rid in self._replies, deadline)
                reply = self._replies.pop(rid, None)
        finally:
            with self._cond:
                self._waiting.discard(rid)
        if reply is None:
            raise InstrumentError(f"{self.name}: no reply to Switch.GetStatus on {self.reply_topic} within {timeout:g} "
                                  f"rig s (meter {self.topic_prefix} on {self.broker_url})", resource=self.resource,
                                  command="Switch.GetStatus")
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise InstrumentError(f"{self.name}: Switch.GetStatus answered error {code}: {message} (meter "
                                  f"{self.topic_prefix} on {self.broker_url})", resource=self.resource,
                                  command="Switch.GetStatus", code=code if isinstance(code, int) else None,
                                  error_message=message)
        try:
            return parse_status(reply.get("result"), self.clock.now())
        except ValueError as exc:
            raise InstrumentError(f"{self.name}: Switch.GetStatus reply: {exc}", resource=self.resource,
                                  command="Switch.GetStatus") from None

    @property
    def latest(self) -> MeterStatus | None:
        """The newest status received (notification or RPC reply), with its rig time."""
        with self._cond:
            return self._latest

    def wait_status(self, predicate: Callable[[MeterStatus], bool], timeout_s: float) -> MeterStatus:
        """Wait up to ``timeout_s`` rig seconds for a latest status satisfying ``predicate``; InstrumentError if none."""
        deadline = Deadline.after(self.clock, timeout_s)
        with self._cond:
            ok = self.clock.wait_for(self._cond, lambda: self._latest is not None and predicate(self._latest),
                                     deadline)
            latest = self._latest
        if not ok or latest is None:
            seen = f"latest {latest.voltage:g} V at {latest.time:.3f} rig s" if latest else "no status at all"
            raise InstrumentError(f"{self.name}: no matching status on {self.status_topic} within {timeout_s:g} rig s "
                                  f"({seen}; broker {self.broker_url})", resource=self.resource)
        return latest

    @rig_step_method("meter: measure AC volts")
    def ac_voltage(self) -> float:
        """The latest status's voltage; waits up to ``status_timeout_s`` rig seconds for a first status."""
        if self._client is None:
            raise InstrumentError(f"{self.name}: {self.resource} is not open (call open())", resource=self.resource)
        status = self.wait_status(lambda s: True, self.status_timeout_s)
        t = self.clock.now()
        self.events.append(Reading(t, status.voltage, self.name))
        steps.info("%s: %.1f V AC (status of %.3f rig s) at %.3f rig s", self.name, status.voltage, status.time, t)
        return status.voltage

    def mains_present(self, threshold_v: float = MAINS_THRESHOLD_V) -> bool:
        """True if the latest voltage is at or above ``threshold_v`` (default 100 V, see the module docstring)."""
        return _decide(self, self.ac_voltage(), threshold_v)
