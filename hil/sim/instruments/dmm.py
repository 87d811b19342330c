"""The virtual bench DMM (Keysight 34461A style): AC/DC volts over a SCPI socket.

The rig's feedback check reads the relay output: ``measure_ac`` is a callable returning the RMS
volts there (e.g. :meth:`hil.sim.mains.RelayContact.output_voltage_rms`). Readings are exact
and deterministic (no noise) and instantaneous: the filter settling time of ``VOLT:AC:BAND``
is not waited for. A reading beyond the range (20 % over-range, the top range up to its
value) prints the overload value ``+9.90000000E+37``. Ranges, formats and commands are the
profile ``profiles/dmm_keysight_34461a.yaml``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hil.sim.instruments.scpi import ScpiCall, ScpiEngine, ScpiError, ScpiProfile, load_profile, resolve_number
from hil.sim.instruments.tcp_server import SocketInstrument
from hil.sim.scheduler import Scheduler

FUNCTIONS = ("VOLT:AC", "VOLT:DC")


class DmmFormats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: str
    overload: str
    state: tuple[str, str]
    configuration: str


class FunctionSpec(BaseModel):
    """One measurement function's ranges."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ranges: list[float] = Field(min_length=1)
    overrange: float = Field(ge=1.0)
    top_limit: float = Field(gt=0)
    resolution: float = Field(gt=0)

    @model_validator(mode="after")
    def _ascending(self) -> "FunctionSpec":
        if self.ranges != sorted(self.ranges) or self.ranges[0] <= 0:
            raise ValueError(f"ranges must be positive and ascending, got {self.ranges}")
        return self

    def limit(self, rng: float) -> float:
        """The largest magnitude range ``rng`` reads without overload."""
        return self.top_limit if rng == self.ranges[-1] else rng * self.overrange

    def range_for(self, volts: float) -> float:
        """The smallest range holding ``volts`` (the range a request of ``volts`` selects)."""
        for rng in self.ranges:
            if abs(volts) <= rng + 1e-12:
                return rng
        raise ScpiError(-222, f"range {volts:g} above the top range {self.ranges[-1]:g}")


class DmmProfile(ScpiProfile):
    """A DMM's dialect, ranges and AC filter bands."""

    formats: DmmFormats
    functions: dict[str, FunctionSpec]
    ac_bands: list[float] = Field(min_length=1)
    ac_band_reset: float
    max_sample_count: int = Field(ge=1)

    @model_validator(mode="after")
    def _complete(self) -> "DmmProfile":
        missing = [f for f in FUNCTIONS if f not in self.functions]
        if missing:
            raise ValueError(f"functions {missing} missing; the DMM model needs {list(FUNCTIONS)}")
        if self.ac_band_reset not in self.ac_bands:
            raise ValueError(f"ac_band_reset {self.ac_band_reset} is not one of ac_bands {self.ac_bands}")
        return self


