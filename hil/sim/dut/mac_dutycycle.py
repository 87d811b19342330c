"""Transmit-time limits of the virtual end device: sub-band duty cycle and the join-request budget.

* Sub-band duty cycle (ETSI, the region's ``duty_cycle_bands``): after a transmission of airtime
  ``a`` in a sub-band with duty cycle ``d``, the whole sub-band stays silent for
  ``a * (1 - d) / d`` (EU868 1 %: ``99 * a``), counted from the end of the transmission.
* Join-requests (LoRaWAN 1.0.2/1.1 §7, lorawan-facts §6, ``Region.join_duty_cycle_limit``): their
  aggregated airtime in each back-off window after power-up (``T0``: the MAC's boot) stays within
  the window's budget (36 s in the first hour, 36 s in hours 1..11, 8.7 s per 24 h after). The
  windows are fixed periods after T0; a request counts in the window its start falls in. A request
  that would exceed the budget waits for the next window.

The stricter of the two applies. State is RAM only: it restarts at every boot, as T0 does.
"""

from __future__ import annotations

from hil.lorawan.region import DutyCycleBand, Region, RegionError


class DutyCycle:
    """Tracks when each sub-band may transmit again and the join-requests' aggregated airtime."""

    def __init__(self, region: Region, power_up_at: float) -> None:
        self._region = region
        self._t0 = power_up_at
        self._band_ready: dict[str, float] = {}
        self._joins: list[tuple[float, float]] = []  # (start, airtime) of join-requests

    def band(self, frequency_hz: int) -> DutyCycleBand:
        """The sub-band holding ``frequency_hz``; RegionError if none does."""
        for band in self._region.duty_cycle_bands:
            if band.contains(frequency_hz):
                return band
        raise RegionError(f"{frequency_hz} Hz is in no {self._region.name} sub-band")

    def ready_at(self, frequency_hz: int) -> float:
        """The earliest rig time the sub-band of ``frequency_hz`` may transmit."""
        return self._band_ready.get(self.band(frequency_hz).name, float("-inf"))

    def ready_channels(self, frequencies: list[int], at: float) -> list[int]:
        """The frequencies whose sub-band may transmit at ``at`` (order kept)."""
        return [f for f in frequencies if self.ready_at(f) <= at]

    def join_budget(self, at: float) -> tuple[float, float, float]:
        """``(window_start, used_s, max_s)`` of the join back-off window holding rig time ``at``."""
        elapsed = max(0.0, at - self._t0)
        length, max_airtime = self._region.join_duty_cycle_limit(elapsed)
        start = self._t0 + self._region.join_window_start_s(elapsed)
        used = sum(airtime for t, airtime in self._joins if start <= t < start + length)
        return start, used, max_airtime

    def join_allowed_from(self, at: float, airtime: float) -> float:
        """The earliest time ≥ ``at`` a join-request of ``airtime`` fits its window's budget."""
        t = at
        for _ in range(1000):  # each step moves to the next window; the repeating one always fits
            start, used, max_airtime = self.join_budget(t)
            if used + airtime <= max_airtime:
                return t
            if airtime > max_airtime:
                raise RegionError(f"a join-request of {airtime:.3f} s exceeds the {max_airtime} s budget")
            elapsed = max(0.0, t - self._t0)
            length, _ = self._region.join_duty_cycle_limit(elapsed)
            t = start + length
        raise RegionError("no join back-off window fits the join-request")  # pragma: no cover

    def earliest(self, frequencies: list[int], at: float, *, join_airtime: float | None = None) -> float:
        """The earliest time ≥ ``at`` one of ``frequencies`` may carry a transmission (a
        join-request when ``join_airtime`` is given: then its budget must allow it too)."""
        if not frequencies:
            raise RegionError("no channel to transmit on")
        t = max(at, min(self.ready_at(f) for f in frequencies))
        if join_airtime is not None:
            t = self.join_allowed_from(t, join_airtime)
        return t

    def record(self, frequency_hz: int, start: float, end: float, *, join: bool = False) -> None:
        """Account a transmission on ``frequency_hz`` from ``start`` to ``end``."""
        band = self.band(frequency_hz)
        airtime = end - start
        off = airtime * (1.0 - band.duty_cycle) / band.duty_cycle
        self._band_ready[band.name] = max(self._band_ready.get(band.name, float("-inf")), end + off)
        if join:
            start_of_window, _, _ = self.join_budget(start)
            self._joins = [(t, a) for t, a in self._joins if t >= start_of_window]
            self._joins.append((start, airtime))
