"""Mains, the relay contact and the load: what the feedback meter measures at the relay output.

The DUT drives the relay coil; the contact follows after its operate (or release) time and
bounces for a few milliseconds. The output carries the mains RMS voltage fed to the contact's
input while the contact is closed. A welded contact never opens (a hardware fault the suites must
detect).

The feed is the rig's switchable mains source (the virtual AC source, an SCPI instrument on a
:class:`~hil.sim.power.SupplyChannel`): :meth:`RelayContact.feed` is its voltage listener, and the
contact is the source's load (:meth:`RelayContact.current_at`: the lamp's current while closed).
Without a source attached the feed is ``MainsConfig.voltage_rms``, always present.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from hil.sim.scheduler import Scheduler


@dataclass
class MainsConfig:
    """Mains supply and the relay's contact timing (rig seconds)."""

    voltage_rms: float = 230.0
    frequency_hz: float = 50.0
    load_ohms: float = 529.0  # a 100 W lamp at 230 V
    operate_time_s: float = 0.010
    release_time_s: float = 0.005
    bounce_time_s: float = 0.002
    bounces: int = 3


class RelayContact:
    """The contact between mains and load, moved by the DUT's coil."""

    def __init__(self, scheduler: Scheduler, config: MainsConfig | None = None) -> None:
        self.scheduler = scheduler
        self.config = config or MainsConfig()
        self._feed_v = self.config.voltage_rms
        self.welded = False
        self._closed = False
        self._coil = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bool], None]] = []
        self._generation = 0
        self.transitions: list[tuple[float, bool]] = []

    @property
    def coil_energised(self) -> bool:
        return self._coil

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def feed_voltage_rms(self) -> float:
        """Volts RMS at the contact's input (the mains feed), whatever the contact does."""
        return self._feed_v

    @property
    def mains_present(self) -> bool:
        """True while the contact's input is fed."""
        return self._feed_v > 0.0

    @mains_present.setter
    def mains_present(self, present: bool) -> None:
        self.feed(self.config.voltage_rms if present else 0.0)

    def feed(self, volts: float) -> None:
        """The mains feed's RMS voltage changed (a source's voltage listener); listeners hear of it."""
        with self._lock:
            if volts == self._feed_v:
                return
            self._feed_v = max(0.0, float(volts))
            closed = self._closed
        for listener in list(self._listeners):
            listener(closed)

    def current_at(self, volts: float) -> float:
        """Amps drawn from the feed at ``volts``: the load's while the contact is closed (a source's load)."""
        return volts / self.config.load_ohms if self._closed else 0.0

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """Called with the contact state on every change (bounces included) and when the feed changes."""
        self._listeners.append(listener)

    def drive_coil(self, energised: bool) -> None:
        """The DUT switches its coil; the contact follows after operate/release time and bounce."""
        with self._lock:
            if energised == self._coil:
                return
            self._coil = energised
            self._generation += 1
            generation = self._generation
        if not energised and self.welded:
            return
        c = self.config
        delay = c.operate_time_s if energised else c.release_time_s
        step = c.bounce_time_s / max(1, 2 * c.bounces)
        for i in range(2 * c.bounces if energised else 0):
            state = i % 2 == 0
            self.scheduler.call_later(delay + i * step, self._move, state, generation, name="contact-bounce")
        self.scheduler.call_later(delay + (c.bounce_time_s if energised else 0.0), self._move, energised, generation,
                                  name="contact-settle")

    def _move(self, closed: bool, generation: int) -> None:
        with self._lock:
            if generation != self._generation or closed == self._closed:
                return
            self._closed = closed
            self.transitions.append((self.scheduler.now(), closed))
        for listener in list(self._listeners):
            listener(closed)

    def output_voltage_rms(self) -> float:
        """Volts RMS at the load."""
        return self._feed_v if self._closed else 0.0

    def load_current_rms(self) -> float:
        return self.output_voltage_rms() / self.config.load_ohms

    def load_power_w(self) -> float:
        return self.output_voltage_rms() * self.load_current_rms()
