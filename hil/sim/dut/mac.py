"""The virtual DUT's LoRaWAN end-device MAC: :class:`DeviceMac`.

LoRaWAN 1.0.2/1.0.3, 1.0.4 and 1.1; OTAA and ABP; Class A and C; EU868 (US915 too). One
``DeviceMac`` lives per boot: the firmware creates it, calls :meth:`DeviceMac.start`, and
:meth:`DeviceMac.stop` at power loss or reset; RAM state dies with it, NVM (a
:class:`~hil.sim.dut.interfaces.MacStorage`) survives.

Time and threads: everything timed is a :class:`~hil.sim.scheduler.Scheduler` callback at a rig
time, and every reception is decided on the :class:`~hil.sim.radio.Transmission`'s rig timestamps
(see :mod:`hil.sim.dut.mac_windows`), never on when a thread ran. At a window's preamble timeout
the MAC reads the medium's log for a frame the window hears by its timestamps and that is still on
air (the preamble detector): with one it stays in RX until the frame's end, when the medium
delivers it; a frame put on the medium only after its start is never detected. The public methods may be called
from any thread (a console's): they check and record under the MAC's lock and leave the work to
scheduler callbacks. :class:`~hil.sim.dut.interfaces.MacHost` callbacks run *after* the lock is
released (on the scheduler thread, or on the caller's thread for a public method), so the host
may call back into the MAC.

Rules implemented (sources in ``shared/reference/lorawan-facts.md``):

* Join: DevNonce random and never reused (1.0.2/1.0.3, the last 64 kept in NVM) or a counter
  (1.0.4/1.1) persisted *before* the join-request goes out (the storage's ``on_done``), unless a
  defect says otherwise. Channel: random among the region's join channels the duty cycle allows;
  DR: the configured one. After RX2 without a valid accept the next attempt waits a random
  back-off of :data:`JOIN_BACKOFF_S` after the end of RX2, and never breaks the sub-band duty
  cycle nor the join-request budget (:mod:`hil.sim.dut.mac_dutycycle`).
* Uplinks: FCntUp persisted before TX (unless ``fcnt_not_persisted``), pending MAC answers and
  RekeyInd (1.1 OTAA, until RekeyConf) / ResetInd (1.1 ABP, until ResetConf) in FOpts, ACK when
  the last downlink was confirmed, random enabled channel the duty cycle allows (else wait).
* Downlinks: DevAddr, counter (no repeat, no replay), MIC, then MAC commands and delivery.

Defects honoured (``defects``): :data:`KNOWN_DEFECTS`.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from hil.lorawan import maccommands
from hil.lorawan.airtime import time_on_air_dr
from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import LoRaWANError
from hil.lorawan.frames import DataFrame, decode
from hil.lorawan.maccommands import MacCommand
from hil.lorawan.region import Region, RegionError
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import DevAddr
from hil.lorawan.version import LoRaWANVersion
from hil.sim.dut.interfaces import DownlinkReceived, MacCredentials, MacHost, MacState, MacStorage
from hil.sim.dut.mac_dutycycle import DutyCycle
from hil.sim.dut.mac_frames import AcceptedJoin, join_request, open_downlink, open_join_accept, seal_uplink
from hil.sim.dut.mac_windows import (
    RxParams,
    RxWindow,
    class_a_windows,
    join_rx_params,
    make_window,
    preamble_lock_deadline,
    still_on_air,
)
from hil.sim.radio import RadioMedium, Reception, Transmission
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

KNOWN_DEFECTS = frozenset({
    "devnonce_not_persisted",
    "devnonce_persisted_after_tx",
    "fcnt_not_persisted",
    "join_accept_mic_unchecked",
    "rx1_late",
})
"""Firmware defects the MAC can play (see the API notes in :class:`DeviceMac`)."""

JOIN_BACKOFF_S = (1.0, 10.0)
"""Uniform random wait (s) from the end of RX2 to the next join-request (then duty-cycle limits)."""

USED_DEV_NONCES_KEPT = 64
"""1.0.2/1.0.3: random DevNonces remembered in NVM to avoid reuse."""

MAX_DEV_NONCE = 0xFFFF
FHDR_MIN = 7  # DevAddr, FCtrl, FCnt
FPORT_SIZE = 1
MAX_FOPTS = 15
CODE_RATE = "4/5"
JOIN_REQUEST_SIZE = 23
DEAF_MEMORY_S = 60.0  # how long Class C remembers when it was deaf (TX, RX1)

# MAC commands (CIDs) the device handles
_RESET, _LINK_CHECK, _RX_TIMING, _REKEY, _DEVICE_TIME = 0x01, 0x02, 0x08, 0x0B, 0x0D
_MINOR = 1  # LoRaWAN 1.1 in ResetInd/RekeyInd


class MacConfigError(ValueError):
    """The MAC was built with settings the region cannot serve (data rate, TX power)."""


@dataclass
class _Session:
    """The RAM copy of the active session. ``channels``: uplink frequencies in channel-index
    order (region defaults, then CFList type 0 entries; 0 = no channel); ``enabled`` indexes."""

    dev_addr: DevAddr
    keys: SessionKeys = field(repr=False)
    otaa: bool
    rx: RxParams
    channels: list[int]
    enabled: set[int]


WindowState = Literal["pending", "open", "receiving", "closed", "skipped"]


@dataclass
class _Cycle:
    """One uplink (join-request or data) and its two receive windows.

    A window is ``pending``, ``open`` (listening for a preamble), ``receiving`` (it found one at
    its timeout: the radio stays in RX until ``busy_until``), ``closed``, or ``skipped`` (RX2
    while RX1 was still receiving). The cycle ends at the first valid frame, or when RX2 is over
    and RX1 is not receiving.
    """

    kind: Literal["join", "data"]
    tx: Transmission
    rx1: RxWindow
    rx2: RxWindow
    dev_nonce: int = 0
    fcnt: int = 0
    confirmed: bool = False
    acked: bool = False
    done: bool = False
    state: dict[str, WindowState] = field(default_factory=lambda: {"1": "pending", "2": "pending"})
    busy_until: dict[str, float] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)

    def listening(self) -> bool:
        return not self.done and any(s in ("open", "receiving") for s in self.state.values())


@dataclass
class _Uplink:
    fport: int
    payload: bytes
    confirmed: bool


class DeviceMac:
    """A LoRaWAN end-device MAC on the :class:`~hil.sim.radio.RadioMedium` (a RadioNode).

    Created at each boot, dead after :meth:`stop`. ``data_rate`` is the uplink (and join) data
    rate, ``tx_power`` the region's TXPower index; both are checked here (MacConfigError).
    ``rng`` drives DevNonces (1.0.2), channels and back-offs: seed it for reproducible runs.

    Defects (``defects``, see :data:`KNOWN_DEFECTS`): ``devnonce_not_persisted`` (DevNonce
    counter/used list in RAM only), ``devnonce_persisted_after_tx`` (the incremented DevNonce is
    written when the join-request's TX ends), ``fcnt_not_persisted`` (FCntUp in RAM only),
    ``join_accept_mic_unchecked``, ``rx1_late`` (RX1 opens :data:`~hil.sim.dut.mac_windows.RX1_LATE_BY_S`
    late). An unknown defect name raises MacConfigError.
    """

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        medium: RadioMedium,
        region: Region,
        version: LoRaWANVersion,
        credentials: MacCredentials,
        storage: MacStorage,
        host: MacHost,
        device_class: Literal["A", "C"] = "A",
        data_rate: int = 5,
        tx_power: int = 0,
        defects: frozenset[str] = frozenset(),
        rng: random.Random | None = None,
        join_attempts: int = 8,
        name: str = "dut",
    ) -> None:
        unknown = sorted(set(defects) - KNOWN_DEFECTS)
        if unknown:
            raise MacConfigError(f"unknown MAC defect {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_DEFECTS))}")
        if device_class not in ("A", "C"):
            raise MacConfigError(f"device_class must be 'A' or 'C', got {device_class!r}")
        if isinstance(join_attempts, bool) or not isinstance(join_attempts, int) or join_attempts < 1:
            raise MacConfigError(f"join_attempts must be an int >= 1, got {join_attempts!r}")
        self._check_data_rate(region, data_rate)
        try:
            self._power_dbm = region.tx_power_dbm(tx_power)
        except RegionError as exc:
            raise MacConfigError(f"tx_power: {exc}") from None
        self.name = name
        self._scheduler = scheduler
        self._clock = scheduler.clock
        self._medium = medium
        self._region = region
        self._version = LoRaWANVersion(version)
        self._credentials = credentials
        self._storage = storage
        self._host = host
        self._device_class: Literal["A", "C"] = device_class
        self._dr = data_rate
        self._tx_power = tx_power
        self._defects = frozenset(defects)
        self._rng = rng if rng is not None else random.Random()
        self._join_attempts = join_attempts

        self._lock = threading.RLock()
        self._depth = 0
        self._outbox: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._timers: dict[int, Timer] = {}
        self._started = False
        self._dead = False

        self._state = MacState()
        self._duty = DutyCycle(region, 0.0)
        self._session: _Session | None = None
        self._joining = False
        self._join_failures = 0
        self._uplink: _Uplink | None = None
        self._cycle: _Cycle | None = None
        self._ack_pending: int | None = None  # FCnt of the confirmed downlink to ACK
        self._answers: list[MacCommand] = []  # one-shot MAC answers/requests for the next uplink
        self._sticky: list[MacCommand] = []  # repeated until a Class A downlink arrives
        self._rekey_ind = False
        self._reset_ind = False
        self._transmitting = False
        self._radio_state: str | None = None
        self._c_since: float | None = None
        self._deaf: list[tuple[float, float]] = []
        self.link_check: tuple[int, int] | None = None
        """(margin dB, gateway count) of the last LinkCheckAns."""
        self.device_time_gps: float | None = None
        """GPS seconds of the last DeviceTimeAns (at the end of the uplink that asked)."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """After boot: load NVM, restore an OTAA session or set up ABP, attach to the medium."""
        self._entry(self._start)

    def stop(self) -> None:
        """Power lost, reset or halt: cancel every timer, detach; the object is dead afterwards."""
        with self._lock:
            self._dead = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            self._outbox.clear()
            self._cycle = None
        self._medium.detach(self)

    # -- commands ------------------------------------------------------------------------------

    def join(self) -> str | None:
        """OTAA: start joining; None if started, ``"busy"`` if joining or sending, ``"no_keys"``
        if a root key is missing. ABP: None, nothing to do."""
        return self._entry(self._join)

    def send(self, fport: int, payload: bytes, confirmed: bool = False) -> str | None:
        """Queue an uplink; it goes out as soon as the duty cycle allows. None if accepted, else
        ``"bad_port"`` (not 1..223), ``"not_joined"``, ``"busy"`` or ``"too_long"`` (longer than
        the region's N for the data rate)."""
        return self._entry(self._send, fport, bytes(payload), bool(confirmed))

    def set_device_class(self, device_class: Literal["A", "C"]) -> None:
        """Switch between Class A and Class C (continuous RX on the RX2 parameters)."""
        if device_class not in ("A", "C"):
            raise MacConfigError(f"device_class must be 'A' or 'C', got {device_class!r}")
        self._entry(self._set_class, device_class)

    def request_link_check(self) -> None:
        """Put a LinkCheckReq in the next uplink (the answer lands in :attr:`link_check`)."""
        self._entry(self._answers.append, maccommands.link_check_req())

    def request_device_time(self) -> None:
        """Put a DeviceTimeReq in the next uplink (the answer lands in :attr:`device_time_gps`)."""
        self._entry(self._answers.append, maccommands.device_time_req())

    # -- state -----------------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        """True with a session (OTAA joined or restored, or ABP)."""
        with self._lock:
            return self._session is not None

    @property
    def dev_addr(self) -> DevAddr | None:
        with self._lock:
            return self._session.dev_addr if self._session is not None else None

    @property
    def fcnt_up(self) -> int:
        """The next FCntUp."""
        with self._lock:
            return self._state.fcnt_up

    @property
    def fcnt_down(self) -> int:
        """The last received downlink counter (1.1: AFCntDown), 0 if none."""
        with self._lock:
            session = self._session
            if session is not None and session.keys.lorawan_1_1:
                return self._state.a_fcnt_down or 0
            return self._state.n_fcnt_down or 0

    @property
    def busy(self) -> bool:
        """Joining, or an uplink is waiting, on air or in its receive windows."""
        with self._lock:
            return self._joining or self._uplink is not None

    @property
    def joining(self) -> bool:
        with self._lock:
            return self._joining

    @property
    def device_class(self) -> str:
        with self._lock:
            return self._device_class

    @property
    def rx_params(self) -> RxParams | None:
        """The session's receive parameters (None without a session)."""
        with self._lock:
            return self._session.rx if self._session is not None else None

    @property
    def channels(self) -> list[int]:
        """The enabled uplink frequencies of the session (the join channels without one)."""
        with self._lock:
            return self._data_channels() if self._session is not None else self._join_channels()

    def __repr__(self) -> str:
        return (f"DeviceMac({self.name!r}, LoRaWAN {self._version.value}, class {self._device_class}, "
                f"{'joined' if self._session else 'not joined'})")

    # -- RadioNode -----------------------------------------------------------------------------

    def on_air(self, reception: Reception) -> None:
        """The medium hands over a frame at its end time; decided on its timestamps."""
        self._entry(self._on_air, reception)

    # ============================================================================================
    # internals: every entry point runs under the lock; host calls are flushed after it.

    def _entry(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self._dead or (not self._started and fn != self._start):
                return "busy" if fn in (self._join, self._send) else None
            self._depth += 1
            try:
                result = fn(*args)
            finally:
                self._depth -= 1
                outbox: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
                if self._depth == 0:
                    outbox, self._outbox = self._outbox, []
        error: BaseException | None = None
        for call, call_args in outbox:
            try:
                call(*call_args)
            except Exception as exc:  # the host's bug: finish telling it the rest, then raise
                log.exception("%s: host callback %s failed", self.name, getattr(call, "__name__", call))
                error = error or exc
        if error is not None:
            raise error
        return result

    def _notify(self, fn: Callable[..., Any], *args: Any) -> None:
        self._outbox.append((fn, args))

    def _at(self, at: float, fn: Callable[..., Any], *args: Any, name: str) -> Timer:
        """A tracked timer; it runs ``fn`` as an entry point. Call with the lock held."""
        holder: list[Timer] = []

        def fire() -> None:
            self._entry(self._fire, holder[0].seq, fn, args)

        timer = self._scheduler.call_at(at, fire, name=f"{self.name}:{name}")
        holder.append(timer)
        self._timers[timer.seq] = timer
        return timer

    def _fire(self, seq: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._timers.pop(seq, None)
        fn(*args)

    def _now(self) -> float:
        """The instant of the callback running now (see :meth:`Scheduler.now`)."""
        return self._scheduler.now()

    # -- start -----------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        now = self._now()
        self._state = self._storage.load()
        self._duty = DutyCycle(self._region, now)
        creds = self._credentials
        state = self._state
        if creds.activation == "abp":
            if creds.abp_dev_addr is not None and creds.abp_keys is not None:
                self._session = self._make_session(creds.abp_dev_addr, creds.abp_keys, otaa=False)
                self._reset_ind = creds.abp_keys.lorawan_1_1
        elif state.joined and state.dev_addr is not None and state.session_keys is not None:
            self._session = self._make_session(state.dev_addr, state.session_keys, otaa=True)
            # RekeyConf may never have arrived before the reboot: confirm the session again.
            self._rekey_ind = state.session_keys.lorawan_1_1
        self._medium.attach(self)
        if self._session is not None and self._device_class == "C":
            self._c_since = now
        self._update_radio()

    def _make_session(self, dev_addr: DevAddr, keys: SessionKeys, *, otaa: bool,
                      ch_masks: tuple[int, ...] = ()) -> _Session:
        state, region = self._state, self._region
        rx2_dr = state.rx2_dr if state.rx2_dr is not None else region.rx2_dr
        try:
            region.data_rate(rx2_dr)
        except RegionError:
            log.warning("%s: RX2 DR%s unknown in %s; using the default", self.name, rx2_dr, region.name)
            rx2_dr = region.rx2_dr
        offset = state.rx1_dr_offset
        width = len(next(iter(region.rx1_dr_table.values())))
        if not 0 <= offset < width:
            log.warning("%s: RX1DROffset %s out of range; using 0", self.name, offset)
            offset = 0
        delay = float(state.rx_delay_s or 1)
        rx = RxParams(delay, delay + 1.0, offset, region.rx2_frequency_hz, rx2_dr)
        channels = [ch.frequency_hz for ch in region.default_channels] + list(state.extra_channels)
        enabled = {i for i, f in enumerate(channels) if f and self._usable(f)}
        masked = {16 * n + bit for n, mask in enumerate(ch_masks) for bit in range(16) if mask >> bit & 1}
        if masked & enabled:
            enabled &= masked
        return _Session(dev_addr, keys, otaa, rx, channels, enabled)

    def _usable(self, frequency_hz: int) -> bool:
        try:
            self._duty.band(frequency_hz)
        except RegionError:
            log.warning("%s: channel %d Hz is in no sub-band; not used", self.name, frequency_hz)
            return False
        return True

    @staticmethod
    def _check_data_rate(region: Region, dr: int) -> None:
        try:
            rate = region.data_rate(dr)
        except RegionError as exc:
            raise MacConfigError(f"data_rate: {exc}") from None
        if not rate.uplink or rate.modulation != "LORA":
            raise MacConfigError(f"data_rate: {region.name} DR{dr} is not a LoRa uplink data rate")
        if not any(ch.min_dr <= dr <= ch.max_dr for ch in region.default_channels):
            raise MacConfigError(f"data_rate: no {region.name} uplink channel allows DR{dr}")

    # -- channels --------------------------------------------------------------------------------

    def _join_channels(self) -> list[int]:
        dr = self._dr
        return [ch.frequency_hz for block in self._region.uplink_channels if block.join
                for ch in block.channels() if ch.min_dr <= dr <= ch.max_dr]

    def _data_channels(self) -> list[int]:
        session = self._session
        assert session is not None
        defaults = self._region.default_channels
        lo, hi = min(c.min_dr for c in defaults), max(c.max_dr for c in defaults)
        out = []
        for i in sorted(session.enabled):
            if i < len(defaults):
                ok = defaults[i].min_dr <= self._dr <= defaults[i].max_dr
            else:
                ok = lo <= self._dr <= hi  # CFList channels get the default DR range
            if ok:
                out.append(session.channels[i])
        if not out:  # a channel mask that leaves nothing at this DR: fall back to the defaults
            out = [c.frequency_hz for c in defaults if c.min_dr <= self._dr <= c.max_dr]
        return out

    # -- radio -------------------------------------------------------------------------------------

    def _update_radio(self) -> None:
        cycle = self._cycle
        if self._transmitting:
            state = "tx"
        elif (cycle is not None and cycle.listening()) or self._c_since is not None:
            state = "rx"
        else:
            state = "sleep"
        if state != self._radio_state:
            self._radio_state = state
            self._notify(self._host.radio_state, state)

    def _transmit(self, phy: bytes, frequency_hz: int, *, join: bool) -> Transmission:
        rate = self._region.data_rate(self._dr)
        assert rate.spreading_factor is not None and rate.bandwidth_hz is not None
        now = self._now()
        airtime = time_on_air_dr(self._region, self._dr, len(phy), uplink=True)
        tx = Transmission(phy, frequency_hz, rate.spreading_factor, rate.bandwidth_hz, CODE_RATE,
                          self._power_dbm, now, now + airtime, False, self.name)
        self._duty.record(frequency_hz, tx.start, tx.end, join=join)
        self._deaf = [(a, b) for a, b in self._deaf if b > now - DEAF_MEMORY_S] + [(tx.start, tx.end)]
        self._transmitting = True
        self._update_radio()
        self._medium.transmit(tx)
        log.debug("%s: TX %s on %d Hz DR%d, %.3f s", self.name, "join-request" if join else "data",
                  frequency_hz, self._dr, airtime)
        return tx

    def _start_cycle(self, cycle: _Cycle) -> None:
        self._cycle = cycle
        t = cycle.timers
        t.append(self._at(cycle.tx.end, self._tx_ended, cycle, name="tx-end"))
        for window in (cycle.rx1, cycle.rx2):
            t.append(self._at(window.open_at, self._window_opens, cycle, window, name=f"rx{window.slot}-open"))
            t.append(self._at(window.close_at, self._window_times_out, cycle, window, name=f"rx{window.slot}-close"))

    def _tx_ended(self, cycle: _Cycle) -> None:
        self._transmitting = False
        self._update_radio()
        if cycle.kind == "join" and "devnonce_persisted_after_tx" in self._defects:
            self._persist_dev_nonce()

    def _window_opens(self, cycle: _Cycle, window: RxWindow) -> None:
        if cycle.done:
            return
        if window.slot == "2" and cycle.state["1"] == "receiving" and cycle.busy_until["1"] > window.open_at:
            cycle.state["2"] = "skipped"  # the radio is still receiving the RX1 frame
            return
        cycle.state[window.slot] = "open"
        if window.slot == "1":  # Class C is deaf on the RX2 channel while RX1 listens
            self._deaf.append((window.open_at, window.close_at))
        self._update_radio()

    def _window_times_out(self, cycle: _Cycle, window: RxWindow) -> None:
        """The preamble timeout: stay in RX for a frame found in time, else close the window.

        The medium delivers a frame at its end, so what the preamble detector knows now is asked
        of the medium: frames this window hears by their timestamps, still on air.
        """
        slot = window.slot
        if cycle.done or cycle.state[slot] != "open":
            return
        locked = still_on_air(window, self._medium.in_flight(self._now()), self._now())
        if locked:
            end = max(tx.end for tx in locked)
            cycle.state[slot] = "receiving"
            cycle.busy_until[slot] = end
            cycle.timers.append(self._at(end, self._reception_over, cycle, window, name=f"rx{slot}-rx-end"))
            if slot == "1":
                self._deaf.append((window.close_at, end))
        else:
            cycle.state[slot] = "closed"
        self._update_radio()
        self._maybe_conclude(cycle)

    def _reception_over(self, cycle: _Cycle, window: RxWindow) -> None:
        """The frame a window locked on has ended (its on_air ran first): the window is over."""
        if cycle.done:
            return
        cycle.state[window.slot] = "closed"
        self._update_radio()
        self._maybe_conclude(cycle)

    def _maybe_conclude(self, cycle: _Cycle) -> None:
        """No valid frame and nothing left to hear: the cycle failed."""
        if cycle.state["2"] in ("closed", "skipped") and cycle.state["1"] != "receiving":
            self._finish(cycle, success=False)

    def _finish(self, cycle: _Cycle, *, success: bool, accepted: AcceptedJoin | None = None) -> None:
        cycle.done = True
        for timer in cycle.timers:
            timer.cancel()
            self._timers.pop(timer.seq, None)
        self._cycle = None
        self._update_radio()
        if cycle.kind == "join":
            if success and accepted is not None:
                self._joined(cycle, accepted)
            else:
                self._join_failed_attempt()
        else:
            self._uplink = None
            self._notify(self._host.mac_tx_done, cycle.fcnt, cycle.confirmed, cycle.acked if cycle.confirmed else None)

    # -- join ------------------------------------------------------------------------------------

    def _root_keys(self) -> tuple[AESKey, AESKey] | None:
        """(key of join-requests and accepts, AppKey): (NwkKey, AppKey) for 1.1, AppKey twice for 1.0.x."""
        creds = self._credentials
        if self._version.is_1_1:
            if creds.nwk_key is None or creds.app_key is None:
                return None
            return creds.nwk_key, creds.app_key
        if creds.app_key is None:
            return None
        return creds.app_key, creds.app_key

    def _join(self) -> str | None:
        if self._credentials.activation == "abp":
            return None
        if self._root_keys() is None:
            return "no_keys"
        if self._joining or self._uplink is not None:
            return "busy"
        self._joining = True
        self._join_failures = 0
        if self._session is not None:  # a new join drops the session (in RAM; NVM keeps it until an accept)
            self._session = None
            self._c_since = None
            self._update_radio()
        self._at(self._now(), self._join_attempt, name="join")
        return None

    def _join_airtime(self) -> float:
        return time_on_air_dr(self._region, self._dr, JOIN_REQUEST_SIZE, uplink=True)

    def _join_attempt(self) -> None:
        now = self._now()
        at = self._duty.earliest(self._join_channels(), now, join_airtime=self._join_airtime())
        if at > now:
            self._at(at, self._join_attempt, name="join-wait")
            return
        state = self._state
        if self._version.dev_nonce_is_counter:
            nonce = state.dev_nonce
            if nonce > MAX_DEV_NONCE:
                self._joining = False
                self._notify(self._host.mac_join_failed, "dev_nonce_exhausted")
                return
            state.dev_nonce = nonce + 1
        else:
            used = set(state.used_dev_nonces)  # at most 64: a free value is always found
            nonce = self._rng.randrange(MAX_DEV_NONCE + 1)
            while nonce in used:
                nonce = self._rng.randrange(MAX_DEV_NONCE + 1)
            state.used_dev_nonces = (tuple(state.used_dev_nonces) + (nonce,))[-USED_DEV_NONCES_KEPT:]
        if "devnonce_not_persisted" in self._defects or "devnonce_persisted_after_tx" in self._defects:
            self._join_tx(nonce)
        else:
            self._persist_dev_nonce(then=lambda: self._join_tx(nonce))

    def _persist_dev_nonce(self, then: Callable[[], None] | None = None) -> None:
        if self._version.dev_nonce_is_counter:
            self._persist(then, dev_nonce=self._state.dev_nonce)
        else:
            self._persist(then, used_dev_nonces=self._state.used_dev_nonces)

    def _join_tx(self, nonce: int) -> None:
        now = self._now()
        channels = self._join_channels()
        ready = self._duty.ready_channels(channels, now)
        if not ready:  # cannot happen unless the clock went strange; wait rather than break the limit
            self._at(self._duty.earliest(channels, now), self._join_tx, nonce, name="join-tx-wait")
            return
        frequency = self._rng.choice(ready)
        keys = self._root_keys()
        assert keys is not None  # join() checked them
        creds = self._credentials
        phy = join_request(creds.join_eui, creds.dev_eui, nonce, keys[0])
        tx = self._transmit(phy, frequency, join=True)
        rx1, rx2 = class_a_windows(
            self._region, tx_end=tx.end, uplink_frequency_hz=frequency, uplink_dr=self._dr,
            params=join_rx_params(self._region), rx1_late="rx1_late" in self._defects,
        )
        self._start_cycle(_Cycle("join", tx, rx1, rx2, dev_nonce=nonce))

    def _join_failed_attempt(self) -> None:
        self._join_failures += 1
        if self._join_failures >= self._join_attempts:
            self._joining = False
            self._notify(self._host.mac_join_failed, "rx_timeout")
            return
        low, high = JOIN_BACKOFF_S  # the cycle ends with RX2 (its timeout, or the frame it received)
        self._at(self._now() + self._rng.uniform(low, high), self._join_attempt, name="join-backoff")

    def _joined(self, cycle: _Cycle, accepted: AcceptedJoin) -> None:
        state = self._state
        region = self._region
        extra: tuple[int, ...] = ()
        masks: tuple[int, ...] = ()
        cf = accepted.cf_list
        if cf is not None and cf.cflist_type == region.cflist_type:
            if cf.cflist_type == 0:
                extra = tuple(cf.frequencies) + (0,) * (5 - len(cf.frequencies))
            else:
                masks = tuple(cf.ch_masks)
        state.joined = True
        state.dev_addr = accepted.dev_addr
        state.session_keys = accepted.keys
        state.join_nonce = accepted.join_nonce
        state.fcnt_up = 0
        state.n_fcnt_down = None
        state.a_fcnt_down = None
        state.rx1_dr_offset = accepted.rx1_dr_offset
        state.rx2_dr = accepted.rx2_dr
        state.rx_delay_s = accepted.rx_delay_s
        state.extra_channels = extra
        self._session = self._make_session(accepted.dev_addr, accepted.keys, otaa=True, ch_masks=masks)
        session_rx = self._session.rx
        state.rx1_dr_offset, state.rx2_dr = session_rx.rx1_dr_offset, session_rx.rx2_dr
        self._joining = False
        self._ack_pending = None
        self._answers.clear()
        self._sticky.clear()
        self._rekey_ind = accepted.keys.lorawan_1_1
        if self._device_class == "C":
            self._c_since = self._now()
        self._update_radio()
        self._persist(None, joined=True, dev_addr=accepted.dev_addr, session_keys=accepted.keys,
                      join_nonce=accepted.join_nonce, fcnt_up=0, n_fcnt_down=None, a_fcnt_down=None,
                      rx1_dr_offset=state.rx1_dr_offset, rx2_dr=state.rx2_dr, rx_delay_s=state.rx_delay_s,
                      extra_channels=extra)
        log.info("%s: joined as %s (DevNonce %d, JoinNonce %d)", self.name, accepted.dev_addr,
                 cycle.dev_nonce, accepted.join_nonce)
        self._notify(self._host.mac_joined, accepted.dev_addr)

    # -- uplink ----------------------------------------------------------------------------------

    def _send(self, fport: int, payload: bytes, confirmed: bool) -> str | None:
        if isinstance(fport, bool) or not isinstance(fport, int) or not 1 <= fport <= 223:
            return "bad_port"
        if self._session is None:
            return "not_joined"
        if self._joining or self._uplink is not None:
            return "busy"
        if len(payload) > self._region.data_rate(self._dr).max_app_payload:
            return "too_long"
        self._uplink = _Uplink(fport, payload, confirmed)
        self._at(self._now(), self._uplink_attempt, name="uplink")
        return None

    def _uplink_attempt(self) -> None:
        if self._uplink is None or self._session is None:
            self._uplink = None
            return
        now = self._now()
        at = self._duty.earliest(self._data_channels(), now)
        if at > now:
            self._at(at, self._uplink_attempt, name="uplink-wait")
            return
        fcnt = self._state.fcnt_up
        self._state.fcnt_up = fcnt + 1
        if "fcnt_not_persisted" in self._defects:
            self._uplink_tx(fcnt)
        else:
            self._persist(lambda: self._uplink_tx(fcnt), fcnt_up=fcnt + 1)

    def _fopts(self, room: int) -> tuple[bytes, list[MacCommand]]:
        """FOpts for the next uplink (at most ``room`` bytes) and the one-shot commands it carries."""
        commands: list[MacCommand] = []
        if self._rekey_ind:
            commands.append(maccommands.rekey_ind(_MINOR))
        if self._reset_ind:
            commands.append(maccommands.reset_ind(_MINOR))
        commands += self._sticky
        out = bytearray()
        sent: list[MacCommand] = []
        for cmd in commands + self._answers:
            raw = cmd.to_bytes()
            if len(out) + len(raw) > min(room, MAX_FOPTS):
                break
            out += raw
            if cmd in self._answers:
                sent.append(cmd)
        return bytes(out), sent

    def _uplink_tx(self, fcnt: int) -> None:
        uplink, session = self._uplink, self._session
        if uplink is None or session is None:
            self._uplink = None
            return
        now = self._now()
        channels = self._data_channels()
        ready = self._duty.ready_channels(channels, now)
        if not ready:
            self._at(self._duty.earliest(channels, now), self._uplink_tx, fcnt, name="uplink-tx-wait")
            return
        frequency = self._rng.choice(ready)
        room = self._region.data_rate(self._dr).max_mac_payload - FHDR_MIN - FPORT_SIZE - len(uplink.payload)
        fopts, sent = self._fopts(room)
        ack = self._ack_pending is not None
        phy = seal_uplink(
            session.dev_addr, session.keys, fcnt, confirmed=uplink.confirmed, ack=ack, fopts=fopts,
            fport=uplink.fport, payload=uplink.payload, conf_fcnt=self._ack_pending or 0,
            tx_dr=self._dr, tx_ch=session.channels.index(frequency),
        )
        self._ack_pending = None
        for cmd in sent:
            self._answers.remove(cmd)
        tx = self._transmit(phy, frequency, join=False)
        rx1, rx2 = class_a_windows(
            self._region, tx_end=tx.end, uplink_frequency_hz=frequency, uplink_dr=self._dr, params=session.rx,
            rx1_late="rx1_late" in self._defects,
        )
        self._start_cycle(_Cycle("data", tx, rx1, rx2, fcnt=fcnt, confirmed=uplink.confirmed))

    # -- reception ---------------------------------------------------------------------------------

    def _on_air(self, reception: Reception) -> None:
        tx = reception.tx
        if not tx.downlink:
            return
        try:
            cycle = self._cycle
            if cycle is not None and not cycle.done:
                for window in (cycle.rx1, cycle.rx2):
                    if window.hears(tx):
                        state = cycle.state[window.slot]
                        if state == "receiving":
                            self._in_window(cycle, window.slot, reception)
                        elif state != "skipped":  # put on the medium after its start: never detected
                            log.warning("%s: a downlink heard by RX%s by its timestamps was put on air late",
                                        self.name, window.slot)
                        return
            if self._class_c_hears(tx):
                self._downlink(reception, "C", None)
        except (LoRaWANError, ValueError) as exc:  # a malformed frame must not hurt the device
            log.info("%s: dropped a downlink: %s", self.name, exc)

    def _in_window(self, cycle: _Cycle, slot: str, reception: Reception) -> None:
        accepted: AcceptedJoin | None = None
        try:
            if cycle.kind == "join":
                accepted = self._join_accept(cycle, reception)
                valid = accepted is not None
            else:
                valid = self._downlink(reception, slot, cycle)
        except (LoRaWANError, ValueError) as exc:
            log.info("%s: malformed frame in RX%s: %s", self.name, slot, exc)
            valid = False
        if valid:
            self._finish(cycle, success=True, accepted=accepted)

    def _class_c_hears(self, tx: Transmission) -> bool:
        session, since = self._session, self._c_since
        if session is None or since is None or self._device_class != "C":
            return False
        rx = session.rx
        window = make_window(self._region, "C", since, rx.rx2_frequency_hz, rx.rx2_dr)
        if not window.matches(tx) or tx.start < since:
            return False
        # Deaf (transmitting, or in RX1) at any moment from the last chance to catch the preamble
        # to the end of the frame loses it; a short RX1 early in a long preamble does not.
        listen_from = preamble_lock_deadline(tx)
        return not any(a < tx.end and listen_from < b for a, b in self._deaf)

    def _join_accept(self, cycle: _Cycle, reception: Reception) -> AcceptedJoin | None:
        keys = self._root_keys()
        if keys is None:
            return None
        nwk_key, app_key = keys
        creds = self._credentials
        result = open_join_accept(
            reception.tx.phy_payload, version=self._version, dev_eui=creds.dev_eui, join_eui=creds.join_eui,
            app_key=app_key, nwk_key=nwk_key if self._version.is_1_1 else None, dev_nonce=cycle.dev_nonce,
            last_join_nonce=self._state.join_nonce,
            check_mic="join_accept_mic_unchecked" not in self._defects,
        )
        if isinstance(result, str):
            log.info("%s: join-accept ignored: %s", self.name, result)
            return None
        return result

    def _downlink(self, reception: Reception, slot: str, cycle: _Cycle | None) -> bool:
        """Process a data downlink heard in ``slot``; True if it was valid for this device."""
        session = self._session
        if session is None:
            return False
        frame = decode(reception.tx.phy_payload)
        if not isinstance(frame, DataFrame) or frame.uplink:
            return False
        if frame.dev_addr != session.dev_addr:
            return False
        conf_fcnt = cycle.fcnt if cycle is not None and cycle.confirmed else 0
        state = self._state
        opened = open_downlink(
            frame, session.keys, region=self._region, version=self._version,
            last_n_fcnt_down=state.n_fcnt_down, last_a_fcnt_down=state.a_fcnt_down, conf_fcnt=conf_fcnt,
        )
        if isinstance(opened, str):
            log.info("%s: downlink in RX%s dropped: %s", self.name, slot, opened)
            return False
        if opened.app_counter:
            state.a_fcnt_down = opened.fcnt
            self._persist(None, a_fcnt_down=opened.fcnt)
        else:
            state.n_fcnt_down = opened.fcnt
            self._persist(None, n_fcnt_down=opened.fcnt)
        if slot in ("1", "2"):
            self._sticky.clear()  # sticky answers stop at the first Class A downlink
            if cycle is not None and cycle.confirmed and opened.ack:
                cycle.acked = True
        if opened.confirmed:
            self._ack_pending = opened.fcnt
        for cmd in opened.commands:
            self._mac_command(cmd, reception)
        if opened.fport:
            self._notify(self._host.mac_downlink, DownlinkReceived(
                opened.fport, opened.payload, reception.rssi, reception.snr, slot, opened.fcnt))
        return True

    def _mac_command(self, cmd: MacCommand, reception: Reception) -> None:
        fields = cmd.fields()
        if cmd.cid == _LINK_CHECK and fields:
            self.link_check = (int(fields["margin"]), int(fields["gw_cnt"]))
        elif cmd.cid == _DEVICE_TIME and fields:
            self.device_time_gps = float(fields["gps_time_s"])
        elif cmd.cid == _REKEY:
            if fields.get("minor") == _MINOR:
                self._rekey_ind = False
        elif cmd.cid == _RESET:
            if fields.get("minor") == _MINOR:
                self._reset_ind = False
        elif cmd.cid == _RX_TIMING and fields and self._session is not None:
            delay = int(fields["delay_s"])
            rx = self._session.rx
            self._session.rx = RxParams(float(delay), delay + 1.0, rx.rx1_dr_offset, rx.rx2_frequency_hz, rx.rx2_dr)
            self._state.rx_delay_s = delay
            self._persist(None, rx_delay_s=delay)
            answer = MacCommand(_RX_TIMING, b"", uplink=True)
            if answer not in self._sticky:
                self._sticky.append(answer)
        else:
            log.debug("%s: MAC command %s ignored", self.name, cmd.name)

    # -- class ----------------------------------------------------------------------------------

    def _set_class(self, device_class: Literal["A", "C"]) -> None:
        self._device_class = device_class
        if device_class == "C" and self._session is not None:
            if self._c_since is None:
                self._c_since = self._now()
        else:
            self._c_since = None
        self._update_radio()

    # -- NVM -------------------------------------------------------------------------------------

    def _persist(self, then: Callable[[], None] | None, **changes: object) -> None:
        """Write ``changes`` to NVM; ``then`` runs (as an entry point) once committed."""
        on_done = None if then is None else (lambda: self._entry(then))
        self._storage.persist(on_done=on_done, **changes)