class VirtualDmm(SocketInstrument):
    """A bench DMM measuring AC (and DC) volts from callables, over a raw SCPI socket."""

    def __init__(
        self,
        measure_ac: Callable[[], float],
        *,
        measure_dc: Callable[[], float] | None = None,
        profile: DmmProfile | str | Path = "dmm_keysight_34461a",
        serial: str | None = None,
        scheduler: Scheduler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.profile = profile if isinstance(profile, DmmProfile) else load_profile(profile, DmmProfile)
        super().__init__(name=self.profile.name, host=host, port=port, scheduler=scheduler)
        self._measure: dict[str, Callable[[], float]] = {"VOLT:AC": measure_ac, "VOLT:DC": measure_dc or (lambda: 0.0)}
        self._lock = threading.RLock()
        self._function = "VOLT:DC"
        self._range: dict[str, float | str] = {}
        self._auto_range: dict[str, float] = {}
        self._band = self.profile.ac_band_reset
        self._samples = 1
        self._readings: list[str] | None = None
        self.engine = ScpiEngine(
            self.profile.commands,
            self._handlers(),
            idn=self.profile.idn(serial),
            error_format=self.profile.error_format,
            error_queue_size=self.profile.error_queue_size,
            on_reset=self.reset,
            name=self.profile.name,
        )
        self.reset()

    # -- public --------------------------------------------------------------------------------

    @property
    def function(self) -> str:
        """``VOLT:AC`` or ``VOLT:DC``."""
        return self._function

    @property
    def ac_band(self) -> float:
        return self._band

    def handle_line(self, line: str) -> str | None:
        with self._lock:
            return self.engine.execute(line)

    def reset(self) -> None:
        """``*RST``: DC volts, autorange, the medium AC filter, one sample, no readings."""
        with self._lock:
            self._function = "VOLT:DC"
            self._range = {f: "AUTO" for f in FUNCTIONS}
            self._auto_range = {f: self.profile.functions[f].ranges[-1] for f in FUNCTIONS}
            self._band = self.profile.ac_band_reset
            self._samples = 1
            self._readings = None

    def reading(self) -> str:
        """One reading of the present function, formatted as the DMM prints it."""
        with self._lock:
            fn = self._function
            spec = self.profile.functions[fn]
            volts = float(self._measure[fn]())
            fixed = self._range[fn]
            if not math.isfinite(volts):
                return self.profile.formats.overload
            if fixed == "AUTO":
                fitting = [r for r in spec.ranges if abs(volts) <= spec.limit(r)]
                self._auto_range[fn] = fitting[0] if fitting else spec.ranges[-1]
                if not fitting:
                    return self.profile.formats.overload
            elif abs(volts) > spec.limit(float(fixed)):
                return self.profile.formats.overload
            return self.profile.formats.number.format(volts)

    # -- handlers ------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Any]:
        names = [
            "configure_ac", "configure_dc", "get_configuration", "set_function", "get_function", "set_ac_band",
            "get_ac_band", "set_ac_range", "get_ac_range", "set_ac_autorange", "get_ac_autorange", "set_dc_range",
            "get_dc_range", "set_dc_autorange", "get_dc_autorange", "set_sample_count", "get_sample_count", "read",
            "initiate", "fetch", "measure_ac", "measure_dc",
        ]
        return {name: getattr(self, "_op_" + name) for name in names}

    def _num(self, value: float) -> str:
        return self.profile.formats.number.format(value)

    def _parse_range(self, fn: str, value: Any) -> float | str:
        """A requested range: AUTO (also when omitted or DEF), MIN, MAX, or volts -> the range holding them."""
        spec = self.profile.functions[fn]
        if value is None or value in ("AUTO", "DEF"):
            return "AUTO"
        if value == "MIN":
            return spec.ranges[0]
        if value == "MAX":
            return spec.ranges[-1]
        return spec.range_for(float(value))

    def _configure(self, fn: str, call: ScpiCall) -> None:
        rng = self._parse_range(fn, call.args.get("range"))
        resolution = call.args.get("resolution")
        if isinstance(resolution, float) and resolution <= 0:
            raise ScpiError(-222, f"resolution {resolution:g} must be positive")
        self._function = fn
        self._range[fn] = rng
        self._samples = 1
        self._readings = None

    def _op_configure_ac(self, call: ScpiCall) -> None:
        self._configure("VOLT:AC", call)

    def _op_configure_dc(self, call: ScpiCall) -> None:
        self._configure("VOLT:DC", call)

    def _present_range(self, fn: str) -> float:
        rng = self._range[fn]
        return self._auto_range[fn] if rng == "AUTO" else float(rng)

    def _op_get_configuration(self, call: ScpiCall) -> str:
        fn = self._function
        rng = self._present_range(fn)
        return self.profile.formats.configuration.format(
            function=fn, range=self._num(rng), resolution=self._num(rng * self.profile.functions[fn].resolution))

    def _op_set_function(self, call: ScpiCall) -> None:
        name = call.args["function"].strip().upper().replace("VOLTAGE", "VOLT")
        name = {"VOLT": "VOLT:DC"}.get(name, name)
        if name not in FUNCTIONS:
            raise ScpiError(-224, f"function {call.args['function']!r}; this DMM model has {list(FUNCTIONS)}")
        self._function = name
        self._readings = None

    def _op_get_function(self, call: ScpiCall) -> str:
        return f'"{self._function}"'

    def _op_set_ac_band(self, call: ScpiCall) -> None:
        bands = self.profile.ac_bands
        value = resolve_number(call.args["value"], minimum=bands[0], maximum=300e3, default=self.profile.ac_band_reset,
                               what="AC bandwidth")
        self._band = max(b for b in bands if b <= float(value) + 1e-9)

    def _op_get_ac_band(self, call: ScpiCall) -> str:
        return self._num(self._band)

    def _set_range(self, fn: str, call: ScpiCall) -> None:
        if call.args["range"] in ("AUTO", "DEF"):
            raise ScpiError(-224, "use RANGe:AUTO ON for autorange")
        self._range[fn] = self._parse_range(fn, call.args["range"])

    def _op_set_ac_range(self, call: ScpiCall) -> None:
        self._set_range("VOLT:AC", call)

    def _op_get_ac_range(self, call: ScpiCall) -> str:
        return self._num(self._present_range("VOLT:AC"))

    def _op_set_dc_range(self, call: ScpiCall) -> None:
        self._set_range("VOLT:DC", call)

    def _op_get_dc_range(self, call: ScpiCall) -> str:
        return self._num(self._present_range("VOLT:DC"))

    def _set_autorange(self, fn: str, on: bool) -> None:
        # switching autorange off keeps the range it had selected, as the instrument does
        self._range[fn] = "AUTO" if on else self._present_range(fn)

    def _op_set_ac_autorange(self, call: ScpiCall) -> None:
        self._set_autorange("VOLT:AC", call.args["state"])

    def _op_get_ac_autorange(self, call: ScpiCall) -> str:
        return self.profile.formats.state[1 if self._range["VOLT:AC"] == "AUTO" else 0]

    def _op_set_dc_autorange(self, call: ScpiCall) -> None:
        self._set_autorange("VOLT:DC", call.args["state"])

    def _op_get_dc_autorange(self, call: ScpiCall) -> str:
        return self.profile.formats.state[1 if self._range["VOLT:DC"] == "AUTO" else 0]

    def _op_set_sample_count(self, call: ScpiCall) -> None:
        count = resolve_number(call.args["count"], minimum=1, maximum=self.profile.max_sample_count, default=1,
                               what="sample count")
        if float(count) != int(float(count)):
            raise ScpiError(-224, f"sample count {count} is not a whole number")
        self._samples = int(float(count))

    def _op_get_sample_count(self, call: ScpiCall) -> str:
        return f"{self._samples:+d}"

    def _op_initiate(self, call: ScpiCall) -> None:
        self._readings = [self.reading() for _ in range(self._samples)]

    def _op_fetch(self, call: ScpiCall) -> str:
        if self._readings is None:
            raise ScpiError(-230, "FETCh? before INITiate: no readings in memory")
        return ",".join(self._readings)

    def _op_read(self, call: ScpiCall) -> str:
        self._op_initiate(call)
        return self._op_fetch(call)

    def _op_measure_ac(self, call: ScpiCall) -> str:
        self._configure("VOLT:AC", call)
        return self._op_read(call)

    def _op_measure_dc(self, call: ScpiCall) -> str:
        self._configure("VOLT:DC", call)
        return self._op_read(call)
