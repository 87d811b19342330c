"""The reference network server (with its join server): a LoRaWAN network tests fully control.

It receives uplinks from a :class:`~hil.network.transport.GatewayTransport`, answers joins,
checks and delivers data uplinks, answers MAC commands, ACKs confirmed uplinks and sends the
application's queued downlinks (Class A in RX1 with RX2 as fallback, Class C at once). Every
frame in or out is recorded in :attr:`NetworkServer.events`; faults for negative tests are
armed through :attr:`NetworkServer.faults`. Every time comes from the rig clock given.

Behaviour worth knowing:

* A frame from a device is never an exception: malformed, unknown, replayed or forged frames
  are logged with a reason and dropped. ``handle_uplink`` does not raise.
* The network keeps a device's previous session after a (re)join until an uplink verifies in
  the new one (LoRaWAN 1.0.2 §6.2.5; also how 1.1 switches on RekeyInd). A device that missed
  its join-accept keeps working on the old session meanwhile.
* A retransmission (same FCnt as the last accepted uplink) is not delivered again; if it is
  confirmed it is ACKed again, with a new downlink counter.
* The application callbacks run before the Class A answer is built, so a downlink queued from
  a callback goes out in the windows of the uplink that triggered it.
* Fault.REPLAY_DOWNLINK sends the previous downlink's exact bytes *instead of* a new frame:
  nothing new is built, so queued payloads stay queued, no counter moves and MAC answers and
  ACKs of that uplink are not sent. On a join-request the DevNonce is recorded but no new
  JoinNonce or session is made.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from hil.clock import Clock, gps_time
from hil.lorawan import maccommands, session as lsession
from hil.lorawan.errors import FrameError
from hil.lorawan.fcnt import Verdict
from hil.lorawan.frames import DataFrame, JoinRequest, MType, Proprietary, RejoinRequest, decode
from hil.lorawan.maccommands import MacCommand
from hil.lorawan.region import Region, RegionError
from hil.lorawan.types import EUI64, NetID
from hil.network import downlink, events, mac, radio
from hil.network.application import ApplicationUplink, DownlinkState, QueuedDownlink, UplinkCallback
from hil.network.devaddr import DevAddrAllocator, SequentialDevAddrAllocator
from hil.network.errors import DownlinkError
from hil.network.events import EventLog, FrameEvent
from hil.network.faults import Fault, FaultInjector
from hil.network.join import JoinPolicy, JoinServer
from hil.network.registry import DeviceConfig, DeviceRegistry, DeviceState, Session
from hil.network.transport import DEFAULT_GATEWAY_ID, DownlinkFrame, DownlinkItem, GatewayTransport, TxAck, UplinkFrame
from hil.network.uplink import NoMatch, identify

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Answer:
    """What a data uplink asks of its Class A windows, carried across the application callbacks."""

    state: DeviceState
    session: Session
    uplink: UplinkFrame
    dr: int
    mac_answers: list[MacCommand] = field(default_factory=list)
    must_answer: bool = False
    delivery: ApplicationUplink | None = None


class NetworkServer:
    """A LoRaWAN network and join server for a test bench.

    ``net_id`` sets the NwkID of allocated DevAddrs (and the NetID in join-accepts);
    ``join_policy`` may deny a device (it then gets no answer); ``dev_addr_allocator`` is called
    as ``allocator(net_id, dev_eui)`` for each join (default: NwkAddr 1, 2, 3, ...).
    ``downlink_power_dbm`` is the EIRP asked of gateways; ``default_gateway_id`` carries Class C
    downlinks to a device no gateway has heard yet; uplink copies from *other* gateways within
    ``dedup_window_s`` are logged as duplicates and not processed again.
    """

    def __init__(
        self,
        region: Region,
        clock: Clock,
        *,
        net_id: NetID | int | str = NetID(0),
        transport: GatewayTransport | None = None,
        join_policy: JoinPolicy | None = None,
        dev_addr_allocator: DevAddrAllocator | None = None,
        downlink_power_dbm: float = 14.0,
        default_gateway_id: str = DEFAULT_GATEWAY_ID,
        dedup_window_s: float = 0.2,
        event_log: EventLog | None = None,
    ) -> None:
        self.region = region
        self.clock = clock
        self.net_id = NetID(net_id)
        self.registry = DeviceRegistry()
        self.events = event_log if event_log is not None else EventLog()
        self.faults = FaultInjector()
        self.join_server = JoinServer(
            region, self.registry, self.net_id, dev_addr_allocator or SequentialDevAddrAllocator(), join_policy
        )
        self.downlink_power_dbm = downlink_power_dbm
        self.default_gateway_id = default_gateway_id
        self.dedup_window_s = dedup_window_s
        self.tx_acks: list[TxAck] = []
        self._lock = threading.RLock()
        self._callbacks: list[UplinkCallback] = []
        self._queue_ids = itertools.count(1)
        self._downlink_ids = itertools.count(1)
        self._queued: dict[int, QueuedDownlink] = {}
        self._carried: dict[int, QueuedDownlink] = {}  # downlink_id -> the queue item it carried
        self._recent: dict[bytes, tuple[float, str]] = {}
        self.transport = transport
        if transport is not None:
            transport.start(self.handle_uplink, self.handle_tx_ack)

    # -- devices ------------------------------------------------------------------------------

    def add_device(self, config: DeviceConfig) -> DeviceState:
        """Provision a device (an ABP device gets its session at once); DeviceConfigError if it
        does not fit the region, DuplicateDeviceError if its DevEUI is taken."""
        radio.validate(config, self.region)
        with self._lock:
            state = self.registry.add(config)
            if config.activation == "abp":
                self.registry.activate(state, self._abp_session(config))
            return state

    def remove_device(self, dev_eui: EUI64 | int | str) -> None:
        """Forget a device, its sessions and its queue (queued downlinks become DISCARDED)."""
        with self._lock:
            state = self.registry.remove(dev_eui)
            for item in state.queue:
                item.state = DownlinkState.DISCARDED
            state.queue.clear()
            self.faults.clear(state.dev_eui)

    def reconfigure_device(self, dev_eui: EUI64 | int | str, /, **changes: Any) -> DeviceConfig:
        """Change a registered device's provisioning (e.g. ``rx_delay=3``, ``cf_list=(...)``) and
        keep what the join server learnt (DevNonces, JoinNonce, session); the old config is returned
        so a test can put it back. DeviceConfigError if the result does not fit the region."""
        with self._lock:
            state = self.registry.get(dev_eui)
            old = state.config
            new = DeviceConfig.model_validate({**old.model_dump(), **changes})
            radio.validate(new, self.region)
            state.config = new
            return old

    @property
    def join_policy(self) -> JoinPolicy | None:
        """Decides per device whether a join-request gets an answer (None: every device may join)."""
        return self.join_server.join_policy

    @join_policy.setter
    def join_policy(self, policy: JoinPolicy | None) -> None:
        self.join_server.join_policy = policy

    def device(self, dev_eui: EUI64 | int | str) -> DeviceState:
        """The runtime state of a device; UnknownDeviceError if it is not registered."""
        return self.registry.get(dev_eui)

    def _abp_session(self, config: DeviceConfig) -> Session:
        rx = radio.device_rx(config, self.region)
        assert config.dev_addr is not None
        return Session(
            dev_eui=config.dev_eui,
            dev_addr=config.dev_addr,
            keys=config.abp_session_keys(),
            rx1_dr_offset=rx.rx1_dr_offset,
            rx2_dr=rx.rx2_dr,
            rx2_frequency_hz=rx.rx2_frequency_hz,
            rx_delay_s=int(rx.rx1_delay_s),
            channels=radio.channels(config, self.region),
            created_at=self.clock.now(),
            otaa=False,
            fopts_variant=config.fopts_variant,
            last_fcnt_up=config.next_fcnt_up - 1 if config.next_fcnt_up > 0 else None,
            n_fcnt_down=config.next_fcnt_down,
            a_fcnt_down=config.next_af_cnt_down,
        )

    # -- application side ---------------------------------------------------------------------

    def on_uplink(self, callback: UplinkCallback) -> Callable[[], None]:
        """Call ``callback`` with every delivered application uplink; returns an unsubscribe function."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def enqueue_downlink(
        self, dev_eui: EUI64 | int | str, fport: int, payload: bytes, *, confirmed: bool = False
    ) -> int:
        """Queue an application downlink; returns its queue id (see :meth:`downlink`).

        A Class C device with a session gets it at once; a Class A device in the windows of
        its next uplink.
        """
        if isinstance(fport, bool) or not isinstance(fport, int) or not 1 <= fport <= 255:
            raise DownlinkError(f"an application downlink needs FPort 1..255, got {fport!r}")
        if not isinstance(payload, (bytes, bytearray)):
            raise DownlinkError(f"payload must be bytes, got {type(payload).__name__}")
        out: list[DownlinkFrame] = []
        with self._lock:
            state = self.registry.get(dev_eui)
            item = QueuedDownlink(next(self._queue_ids), state.dev_eui, fport, bytes(payload), confirmed, self.clock.now())
            state.queue.append(item)
            self._queued[item.queue_id] = item
            if state.config.device_class == "C" and state.session is not None and not state.answering:
                self._send_class_c(state, out)
        self._flush(out)
        return item.queue_id

    def downlink(self, queue_id: int) -> QueuedDownlink:
        """A snapshot of a queued downlink's record (state, counter, transport frame, TX status)."""
        with self._lock:
            item = self._queued.get(queue_id)
            if item is None:
                raise DownlinkError(f"no downlink with queue id {queue_id}")
            return replace(item)

    # -- transport callbacks ------------------------------------------------------------------

    def handle_uplink(self, uplink: UplinkFrame) -> None:
        """Process one received uplink (the transport's callback). Never raises."""
        out: list[DownlinkFrame] = []
        t = uplink.time if uplink.time is not None else self.clock.now()
        if not isinstance(uplink.phy_payload, bytes):  # a transport handed bytearray/memoryview
            uplink = replace(uplink, phy_payload=bytes(uplink.phy_payload))
        try:
            self._process(uplink, t, out)
        except Exception as exc:  # a bug must not kill a gateway thread; it is logged as an event
            log.exception("network server failed on an uplink")
            self._log_up(uplink, t, _mtype_of(uplink.phy_payload), events.ERROR,
                         reason=f"internal error: {type(exc).__name__}: {exc}")
        self._flush(out)

    def handle_tx_ack(self, ack: TxAck) -> None:
        """Record a gateway's TX acknowledgement (the transport's callback)."""
        with self._lock:
            self.tx_acks.append(ack)
            item = self._carried.get(ack.downlink_id)
            statuses = [str(getattr(s, "value", s)) for s in ack.statuses]
            if item is not None:  # "OK" if an item went out, else the first real complaint
                item.tx_status = "OK" if "OK" in statuses else next((s for s in statuses if s != "IGNORED"), "IGNORED")
        if "OK" not in statuses:
            log.warning("gateway did not transmit downlink %s: %s", ack.downlink_id, ", ".join(statuses))

    def close(self) -> None:
        """Close the transport."""
        if self.transport is not None:
            self.transport.close()

    def __enter__(self) -> NetworkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetworkServer({self.region.name}, NetID {self.net_id}, {len(self.registry)} devices)"

    # -- uplink processing --------------------------------------------------------------------

    def _process(self, uplink: UplinkFrame, t: float, out: list[DownlinkFrame]) -> None:
        with self._lock:
            if self._is_duplicate(uplink, t):
                return
            try:
                frame = decode(uplink.phy_payload)
            except FrameError as exc:
                self._log_up(uplink, t, _mtype_of(uplink.phy_payload), events.REJECTED, reason=f"malformed: {exc}")
                return
            if isinstance(frame, JoinRequest):
                self._join_request(uplink, t, frame, out)
                return
            if isinstance(frame, DataFrame) and frame.uplink:
                answer = self._data_uplink(uplink, t, frame)
            else:
                self._other_uplink(uplink, t, frame)
                return
            if answer is None:
                return
            answer.state.answering = True
        try:
            if answer.delivery is not None:
                self._deliver(answer.delivery)
        finally:
            with self._lock:
                answer.state.answering = False
                if answer.must_answer or answer.state.queue:
                    self._answer_class_a(answer, out)

    def _is_duplicate(self, uplink: UplinkFrame, t: float) -> bool:
        for phy in [p for p, (seen, _) in self._recent.items() if t - seen > self.dedup_window_s]:
            del self._recent[phy]
        first = self._recent.get(uplink.phy_payload)
        if first is not None and first[1] != uplink.gateway_id:
            self._log_up(uplink, t, _mtype_of(uplink.phy_payload), events.DUPLICATE,
                         reason=f"copy of a frame gateway {first[1]} received {t - first[0]:.3f} s earlier")
            return True
        if first is None:
            self._recent[uplink.phy_payload] = (t, uplink.gateway_id)
        return False

    def _other_uplink(self, uplink: UplinkFrame, t: float, frame: object) -> None:
        if isinstance(frame, Proprietary):
            self._log_up(uplink, t, "proprietary", events.IGNORED, reason="proprietary frame")
        elif isinstance(frame, RejoinRequest):
            self._log_up(uplink, t, "rejoin_request", events.REJECTED, dev_eui=str(frame.dev_eui),
                         reason=f"rejoin-request type {frame.rejoin_type} is not supported by the reference network")
        else:
            mtype = getattr(frame, "mtype", None)
            name = mtype.snake if isinstance(mtype, MType) else "unknown"
            self._log_up(uplink, t, name, events.REJECTED, reason=f"{name} is not an uplink message type")

    # -- join -----------------------------------------------------------------------------------

    def _join_request(self, uplink: UplinkFrame, t: float, request: JoinRequest, out: list[DownlinkFrame]) -> None:
        up = {"dev_eui": str(request.dev_eui), "dev_nonce": request.dev_nonce}
        try:
            dr = radio.uplink_dr(self.region, uplink)
        except RegionError as exc:
            self._log_up(uplink, t, "join_request", events.REJECTED, reason=str(exc), **up)
            return
        admission = self.join_server.admit(request)
        if not admission.admitted:
            self._log_up(uplink, t, "join_request", admission.outcome, reason=admission.reason, dr=dr,
                         mic_valid=admission.mic_valid, **up)
            return
        state = admission.state
        assert state is not None
        state.last_gateway_id = uplink.gateway_id
        try:
            windows = radio.class_a_items(
                self.region, uplink, dr, b"", radio.default_rx(self.region),
                rx1_delay_s=self.region.join_accept_delay1_s, rx2_delay_s=self.region.join_accept_delay2_s,
                power_dbm=self.downlink_power_dbm,
            )
        except RegionError as exc:
            self._log_up(uplink, t, "join_request", events.REJECTED, reason=f"cannot answer: {exc}", dr=dr,
                         mic_valid=True, **up)
            return
        eui = state.dev_eui
        if state.last_downlink_phy is not None and self.faults.take(eui, Fault.REPLAY_DOWNLINK, "join_accept"):
            self._log_up(uplink, t, "join_request", events.ACCEPTED, dr=dr, mic_valid=True,
                         reason="answered with the previous downlink (Fault.REPLAY_DOWNLINK); no new session", **up)
            self._emit_replay(state, uplink, windows, out)
            return
        drop = self.faults.take(eui, Fault.DROP_JOIN_ACCEPT, "join_accept")
        corrupt = None if drop else self.faults.take(eui, Fault.CORRUPT_MIC, "join_accept")
        result = self.join_server.accept(state, request, now=t, corrupt_mic=corrupt is not None)
        self.registry.activate(state, result.session)
        accepted = {"dev_addr": str(result.session.dev_addr), "join_nonce": result.join_accept.join_nonce}
        self._log_up(uplink, t, "join_request", events.JOIN_ACCEPTED, dr=dr, mic_valid=True, **up, **accepted)
        down = {"dev_eui": str(eui), "dev_nonce": request.dev_nonce, **accepted}
        if drop:
            self._log_down_fields(t, "join_accept", events.DROPPED, windows, uplink.gateway_id,
                                  faults=(Fault.DROP_JOIN_ACCEPT.value,), phy=result.phy_payload,
                                  reason="join-accept not sent (Fault.DROP_JOIN_ACCEPT)", mic_valid=True, **down)
            return
        faults = [Fault.CORRUPT_MIC.value] if corrupt else []
        items = [replace(i, phy_payload=result.phy_payload) for i in windows]
        items = self._window_faults(eui, items, faults, "join_accept")
        self._emit(state, uplink.gateway_id, items, out, t, mtype="join_accept", faults=faults,
                   mic_valid=not result.mic_corrupted, **down)

    # -- data -----------------------------------------------------------------------------------

    def _data_uplink(self, uplink: UplinkFrame, t: float, frame: DataFrame) -> _Answer | None:
        mtype = frame.mtype.snake
        base = {"dev_addr": str(frame.dev_addr), "confirmed": frame.confirmed, "ack": frame.fctrl.ack,
                "fport": frame.fport}
        try:
            dr = radio.uplink_dr(self.region, uplink)
        except RegionError as exc:
            self._log_up(uplink, t, mtype, events.REJECTED, reason=str(exc), **base)
            return None
        base["dr"] = dr
        candidates = self.registry.sessions_for(frame.dev_addr)
        match = identify(frame, candidates, self.region, tx_dr=dr, frequency_hz=uplink.frequency_hz)
        if isinstance(match, NoMatch):
            dev = {"dev_eui": str(match.state.dev_eui)} if match.state is not None else {}
            self._log_up(uplink, t, mtype, events.REJECTED, reason=match.reason,
                         mic_valid=False if candidates else None, fcnt=frame.fcnt, **dev, **base)
            return None
        state, sess = match.state, match.session
        base.update(dev_eui=str(state.dev_eui), fcnt=match.fcnt, mic_valid=True)
        if match.verdict in (Verdict.REPLAY, Verdict.GAP_TOO_LARGE):
            self._log_up(uplink, t, mtype, events.REJECTED, reason=match.reason, **base)
            return None
        notes: list[str] = []
        fopts, frm = lsession.crypt_payloads(frame, sess.keys, match.fcnt, frame.fopts, frame.frm_payload,
                                             sess.fopts_variant)
        commands: list[MacCommand] = []
        try:
            commands = maccommands.parse(frm if frame.fport == 0 else fopts, uplink=True,
                                         offset=9 + len(frame.fopts) if frame.fport == 0 else 8)
        except FrameError as exc:
            notes.append(f"MAC commands malformed: {exc}")
        names = tuple(c.name for c in commands)
        state.last_gateway_id = uplink.gateway_id
        if match.verdict is Verdict.RETRANSMISSION:
            again = "; ACKed again" if frame.confirmed else ""
            self._log_up(uplink, t, mtype, events.RETRANSMISSION, reason=f"{match.reason}: not delivered again{again}",
                         payload=frm, mac_commands=names, **base)
            if not frame.confirmed:
                return None
            sess.pending_ack_fcnt = match.fcnt
            return _Answer(state, sess, uplink, dr, must_answer=True)

        sess.last_fcnt_up = match.fcnt
        sess.uplinks += 1
        if sess is state.session:
            self.registry.drop_previous(state)
        else:
            notes.append("uplink in the previous session: the device has not used its new one yet")
        if sess.awaiting_ack is not None:
            sess.awaiting_ack.state = DownlinkState.ACKED if frame.fctrl.ack else DownlinkState.UNACKED
            sess.awaiting_ack = None
        elif frame.fctrl.ack:
            notes.append("ACK set but no confirmed downlink awaited one")
        gps_at_uplink = gps_time(self.clock) - (self.clock.now() - t)
        macs = mac.answer(commands, mac.MacContext(uplink.snr, uplink.spreading_factor, gps_at_uplink,
                                                   sess.lorawan_1_1, sess.otaa))
        notes.extend(macs.notes)
        if macs.rekey_ind:
            sess.rekey_ind_seen = True
        elif sess.lorawan_1_1 and sess.otaa and not sess.rekey_ind_seen:
            notes.append("no RekeyInd yet in this 1.1 session")
        if frame.confirmed:
            sess.pending_ack_fcnt = match.fcnt
        delivery = None
        if frame.fport is not None and frame.fport > 0:
            delivery = ApplicationUplink(
                state.dev_eui, sess.dev_addr, frame.fport, frm, match.fcnt, frame.confirmed, t,
                uplink.rssi, uplink.snr, uplink.frequency_hz, dr, uplink.gateway_id,
            )
        self._log_up(uplink, t, mtype, events.ACCEPTED, reason="; ".join(notes), payload=frm, mac_commands=names,
                     **base)
        must = frame.confirmed or bool(macs.answers) or frame.fctrl.adr_ack_req
        return _Answer(state, sess, uplink, dr, macs.answers, must, delivery)

    def _deliver(self, delivery: ApplicationUplink) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(delivery)
            except Exception:  # the application's bug must not stop the network
                log.exception("uplink callback %r failed", callback)

    def _answer_class_a(self, answer: _Answer, out: list[DownlinkFrame]) -> None:
        state, sess, uplink = answer.state, answer.session, answer.uplink
        t = self.clock.now()
        try:
            rx = radio.session_rx(sess)
            windows = radio.class_a_items(
                self.region, uplink, answer.dr, b"", rx, rx1_delay_s=rx.rx1_delay_s, rx2_delay_s=rx.rx2_delay_s,
                power_dbm=self.downlink_power_dbm,
            )
        except RegionError as exc:
            sess.pending_ack_fcnt = None
            self._log_down_fields(t, "unconfirmed_data_down", events.SEND_FAILED, [], uplink.gateway_id,
                                  dev_eui=str(state.dev_eui), reason=f"no receive window: {exc}")
            return
        eui = state.dev_eui
        if state.last_downlink_phy is not None and self.faults.take(eui, Fault.REPLAY_DOWNLINK, "data"):
            sess.pending_ack_fcnt = None  # this uplink's ACK is lost with the replay, not carried by a later frame
            self._emit_replay(state, uplink, windows, out)
            return
        built, faults = self._build(state, sess, answer.mac_answers)
        items = [replace(i, phy_payload=built.phy_payload) for i in windows]
        items = self._window_faults(eui, items, faults)
        self._emit_data(state, sess, built, uplink.gateway_id, items, out, t, faults)

    def _send_class_c(self, state: DeviceState, out: list[DownlinkFrame]) -> None:
        sess = state.session
        assert sess is not None
        t = self.clock.now()
        rx = radio.session_rx(sess)
        gateway = state.last_gateway_id or self.default_gateway_id
        window = radio.class_c_item(self.region, b"", rx, power_dbm=self.downlink_power_dbm)
        if state.last_downlink_phy is not None and self.faults.take(state.dev_eui, Fault.REPLAY_DOWNLINK, "data"):
            self._emit_replay(state, None, [window], out, gateway_id=gateway)
            return
        built, faults = self._build(state, sess, [])
        self._emit_data(state, sess, built, gateway, [replace(window, phy_payload=built.phy_payload)], out, t, faults)

    def _build(self, state: DeviceState, sess: Session, answers: list[MacCommand]) -> tuple[downlink.BuiltDownlink, list[str]]:
        jump = self.faults.take(state.dev_eui, Fault.JUMP_FCNT_DOWN, "data")
        corrupt = self.faults.take(state.dev_eui, Fault.CORRUPT_MIC, "data")
        faults = [f.fault.value for f in (jump, corrupt) if f is not None]
        built = downlink.build(state, sess, mac_answers=answers, jump_by=jump.by if jump else 0,
                               corrupt_mic=corrupt is not None)
        return built, faults

    def _window_faults(self, eui: EUI64, items: list[DownlinkItem], faults: list[str],
                       frame: str = "data") -> list[DownlinkItem]:
        if self.faults.take(eui, Fault.RX2_ONLY, frame):  # type: ignore[arg-type]
            items = items[1:]
            faults.append(Fault.RX2_ONLY.value)
        late = self.faults.take(eui, Fault.TOO_LATE, frame)  # type: ignore[arg-type]
        if late is not None:
            items = [replace(i, delay_s=(i.delay_s or 0.0) + late.late_by_s) for i in items]
            faults.append(Fault.TOO_LATE.value)
        return items

    # -- sending and logging --------------------------------------------------------------------

    def _emit_data(
        self, state: DeviceState, sess: Session, built: downlink.BuiltDownlink, gateway_id: str,
        items: list[DownlinkItem], out: list[DownlinkFrame], t: float, faults: list[str],
    ) -> None:
        downlink_id = self._emit(
            state, gateway_id, items, out, t, mtype=built.mtype.snake, faults=faults, dev_eui=str(state.dev_eui),
            dev_addr=str(sess.dev_addr), fcnt=built.fcnt, fport=built.fport, payload=built.payload,
            mac_commands=built.mac_commands, confirmed=built.mtype is MType.CONFIRMED_DATA_DOWN, ack=built.ack,
            mic_valid=built.mic_valid, queue_id=built.queued.queue_id if built.queued else None,
        )
        if built.queued is not None:
            built.queued.downlink_id = downlink_id
            built.queued.sent_at = t
            self._carried[downlink_id] = built.queued

    def _emit_replay(
        self, state: DeviceState, uplink: UplinkFrame | None, windows: list[DownlinkItem],
        out: list[DownlinkFrame], *, gateway_id: str | None = None,
    ) -> None:
        phy = state.last_downlink_phy
        assert phy is not None
        faults = [Fault.REPLAY_DOWNLINK.value]
        items = [replace(i, phy_payload=phy) for i in windows]
        if uplink is not None:
            items = self._window_faults(state.dev_eui, items, faults)
        gateway = gateway_id or (uplink.gateway_id if uplink else self.default_gateway_id)
        self._emit(state, gateway, items, out, self.clock.now(), mtype=_mtype_of(phy), outcome=events.REPLAYED,
                   faults=faults, dev_eui=str(state.dev_eui), reason="exact bytes of the previous downlink")

    def _emit(
        self, state: DeviceState, gateway_id: str, items: list[DownlinkItem], out: list[DownlinkFrame], t: float,
        *, mtype: str, faults: list[str], outcome: str = events.SENT, **fields: object,
    ) -> int:
        downlink_id = next(self._downlink_ids)
        out.append(DownlinkFrame(downlink_id, gateway_id, list(items)))
        state.last_downlink_phy = items[0].phy_payload
        self._log_down_fields(t, mtype, outcome, items, gateway_id, faults=tuple(faults), downlink_id=downlink_id,
                              phy=items[0].phy_payload, **fields)
        return downlink_id

    def _flush(self, out: list[DownlinkFrame]) -> None:
        if self.transport is None:
            return
        for frame in out:
            try:
                self.transport.send_downlink(frame)
            except Exception as exc:  # the gateway link failed: the event log says so
                log.exception("sending downlink %s failed", frame.downlink_id)
                self._log_down_fields(self.clock.now(), _mtype_of(frame.items[0].phy_payload if frame.items else b""),
                                      events.SEND_FAILED, list(frame.items), frame.gateway_id,
                                      downlink_id=frame.downlink_id, reason=f"{type(exc).__name__}: {exc}")

    def _log_up(self, uplink: UplinkFrame, t: float, mtype: str, outcome: str, **fields: object) -> None:
        self.events.append(FrameEvent(
            time=t, direction="up", mtype=mtype, outcome=outcome, frequency_hz=uplink.frequency_hz,
            rssi=uplink.rssi, snr=uplink.snr, gateway_id=uplink.gateway_id, uplink_id=uplink.uplink_id,
            phy_payload=bytes(uplink.phy_payload), **fields,  # type: ignore[arg-type]
        ))

    def _log_down_fields(
        self, t: float, mtype: str, outcome: str, items: list[DownlinkItem], gateway_id: str,
        *, phy: bytes = b"", faults: tuple[str, ...] | list[str] = (), **fields: object,
    ) -> None:
        first = items[0] if items else None
        names = _window_names(items)
        self.events.append(FrameEvent(
            time=t, direction="down", mtype=mtype, outcome=outcome, gateway_id=gateway_id,
            frequency_hz=first.frequency_hz if first else None,
            dr=radio.item_dr(self.region, first) if first else None,
            delay_s=first.delay_s if first else None, windows=names, faults=tuple(faults),
            phy_payload=phy, **fields,  # type: ignore[arg-type]
        ))


def _window_names(items: list[DownlinkItem]) -> tuple[str, ...]:
    if len(items) == 2:
        return ("RX1", "RX2")
    if len(items) == 1:
        return ("RXC",) if items[0].delay_s is None else ("RX2",)
    return ()


def _mtype_of(phy: bytes) -> str:
    return MType(phy[0] >> 5).snake if phy else "unknown"
