"""The virtual bench power supply: a SCPI socket server driving :class:`~hil.sim.power.SupplyChannel` s.

The dialect (command patterns, channel names and limits, number formats, ``*IDN?``, error
format, how OVP/OCP are armed) is a profile in ``profiles/psu_*.yaml``; this module holds the
behaviour every supply shares. Set values go to the channels, and ``MEAS`` reads what the
attached loads make of them (:meth:`SupplyChannel.terminal_voltage`, ``measured_current``),
so a DUT drawing too much pulls the output into constant-current mode and the measurement shows it.

Protections: OVP trips when the set voltage exceeds the armed level; OCP trips when the load
wants more than the current limit (``ocp_level: current_limit``, Keysight) or draws at least the
separate OCP value (``ocp_level: separate``, Rigol). A trip switches the output off and latches
until cleared or switched on again. The separate OCP value is checked around every command
(a real supply checks continuously; a load change between commands is seen at the next one).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hil.sim.instruments.scpi import (
    ProfileError,
    ScpiCall,
    ScpiEngine,
    ScpiError,
    ScpiProfile,
    load_profile,
    resolve_number,
)
from hil.sim.instruments.tcp_server import SocketInstrument
from hil.sim.power import SupplyChannel
from hil.sim.scheduler import Scheduler

log = logging.getLogger(__name__)


class PsuFormats(BaseModel):
    """How the supply prints values (Python format strings) and states."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    voltage: str
    current: str
    measured_voltage: str
    measured_current: str
    state: tuple[str, str]
    tripped: tuple[str, str]
    channel_name: str = "{name}"
    channel_number: str = "{number}"
    apply: str = "{voltage},{current}"
    separator: str = ","


class PsuProtection(BaseModel):
    """How the dialect arms and clears OVP/OCP."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ovp_level_enables: bool
    ocp_level: Literal["current_limit", "separate"]
    clear_restores_output: bool


class ChannelSpec(BaseModel):
    """One output's name, programmable ranges and reset state."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    aliases: list[str] = []
    rating: str | None = None
    max_voltage: float = Field(gt=0)
    max_current: float = Field(gt=0)
    reset_voltage: float = 0.0
    reset_current: float = Field(gt=0)
    ovp_max: float = Field(gt=0)
    ovp_reset: float = Field(gt=0)
    ovp_enabled_at_reset: bool = False
    ocp_max: float | None = None
    ocp_reset: float | None = None
    ocp_enabled_at_reset: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "ChannelSpec":
        if not 0 <= self.reset_voltage <= self.max_voltage or self.reset_current > self.max_current:
            raise ValueError(f"{self.name}: reset values outside the channel's range")
        if self.ovp_reset > self.ovp_max:
            raise ValueError(f"{self.name}: ovp_reset {self.ovp_reset} above ovp_max {self.ovp_max}")
        if (self.ocp_max is None) != (self.ocp_reset is None):
            raise ValueError(f"{self.name}: give both ocp_max and ocp_reset, or neither")
        return self


