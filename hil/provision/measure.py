"""Measurements with limits and units (OpenHTF's idea): a step records a value, the limit judges it.

Limits are written with their units in the station config (``{min: 0.5 mA, max: 3 mA}``) and
kept in SI base units (A, V, s); a value is shown back with a prefix that reads well.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Limit", "Measurement", "QuantityError", "format_quantity", "parse_quantity"]

_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(µ|u|m|k|M)?\s*([A-Za-z]+)\s*$")
_PREFIX = {None: 1.0, "µ": 1e-6, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6}
UNITS = {"A": "current", "V": "voltage", "s": "time"}


class QuantityError(ValueError):
    """A value that is not a number with the expected unit."""


def parse_quantity(value: Any, unit: str) -> float:
    """``"1.5 mA"`` as amps (``unit`` "A"); a bare number is refused: write the unit."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(f"expected a quantity in {unit} such as '1.5 m{unit}', got {type(value).__name__}")
    if isinstance(value, (int, float)):
        raise QuantityError(f"{value!r} has no unit: write it with one, e.g. '{value} {unit}' or '{value} m{unit}'")
    match = _QUANTITY.match(value)
    if match is None or match[3] != unit:
        raise QuantityError(f"expected a quantity in {unit} such as '1.5 m{unit}' or '230 {unit}', got {value!r}")
    number = float(match[1]) * _PREFIX[match[2]]
    if not math.isfinite(number):
        raise QuantityError(f"{value!r} is not a finite number")
    return number


def format_quantity(value: float | None, unit: str) -> str:
    """``0.0015, "A"`` as ``1.50 mA``."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ")):
        if magnitude >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


@dataclass(frozen=True, slots=True)
class Limit:
    """An inclusive range in SI units; either end may be open."""

    unit: str
    low: float | None = None
    high: float | None = None

    def check(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        lo, hi = format_quantity(self.low, self.unit), format_quantity(self.high, self.unit)
        if self.low is None:
            return f"≤ {hi}"
        if self.high is None:
            return f"≥ {lo}"
        return f"{lo} .. {hi}"


@dataclass(frozen=True, slots=True)
class Measurement:
    """A value measured by a step, judged by its limit (None: recorded only)."""

    name: str
    value: float
    unit: str
    limit: Limit | None = None

    @property
    def passed(self) -> bool:
        return self.limit is None or self.limit.check(self.value)

    def describe(self) -> str:
        shown = f"{self.name} = {format_quantity(self.value, self.unit)}"
        if self.limit is None:
            return shown
        return f"{shown} (limit {self.limit.describe()}: {'ok' if self.passed else 'OUT OF LIMITS'})"
