"""The bench power supply role: one output of a SCPI supply, driven through its profile.

:class:`PowerSupply` sets and reads back voltage and current limit, switches the output,
measures V and I, arms OVP/OCP and reads their trip state, with every setting command followed
by a read of the instrument's error queue (an instrument error raises :class:`InstrumentError`:
a rig fault). Values outside the profile's channel limits are refused before anything is sent.
The same code drives a real supply on the LAN and the virtual rig's (only the resource differs).

Timed helpers run in rig time on the clock given: :meth:`~PowerSupply.power_cycle`,
:meth:`~PowerSupply.brown_out`, and :meth:`~PowerSupply.cut_at` / :meth:`~PowerSupply.cut_after`
(a small thread waits on the clock, then switches the output off; the returned
:class:`CutHandle` cancels it). Every action is a step logged on ``hil.steps`` with its rig time
(``psu: output off at 12.345 rig s``) and a :class:`PowerEvent` in :attr:`PowerSupply.events`,
the report's power timeline.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drivers.instruments.profiles import PsuChannelLimits, PsuProfile, load_psu_profile
from drivers.instruments.visa import InstrumentError, OperationNotSupported, ScpiSession, Transport, connect
from hil.clock import Clock
from hil.report.steps import rig_step_method

log = logging.getLogger(__name__)
steps = logging.getLogger("hil.steps")

__all__ = ["CutHandle", "PowerEvent", "PowerSupply"]

Protection = Literal["ovp", "ocp"]


@dataclass(frozen=True, slots=True)
class PowerEvent:
    """One supply action at a rig time: ``volts``/``amps`` are what was set or measured (None: not applicable).

    Actions: ``output on`` (volts/amps = setpoint/limit when known), ``output off`` and ``cut``
    (0 V, 0 A), ``set voltage``, ``set current limit``, ``brown-out`` / ``brown-out restore``
    (the voltage set), ``set ovp`` (the level), ``ocp on`` / ``ocp off``, ``measure voltage``,
    ``measure current``, ``ovp tripped`` / ``ocp tripped``, ``clear protection``.
    """

    time: float
    action: str
    volts: float | None = None
    amps: float | None = None


class CutHandle:
    """A scheduled output cut; :meth:`cancel` stops it if it has not happened yet."""

    def __init__(self, psu: "PowerSupply", at: float) -> None:
        self.at = at
        self._psu = psu
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.cut_time: float | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{psu.name}-cut@{at:.3f}", daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        clock = self._psu.clock
        try:
            while not self._cancel.is_set():
                remaining = self.at - clock.now()
                if remaining <= 0:
                    break
                clock.wait(self._cancel, remaining)
            if not self._cancel.is_set():
                self.cut_time = self._psu._switch(False, action="cut")
        except BaseException as exc:  # reported through .error / wait(); a thread must not die silently
            self.error = exc
            log.error("%s: scheduled cut at %.3f rig s failed: %s", self._psu.name, self.at, exc)
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        """True once the cut happened, was cancelled, or failed."""
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() and self.cut_time is None

    def cancel(self, timeout_s: float = 5.0) -> bool:
        """Stop the cut if it has not happened; True if it was stopped. Joins the thread (real seconds)."""
        self._cancel.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        return self.cut_time is None and self.error is None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` rig seconds for the cut; re-raises its error; True if it happened.

        (On a ManualClock a wait moves the clock: there, join() the thread instead.)
        """
        self._psu.clock.wait(self._done, timeout_s)
        if self.error is not None:
            raise self.error
        return self.cut_time is not None

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for the thread to end (real seconds; for cleanup)."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __repr__(self) -> str:
        state = ("cut at %.3f" % self.cut_time if self.cut_time is not None
                 else "cancelled" if self._cancel.is_set() else "failed" if self.error else "pending")
        return f"CutHandle(at={self.at:.3f} rig s, {state})"