class PsuProfile(ScpiProfile):
    """A bench supply's dialect and channels."""

    formats: PsuFormats
    protection: PsuProtection
    channels: list[ChannelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _separate_ocp_needs_levels(self) -> "PsuProfile":
        if self.protection.ocp_level == "separate" and any(c.ocp_max is None for c in self.channels):
            raise ValueError("ocp_level 'separate' needs ocp_max/ocp_reset on every channel")
        return self


@dataclass
class _Output:
    """The supply's own view of one output (protection settings and latches)."""

    number: int
    spec: ChannelSpec
    channel: SupplyChannel
    ovp_level: float = 0.0
    ovp_enabled: bool = False
    ocp_level: float | None = None
    ocp_enabled: bool = False
    trip: Literal["ovp", "ocp"] | None = None
    channel_trip_seen: bool = False


class VirtualPsu(SocketInstrument):
    """A multi-channel bench supply speaking its profile's SCPI dialect over a raw TCP socket.

    ``channels`` are the rails the rig's DUTs are attached to (one per profile channel); when
    omitted the supply makes its own. The supply starts in its ``*RST`` state (outputs off).
    """

    def __init__(
        self,
        profile: PsuProfile | str | Path = "psu_keysight_e36300",
        *,
        channels: Sequence[SupplyChannel] | None = None,
        serial: str | None = None,
        scheduler: Scheduler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.profile = profile if isinstance(profile, PsuProfile) else load_profile(profile, PsuProfile)
        specs = self.profile.channels
        if channels is None:
            channels = [SupplyChannel(s.name, s.max_voltage, s.max_current) for s in specs]
        if len(channels) != len(specs):
            raise ProfileError(f"{self.profile.name} has {len(specs)} channels, {len(channels)} SupplyChannel(s) given")
        super().__init__(name=self.profile.name, host=host, port=port, scheduler=scheduler)
        self._outputs = [_Output(i + 1, spec, ch) for i, (spec, ch) in enumerate(zip(specs, channels))]
        self._names = {n.upper(): o.number for o in self._outputs for n in [o.spec.name, *o.spec.aliases]}
        self._selected = 1
        self._lock = threading.RLock()
        self.engine = ScpiEngine(
            self.profile.commands,
            self._handlers(),
            idn=self.profile.idn(serial),
            error_format=self.profile.error_format,
            error_queue_size=self.profile.error_queue_size,
            kinds={"channel": self._parse_channel},
            on_reset=self.reset,
            name=self.profile.name,
        )
        self.reset()

    # -- public --------------------------------------------------------------------------------

    @property
    def channels(self) -> tuple[SupplyChannel, ...]:
        return tuple(o.channel for o in self._outputs)

    def channel(self, which: int | str) -> SupplyChannel:
        """A channel by number (1-based) or name (``CH1``)."""
        number = which if isinstance(which, int) else self._names.get(which.upper())
        if number is None or not 1 <= number <= len(self._outputs):
            raise KeyError(f"{self.profile.name} has no channel {which!r}; channels: {list(self._names)}")
        return self._outputs[number - 1].channel

    def handle_line(self, line: str) -> str | None:
        with self._lock:
            self._sync_all()
            try:
                return self.engine.execute(line)
            finally:
                self._sync_all()

    def reset(self) -> None:
        """The ``*RST`` state: outputs off, reset voltage/current, protections at their defaults."""
        with self._lock:
            self._selected = 1
            for out in self._outputs:
                spec, ch = out.spec, out.channel
                ch.set_output(False)
                out.ovp_level, out.ovp_enabled = spec.ovp_reset, spec.ovp_enabled_at_reset
                out.ocp_level, out.ocp_enabled = spec.ocp_reset, spec.ocp_enabled_at_reset
                out.trip = None
                out.channel_trip_seen = ch.tripped
                self._apply_protection(out)
                ch.configure(voltage=spec.reset_voltage, current_limit=spec.reset_current)

    # -- protection bookkeeping ----------------------------------------------------------------

    def _apply_protection(self, out: _Output) -> None:
        ch = out.channel
        ch.ovp_level = out.ovp_level if out.ovp_enabled else None
        ch.ocp_enabled = out.ocp_enabled and self.profile.protection.ocp_level == "current_limit"

    def _sync(self, out: _Output) -> None:
        ch = out.channel
        tripped = ch.tripped
        if tripped and not out.channel_trip_seen:
            over_voltage = ch.ovp_level is not None and ch.set_voltage > ch.ovp_level
            out.trip = "ovp" if over_voltage else "ocp"
            log.info("%s %s: %s tripped", self.profile.name, out.spec.name, out.trip.upper())
        out.channel_trip_seen = tripped
        if out.trip is not None and ch.output_on:
            out.trip = None  # switched on again: the latch is gone, as on the channel itself
        if (self.profile.protection.ocp_level == "separate" and out.ocp_enabled and out.ocp_level is not None
                and ch.output_on and out.trip is None):
            amps = ch.measured_current()
            if amps > 0 and amps >= out.ocp_level:
                ch.set_output(False)
                out.trip = "ocp"
                log.info("%s %s: OCP tripped at %.4f A (level %.4f A)", self.profile.name, out.spec.name, amps,
                         out.ocp_level)

    def _sync_all(self) -> None:
        for out in self._outputs:
            self._sync(out)

    # -- channel addressing --------------------------------------------------------------------

    def _parse_channel(self, text: str, unit: str | None) -> int:
        number = self._names.get(text.strip().upper())
        if number is None:
            raise ScpiError(-224, f"no channel {text.strip()!r}; channels: {list(self._names)}")
        return number

    def _targets(self, call: ScpiCall) -> list[_Output]:
        args = call.args
        numbers: list[int]
        if args.get("channels"):
            numbers = args["channels"]
        elif args.get("channel") is not None:
            numbers = [args["channel"]]
        elif args.get("source") is not None:
            numbers = [args["source"]]
        else:
            numbers = [self._selected]
        for n in numbers:
            if not 1 <= n <= len(self._outputs):
                raise ScpiError(-222, f"channel {n} outside 1..{len(self._outputs)}")
        return [self._outputs[n - 1] for n in numbers]

    def _join(self, values: list[str]) -> str:
        return self.profile.formats.separator.join(values)

    # -- handlers ------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Any]:
        names = [
            "select_channel", "get_selected_channel", "select_channel_number", "get_selected_channel_number",
            "set_voltage", "get_voltage", "set_current", "get_current", "apply", "get_apply", "set_output",
            "get_output", "measure_voltage", "measure_current", "set_ovp_level", "get_ovp_level", "set_ovp_state",
            "get_ovp_state", "get_ovp_tripped", "clear_ovp", "set_ocp_level", "get_ocp_level", "set_ocp_state",
            "get_ocp_state", "get_ocp_tripped", "clear_ocp", "clear_protection",
        ]
        return {name: getattr(self, "_op_" + name) for name in names}

    def _op_select_channel(self, call: ScpiCall) -> None:
        self._selected = call.args["channel"]

    def _op_get_selected_channel(self, call: ScpiCall) -> str:
        out = self._outputs[self._selected - 1]
        return self.profile.formats.channel_name.format(name=out.spec.name, number=out.number)

    def _op_select_channel_number(self, call: ScpiCall) -> None:
        number = call.args["number"]
        if not 1 <= number <= len(self._outputs):
            raise ScpiError(-222, f"channel number {number} outside 1..{len(self._outputs)}")
        self._selected = number

    def _op_get_selected_channel_number(self, call: ScpiCall) -> str:
        out = self._outputs[self._selected - 1]
        return self.profile.formats.channel_number.format(name=out.spec.name, number=out.number)

    def _voltage(self, out: _Output, value: Any) -> float:
        s = out.spec
        return float(resolve_number(value, minimum=0.0, maximum=s.max_voltage, default=s.reset_voltage,
                                    what=f"{s.name} voltage"))

    def _current(self, out: _Output, value: Any) -> float:
        s = out.spec
        return float(resolve_number(value, minimum=0.0, maximum=s.max_current, default=s.reset_current,
                                    what=f"{s.name} current"))

    def _op_set_voltage(self, call: ScpiCall) -> None:
        targets = self._targets(call)
        values = [self._voltage(out, call.args["value"]) for out in targets]  # all valid before any changes
        for out, volts in zip(targets, values):
            out.channel.configure(voltage=volts)
            self._sync(out)

    def _op_get_voltage(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.voltage
        return self._join([fmt.format(out.channel.set_voltage) for out in self._targets(call)])

    def _op_set_current(self, call: ScpiCall) -> None:
        targets = self._targets(call)
        values = [self._current(out, call.args["value"]) for out in targets]
        for out, amps in zip(targets, values):
            out.channel.configure(current_limit=amps)
            self._sync(out)

    def _op_get_current(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.current
        return self._join([fmt.format(out.channel.current_limit) for out in self._targets(call)])

    def _op_apply(self, call: ScpiCall) -> None:
        (out,) = self._targets(call)
        volts = None if call.args.get("voltage") is None else self._voltage(out, call.args["voltage"])
        amps = None if call.args.get("current") is None else self._current(out, call.args["current"])
        out.channel.configure(voltage=volts, current_limit=amps)
        self._sync(out)

    def _op_get_apply(self, call: ScpiCall) -> str:
        (out,) = self._targets(call)
        f = self.profile.formats
        return f.apply.format(name=out.spec.name, rating=out.spec.rating or "", number=out.number,
                              voltage=f.voltage.format(out.channel.set_voltage),
                              current=f.current.format(out.channel.current_limit))

    def _op_set_output(self, call: ScpiCall) -> None:
        for out in self._targets(call):
            self._switch(out, bool(call.args["state"]))

    def _switch(self, out: _Output, on: bool) -> None:
        if on:
            out.channel_trip_seen = False  # switching on clears the channel's latch; a new trip must be seen
        out.channel.set_output(on)
        self._sync(out)

    def _state(self, on: bool) -> str:
        return self.profile.formats.state[1 if on else 0]

    def _op_get_output(self, call: ScpiCall) -> str:
        return self._join([self._state(out.channel.output_on) for out in self._targets(call)])

    def _op_measure_voltage(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.measured_voltage
        return self._join([fmt.format(out.channel.terminal_voltage()) for out in self._targets(call)])

    def _op_measure_current(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.measured_current
        return self._join([fmt.format(out.channel.measured_current()) for out in self._targets(call)])

    # OVP ------------------------------------------------------------------------------------

    def _op_set_ovp_level(self, call: ScpiCall) -> None:
        targets = self._targets(call)
        levels = [float(resolve_number(call.args["value"], minimum=0.0, maximum=out.spec.ovp_max,
                                       default=out.spec.ovp_reset, what=f"{out.spec.name} OVP level"))
                  for out in targets]
        for out, level in zip(targets, levels):
            out.ovp_level = level
            if self.profile.protection.ovp_level_enables:
                out.ovp_enabled = True
            self._rearm(out)

    def _op_get_ovp_level(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.voltage
        return self._join([fmt.format(out.ovp_level) for out in self._targets(call)])

    def _op_set_ovp_state(self, call: ScpiCall) -> None:
        for out in self._targets(call):
            out.ovp_enabled = bool(call.args["state"])
            self._rearm(out)

    def _op_get_ovp_state(self, call: ScpiCall) -> str:
        return self._join([self._state(out.ovp_enabled) for out in self._targets(call)])

    def _tripped(self, yes: bool) -> str:
        return self.profile.formats.tripped[1 if yes else 0]

    def _op_get_ovp_tripped(self, call: ScpiCall) -> str:
        return self._join([self._tripped(out.trip == "ovp") for out in self._targets(call)])

    def _op_clear_ovp(self, call: ScpiCall) -> None:
        for out in self._targets(call):
            self._clear(out, "ovp")

    # OCP ------------------------------------------------------------------------------------

    def _op_set_ocp_level(self, call: ScpiCall) -> None:
        targets = self._targets(call)
        levels = []
        for out in targets:
            spec = out.spec
            if spec.ocp_max is None or spec.ocp_reset is None:
                raise ScpiError(-113, f"{spec.name} has no separate OCP level")
            levels.append(float(resolve_number(call.args["value"], minimum=0.0, maximum=spec.ocp_max,
                                               default=spec.ocp_reset, what=f"{spec.name} OCP level")))
        for out, level in zip(targets, levels):
            out.ocp_level = level
            self._rearm(out)

    def _op_get_ocp_level(self, call: ScpiCall) -> str:
        fmt = self.profile.formats.current
        return self._join([fmt.format(out.ocp_level if out.ocp_level is not None else out.channel.current_limit)
                           for out in self._targets(call)])

    def _op_set_ocp_state(self, call: ScpiCall) -> None:
        for out in self._targets(call):
            out.ocp_enabled = bool(call.args["state"])
            self._rearm(out)

    def _op_get_ocp_state(self, call: ScpiCall) -> str:
        return self._join([self._state(out.ocp_enabled) for out in self._targets(call)])

    def _op_get_ocp_tripped(self, call: ScpiCall) -> str:
        return self._join([self._tripped(out.trip == "ocp") for out in self._targets(call)])

    def _op_clear_ocp(self, call: ScpiCall) -> None:
        for out in self._targets(call):
            self._clear(out, "ocp")

    def _op_clear_protection(self, call: ScpiCall) -> None:
        for out in self._targets(call) if call.args.get("channels") else self._outputs:
            self._clear(out, None)

    def _rearm(self, out: _Output) -> None:
        """New protection settings take effect at once (they may trip a live output)."""
        self._apply_protection(out)
        out.channel.configure()  # re-evaluates the channel's protections
        self._sync(out)

    def _clear(self, out: _Output, which: Literal["ovp", "ocp"] | None) -> None:
        if out.trip is None or (which is not None and out.trip != which):
            return
        log.info("%s %s: %s cleared", self.profile.name, out.spec.name, out.trip.upper())
        out.trip = None
        if self.profile.protection.clear_restores_output:
            self._switch(out, True)  # trips again at once if the cause is still there
