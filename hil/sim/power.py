"""The supply rail between the virtual power supply and the virtual DUT.

The SCPI server sets the channel (voltage, current limit, output on/off); the DUT listens for
changes of the terminal voltage and tells what current it draws, which the supply's
measurement reports. A load that wants more than the current limit pulls the output into
constant-current mode, where the terminal voltage drops (the DUT sees a brown-out).
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol


class Load(Protocol):
    """Something drawing current from the rail."""

    def current_at(self, volts: float) -> float:
        """Amps drawn at this terminal voltage."""
        ...


class SupplyChannel:
    """One output channel of a bench supply."""

    def __init__(self, name: str = "CH1", max_voltage: float = 30.0, max_current: float = 3.0) -> None:
        self.name = name
        self.max_voltage = max_voltage
        self.max_current = max_current
        self._set_voltage = 0.0
        self._current_limit = 1.0
        self._on = False
        self._tripped = False
        self.ovp_level: float | None = None
        self.ocp_enabled = False
        self._loads: list[Load] = []
        self._listeners: list[Callable[[float], None]] = []
        self._lock = threading.RLock()
        self._last_volts = 0.0

    # -- what the supply's front panel / SCPI sets --------------------------------------------

    @property
    def set_voltage(self) -> float:
        return self._set_voltage

    @property
    def current_limit(self) -> float:
        return self._current_limit

    @property
    def output_on(self) -> bool:
        return self._on

    @property
    def tripped(self) -> bool:
        """True after OVP or OCP switched the output off (cleared by switching it on again)."""
        return self._tripped

    def configure(self, *, voltage: float | None = None, current_limit: float | None = None) -> None:
        with self._lock:
            if voltage is not None:
                self._set_voltage = voltage
            if current_limit is not None:
                self._current_limit = current_limit
            self._check_protection()
        self._notify()

    def set_output(self, on: bool) -> None:
        with self._lock:
            self._on = on
            if on:
                self._tripped = False
            self._check_protection()
        self._notify()

    # -- what the load and the measurement see -------------------------------------------------

    def attach(self, load: Load, on_voltage: Callable[[float], None] | None = None) -> None:
        """Connect a load; ``on_voltage`` is called with the new terminal voltage on every change."""
        with self._lock:
            self._loads.append(load)
            if on_voltage is not None:
                self._listeners.append(on_voltage)
        self._notify()

    def terminal_voltage(self) -> float:
        """Volts at the output: the set voltage, lower in constant-current mode, 0 when off."""
        with self._lock:
            if not self._on:
                return 0.0
            volts = self._set_voltage
            demand = sum(load.current_at(volts) for load in self._loads)
            if demand > self._current_limit and demand > 0:
                volts = volts * self._current_limit / demand  # resistive approximation of CC mode
            return max(0.0, volts)

    def measured_current(self) -> float:
        """Amps flowing out of the terminals."""
        with self._lock:
            volts = self.terminal_voltage()
            if volts <= 0:
                return 0.0
            return min(self._current_limit, sum(load.current_at(volts) for load in self._loads))

    def load_changed(self) -> None:
        """A load's draw changed (e.g. relay coil on): re-evaluate CC mode and protections."""
        with self._lock:
            self._check_protection()
        self._notify()

    def _check_protection(self) -> None:
        if not self._on:
            return
        if self.ovp_level is not None and self._set_voltage > self.ovp_level:
            self._on, self._tripped = False, True
        elif self.ocp_enabled:
            demand = sum(load.current_at(self._set_voltage) for load in self._loads)
            if demand > self._current_limit:
                self._on, self._tripped = False, True

    def _notify(self) -> None:
        volts = self.terminal_voltage()
        with self._lock:
            if abs(volts - self._last_volts) < 1e-9:
                return
            self._last_volts = volts
            listeners = list(self._listeners)
        for listener in listeners:
            listener(volts)