class PowerSupply:
    """One output (``channel``) of a bench supply speaking the profile ``dialect``.

    ``resource`` is the VISA resource name (``TCPIP0::10.0.0.7::5025::SOCKET``); ``dialect`` a
    profile name under ``profiles_dir`` (default ``rigs/profiles``) or a YAML path. A test or a
    shared session may pass an open ``transport`` instead of letting :meth:`open` use pyvisa.
    """

    def __init__(
        self,
        resource: str,
        dialect: str | Path | PsuProfile,
        clock: Clock,
        *,
        channel: int = 1,
        profiles_dir: str | Path | None = None,
        visa_library: str = "@py",
        transport: Transport | None = None,
        name: str = "psu",
    ) -> None:
        self.profile = dialect if isinstance(dialect, PsuProfile) else load_psu_profile(dialect, profiles_dir)
        count = len(self.profile.channels)
        if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= count:
            raise ValueError(f"channel {channel!r}: profile {self.profile.name} ({self.profile.source}) has "
                             f"channels 1..{count}")
        self.resource = resource
        self.clock = clock
        self.channel = channel
        self.name = name
        self.visa_library = visa_library
        self.limits: PsuChannelLimits = self.profile.channels[channel - 1]
        self.events: list[PowerEvent] = []
        self.idn: str | None = None
        self._transport = transport
        self._session: ScpiSession | None = None
        self._cuts: list[CutHandle] = []
        self._cuts_lock = threading.Lock()
        self._setpoint_v: float | None = None
        self._limit_a: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> "PowerSupply":
        """Connect, identify the instrument (``*IDN?``) and empty a stale error queue.

        InstrumentError naming the resource if it cannot be reached or does not answer.
        """
        if self._session is not None:
            return self
        self._session, self.idn = connect(self.resource, self.profile, self.clock, name=self.name,
                                          transport=self._transport, visa_library=self.visa_library)
        log.info("%s: %s on %s channel %d", self.name, self.idn, self.resource, self.channel)
        return self

    def close(self) -> None:
        """Cancel pending cuts (joining their threads) and close the connection; idempotent.

        The output is left as it is: leaving the rig safe (output off) is the rig's decision.
        """
        with self._cuts_lock:
            cuts, self._cuts = self._cuts, []
        for cut in cuts:
            cut.cancel()
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> "PowerSupply":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session(self) -> ScpiSession:
        """The open SCPI session; InstrumentError if :meth:`open` was not called."""
        if self._session is None:
            raise InstrumentError(f"{self.name}: {self.resource} is not open (call open())", resource=self.resource)
        return self._session

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return f"PowerSupply({self.resource!r}, {self.profile.name}, channel {self.channel}, {state})"

    # -- low level -----------------------------------------------------------------------------

    def write_checked(self, command: str) -> None:
        """Send a raw setting command and check the error queue (InstrumentError with code and command)."""
        self.session.write_checked(command)

    def query(self, command: str) -> str:
        """Send a raw query and return its reply."""
        return self.session.query(command)

    def _fill(self, template: str, value: float | None = None, limit: float | None = None) -> str:
        fields: dict[str, object] = {"channel": self.channel}
        if value is not None:
            fields["value"] = self.profile.format_value(value)
        if limit is not None:
            fields["limit"] = self.profile.format_value(limit)
        return template.format(**fields)

    def _unsupported(self, operation: str) -> OperationNotSupported:
        return OperationNotSupported(f"{self.name}: profile {self.profile.name} ({self.profile.source}) has no "
                                     f"{operation} command", resource=self.resource, command=operation)

    def _setting(self, operation: str) -> list[str]:
        templates: list[str] | None = getattr(self.profile.commands, operation)
        if templates is None:
            raise self._unsupported(operation)
        return templates

    def _query_template(self, operation: str) -> str:
        template: str | None = getattr(self.profile.commands, operation)
        if template is None:
            raise self._unsupported(operation)
        return template

    def _select(self) -> None:
        for template in self.profile.commands.select_channel or []:
            self.session.write_checked(self._fill(template))

    def _set(self, operation: str, value: float | None = None, limit: float | None = None) -> None:
        templates = self._setting(operation)
        with self.session.lock:
            self._select()
            for template in templates:
                self.session.write_checked(self._fill(template, value, limit))

    def _ask(self, operation: str) -> str:
        template = self._query_template(operation)
        with self.session.lock:
            self._select()
            return self.session.query(self._fill(template))

    def _number(self, operation: str) -> float:
        reply = self._ask(operation)
        try:
            return self.profile.replies.number(reply)
        except ValueError as exc:
            raise self._bad_reply(operation, exc) from None

    def _state(self, operation: str) -> bool:
        reply = self._ask(operation)
        try:
            if operation == "get_output" and self.profile.replies.output_status_bits is not None:
                return self.profile.replies.status_bit(reply, self.channel)
            return self.profile.replies.state(reply)
        except ValueError as exc:
            raise self._bad_reply(operation, exc) from None

    def _bad_reply(self, operation: str, exc: ValueError) -> InstrumentError:
        return InstrumentError(f"{self.name} ({self.profile.name}) at {self.resource}: {operation}: {exc}",
                               resource=self.resource, command=operation)

    def _record(self, action: str, volts: float | None = None, amps: float | None = None,
                at: float | None = None, detail: str = "") -> float:
        t = self.clock.now() if at is None else at
        self.events.append(PowerEvent(t, action, volts, amps))
        steps.info("%s: %s%s at %.3f rig s", self.name, action, detail, t)
        return t

    def _check(self, what: str, value: float, limit_name: str, unit: str, minimum: float = 0.0) -> None:
        limit = getattr(self.limits, limit_name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{what}: expected a finite number of {unit}, got {value!r}")
        if value < minimum or (limit is not None and value > limit):
            bound = f"minimum {minimum:g} {unit}" if value < minimum else f"{limit_name} {limit:g} {unit}"
            raise ValueError(f"{what} {value:g} {unit} refused: outside channel {self.channel}'s limit {bound} "
                             f"(profile {self.profile.name}, {self.profile.source}); nothing was sent")

    # -- identity and settings -----------------------------------------------------------------

    def identify(self) -> str:
        """The instrument's ``*IDN?`` answer."""
        self.idn = self.session.query(self.profile.commands.identify).strip()
        return self.idn

    def set_voltage(self, volts: float) -> None:
        """Set the output voltage (refused above the channel's ``max_voltage`` before sending)."""
        self._check("set_voltage", volts, "max_voltage", "V")
        self._set_voltage(float(volts), "set voltage")

    def _set_voltage(self, volts: float, action: str) -> None:
        t = self.clock.now()
        self._set("set_voltage", volts)
        self._setpoint_v = volts
        self._record(action, volts=volts, at=t, detail=f" {volts:.3f} V")

    def set_current_limit(self, amps: float) -> None:
        """Set the current limit (refused above the channel's ``max_current`` before sending)."""
        self._check("set_current_limit", amps, "max_current", "A")
        t = self.clock.now()
        self._set("set_current", float(amps))
        self._limit_a = float(amps)
        self._record("set current limit", amps=float(amps), at=t, detail=f" {amps:.4f} A")

    def voltage_setpoint(self) -> float:
        """The voltage the output is set to (read back from the instrument)."""
        return self._number("get_voltage")

    def current_limit(self) -> float:
        """The current limit (read back from the instrument)."""
        return self._number("get_current")

    def output(self, on: bool) -> None:
        """Switch the output on or off."""
        self._switch(bool(on))

    def _switch(self, on: bool, action: str | None = None) -> float:
        t = self.clock.now()
        self._set("output_on" if on else "output_off")
        if on:
            return self._record(action or "output on", volts=self._setpoint_v, amps=self._limit_a, at=t)
        return self._record(action or "output off", volts=0.0, amps=0.0, at=t)

    def output_is_on(self) -> bool:
        """Whether the output is on (a protection trip switches it off)."""
        return self._state("get_output")

    def measure_voltage(self) -> float:
        """Volts measured at the output terminals."""
        volts = self._number("measure_voltage")
        self._record("measure voltage", volts=volts, detail=f" {volts:.4f} V")
        return volts

    def measure_current(self) -> float:
        """Amps measured flowing out of the output."""
        amps = self._number("measure_current")
        self._record("measure current", amps=amps, detail=f" {amps:.5f} A")
        return amps

    # -- protections ---------------------------------------------------------------------------

    def set_ovp(self, volts: float) -> None:
        """Arm over-voltage protection at ``volts`` (refused above ``max_ovp``, or 0 and below)."""
        self._setting("set_ovp")
        self._check("set_ovp", volts, "max_ovp", "V")
        if volts <= 0:
            raise ValueError(f"set_ovp {volts:g} V refused: an OVP level must be above 0 V; nothing was sent")
        t = self.clock.now()
        self._set("set_ovp", float(volts))
        self._record("set ovp", volts=float(volts), at=t, detail=f" {volts:.3f} V")

    def enable_ocp(self, on: bool) -> None:
        """Arm (or disarm) over-current protection: the output switches off when the load reaches the current limit.

        Profiles whose OCP has its own level set it to the present current limit (``{limit}``).
        """
        operation = "ocp_on" if on else "ocp_off"
        templates = self._setting(operation)
        limit = None
        if on and any("{limit}" in t for t in templates):
            limit = self._limit_a if self._limit_a is not None else self.current_limit()
        t = self.clock.now()
        self._set(operation, limit=limit)
        self._record("ocp on" if on else "ocp off", amps=limit, at=t)

    def protection_tripped(self) -> Protection | None:
        """``"ovp"`` or ``"ocp"`` if that protection has switched the output off, else None."""
        ops: list[tuple[Protection, str]] = [("ovp", "ovp_tripped"), ("ocp", "ocp_tripped")]
        available = [(kind, op) for kind, op in ops if getattr(self.profile.commands, op) is not None]
        if not available:
            raise self._unsupported("ovp_tripped")
        for kind, op in available:
            if self._state(op):
                self._record(f"{kind} tripped")
                return kind
        return None

    def clear_protection(self) -> None:
        """Clear a latched OVP/OCP trip (some supplies switch the output back on; see the profile)."""
        t = self.clock.now()
        self._set("clear_protection")
        self._record("clear protection", at=t)

    # -- timed helpers (rig time) --------------------------------------------------------------

    @rig_step_method("psu: power cycle", "off_time_s")
    def power_cycle(self, off_time_s: float) -> None:
        """Output off, ``off_time_s`` rig seconds, output on."""
        if not off_time_s >= 0:
            raise ValueError(f"power_cycle: off_time_s must be >= 0 rig s, got {off_time_s!r}")
        steps.info("%s: power cycle, %.3f s off, at %.3f rig s", self.name, off_time_s, self.clock.now())
        off_at = self._switch(False)
        remaining = off_at + off_time_s - self.clock.now()
        if remaining > 0:
            self.clock.sleep(remaining)
        self._switch(True)

    @rig_step_method("psu: brown-out", "dip_to_v", "duration_s")
    def brown_out(self, dip_to_v: float, duration_s: float) -> None:
        """Dip the output to ``dip_to_v`` for ``duration_s`` rig seconds, then restore the setpoint."""
        self._check("brown_out", dip_to_v, "max_voltage", "V")
        if not duration_s >= 0:
            raise ValueError(f"brown_out: duration_s must be >= 0 rig s, got {duration_s!r}")
        nominal = self.voltage_setpoint()
        steps.info("%s: brown-out %.3f V -> %.3f V for %.3f s at %.3f rig s", self.name, nominal, dip_to_v,
                   duration_s, self.clock.now())
        t0 = self.clock.now()
        self._set_voltage(float(dip_to_v), "brown-out")
        try:
            remaining = t0 + duration_s - self.clock.now()
            if remaining > 0:
                self.clock.sleep(remaining)
        finally:
            self._set_voltage(nominal, "brown-out restore")

    @rig_step_method("psu: cut scheduled", "rig_time")
    def cut_at(self, rig_time: float) -> CutHandle:
        """Switch the output off at ``rig_time`` (from a small thread waiting on the clock); at once if past."""
        if not math.isfinite(rig_time):
            raise ValueError(f"cut_at: expected a finite rig time, got {rig_time!r}")
        _ = self.session  # refuses to schedule a cut on a supply that is not open
        handle = CutHandle(self, float(rig_time))
        with self._cuts_lock:
            self._cuts = [c for c in self._cuts if c.alive]
            self._cuts.append(handle)
        steps.info("%s: cut scheduled for %.3f rig s at %.3f rig s", self.name, rig_time, self.clock.now())
        handle._start()
        return handle

    def cut_after(self, delay_s: float) -> CutHandle:
        """Switch the output off ``delay_s`` rig seconds from now."""
        if not delay_s >= 0:
            raise ValueError(f"cut_after: delay_s must be >= 0 rig s, got {delay_s!r}")
        return self.cut_at(self.clock.now() + delay_s)
