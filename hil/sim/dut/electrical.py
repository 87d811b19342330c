"""The virtual relay node's board as an electrical load on the bench supply.

The numbers are data (``electrical.yaml``). :class:`BoardLoad` is a
:class:`~hil.sim.power.Load`: its current follows the firmware's state (off, held in reset,
booting, radio asleep / receiving / transmitting) plus the relay coil, and it tells the supply
channel whenever that changes, so constant-current limiting can pull the rail down.
:class:`Supervisor` is the MCU's brown-out supervisor: reset below ``brown_out_v``, release above
``release_v`` (hysteresis), destroyed for good above ``damage_v``.

A board behind an LDO draws the same current at any rail voltage while it runs, so
:meth:`BoardLoad.current_at` depends on the state only (zero when the rail is at 0 V).
"""

from __future__ import annotations

import functools
import threading
from importlib import resources
from typing import Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hil.sim.power import SupplyChannel

PowerState = Literal["off", "reset", "booting", "sleep", "rx", "tx"]
POWER_STATES: tuple[str, ...] = ("off", "reset", "booting", "sleep", "rx", "tx")


class ElectricalSpecError(ValueError):
    """``electrical.yaml`` is not a valid board description."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Currents(_Model):
    """Amps at the nominal voltage, per state."""

    off: float = Field(ge=0)
    reset: float = Field(ge=0)
    booting: float = Field(ge=0)
    sleep: float = Field(ge=0)
    rx: float = Field(ge=0)
    tx_base: float = Field(ge=0)
    tx_at_reference: float = Field(ge=0)
    relay_coil: float = Field(ge=0)


class ElectricalSpec(_Model):
    """Voltage thresholds (V), the reset hold time (s) and the currents of the board."""

    nominal_v: float = Field(gt=0)
    operating_min_v: float = Field(gt=0)
    operating_max_v: float = Field(gt=0)
    brown_out_v: float = Field(gt=0)
    release_v: float = Field(gt=0)
    power_on_reset_v: float = Field(ge=0)
    damage_v: float = Field(gt=0)
    por_hold_s: float = Field(gt=0)
    currents_a: Currents
    tx_reference_dbm: float

    @model_validator(mode="after")
    def _ordered(self) -> "ElectricalSpec":
        chain = [
            ("power_on_reset_v", self.power_on_reset_v), ("brown_out_v", self.brown_out_v),
            ("release_v", self.release_v), ("operating_min_v", self.operating_min_v),
            ("nominal_v", self.nominal_v), ("operating_max_v", self.operating_max_v), ("damage_v", self.damage_v),
        ]
        for (a, va), (b, vb) in zip(chain, chain[1:]):
            if not va < vb and not (a == "release_v" and va <= vb):
                raise ValueError(f"{a} ({va} V) must be below {b} ({vb} V)")
        return self

    def tx_current(self, dbm: float) -> float:
        """Amps while transmitting at ``dbm``: the PA's share scales with linear output power."""
        c = self.currents_a
        return c.tx_base + (c.tx_at_reference - c.tx_base) * 10 ** ((dbm - self.tx_reference_dbm) / 10)

    @classmethod
    def from_yaml(cls, text: str, source: str = "electrical.yaml") -> "ElectricalSpec":
        try:
            return cls.model_validate(yaml.safe_load(text))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ElectricalSpecError(f"{source}: invalid board description: {exc}") from exc

    @classmethod
    def default(cls) -> "ElectricalSpec":
        """The shipped ``hil/sim/dut/electrical.yaml`` (cached)."""
        return _default_spec()


@functools.cache
def _default_spec() -> ElectricalSpec:
    text = resources.files("hil.sim.dut").joinpath("electrical.yaml").read_text(encoding="utf-8")
    return ElectricalSpec.from_yaml(text, "hil/sim/dut/electrical.yaml")


class Supervisor:
    """The MCU supply supervisor: brown-out reset with hysteresis, and over-voltage damage."""

    def __init__(self, spec: ElectricalSpec) -> None:
        self.spec = spec
        self.damaged = False
        self._released = False
        self._lowest = 0.0  # lowest rail voltage since the last reset began

    def assess(self, volts: float) -> Literal["run", "reset", "damaged"]:
        """Whether the MCU may run at this rail voltage (``reset`` = held in reset)."""
        s = self.spec
        if volts > s.damage_v:
            self.damaged = True
        if self.damaged:
            self._released = False
            return "damaged"
        if self._released and volts < s.brown_out_v:
            self._released = False
            self._lowest = volts
        elif not self._released:
            self._lowest = min(self._lowest, volts)
            if volts >= s.release_v:
                self._released = True
        return "run" if self._released else "reset"

    def reset_cause(self) -> Literal["power_on", "brown_out"]:
        """Why the MCU was last held in reset: the rail fell below ``power_on_reset_v`` or only dipped."""
        return "power_on" if self._lowest < self.spec.power_on_reset_v else "brown_out"


class BoardLoad:
    """The board's draw on the supply channel, from the firmware's state. Thread-safe."""

    def __init__(self, spec: ElectricalSpec | None = None) -> None:
        self.spec = spec or ElectricalSpec.default()
        self._lock = threading.Lock()
        self._state: PowerState = "off"
        self._coil = False
        self._tx_dbm = self.spec.tx_reference_dbm
        self._channel: SupplyChannel | None = None

    def attach(self, channel: SupplyChannel, on_voltage: Callable[[float], None] | None = None) -> None:
        """Connect to the supply channel (``on_voltage`` gets every new terminal voltage)."""
        self._channel = channel
        channel.attach(self, on_voltage)

    @property
    def state(self) -> PowerState:
        return self._state

    @property
    def coil(self) -> bool:
        return self._coil

    def set_state(self, state: PowerState) -> None:
        if state not in POWER_STATES:
            raise ValueError(f"unknown board power state {state!r}; expected one of {', '.join(POWER_STATES)}")
        with self._lock:
            changed = state != self._state
            self._state = state
            if state in ("off", "reset"):
                self._coil = False  # the coil driver is unpowered / its GPIO in reset
        if changed:
            self._changed()

    def set_coil(self, energised: bool) -> None:
        with self._lock:
            changed = energised != self._coil
            self._coil = energised
        if changed:
            self._changed()

    def set_tx_power_dbm(self, dbm: float) -> None:
        with self._lock:
            changed = dbm != self._tx_dbm
            self._tx_dbm = dbm
            transmitting = self._state == "tx"
        if changed and transmitting:
            self._changed()

    def current_at(self, volts: float) -> float:
        """Amps drawn at this rail voltage (Load protocol); no lock: the supply calls it under its own."""
        if volts <= 0:
            return 0.0
        state, coil, dbm = self._state, self._coil, self._tx_dbm
        c = self.spec.currents_a
        amps = self.spec.tx_current(dbm) if state == "tx" else getattr(c, state)
        if coil and state not in ("off", "reset"):
            amps += c.relay_coil
        return amps

    def _changed(self) -> None:
        channel = self._channel
        if channel is not None:
            channel.load_changed()
