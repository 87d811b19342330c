"""Receive windows of the virtual end device: when each one opens, what it listens to, what it hears.

Timing rules (LoRaWAN 1.0.2 §3.3, lorawan-facts §7): RX1 opens RECEIVE_DELAY1 (JOIN_ACCEPT_DELAY1
after a join-request) after the *end* of the uplink, on the RX1 frequency and data rate the region
derives from the uplink; RX2 opens RECEIVE_DELAY2 (JOIN_ACCEPT_DELAY2) after it on the RX2 channel.

What a window hears is decided on the downlink's rig timestamps only:

* a downlink :class:`~hil.sim.radio.Transmission` (inverted IQ, ``downlink=True``) on the window's
  frequency, spreading factor and bandwidth,
* whose preamble *starts* in ``[open - 1 symbol, open + preamble timeout]``. The radio may lock on a
  preamble that began up to one symbol before it started listening (8 preamble symbols leave
  room); the preamble timeout is :data:`PREAMBLE_TIMEOUT_SYMBOLS` symbols plus
  :data:`PREAMBLE_TIMEOUT_MARGIN_S` (the SX127x RX-single timeout a LoRaWAN stack programs, with
  1 ms for timer granularity). With no preamble by then the window closes (radio to sleep); with
  one, the radio stays in RX until the frame's end.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.lorawan.airtime import symbol_time
from hil.lorawan.region import Region
from hil.sim.radio import Transmission

PREAMBLE_TIMEOUT_SYMBOLS = 8
"""Symbols a window listens for a preamble before it closes."""

PREAMBLE_TIMEOUT_MARGIN_S = 0.001
"""Added to the preamble timeout (timer granularity of a real stack)."""

EARLY_TOLERANCE_SYMBOLS = 1
# A continuously listening receiver (Class C) still locks on to a frame whose preamble began while it
# was busy elsewhere, if it is back for this many of the 8 preamble symbols.
PREAMBLE_SYMBOLS = 8
MIN_PREAMBLE_LOCK_SYMBOLS = 5
"""A preamble may start this many symbols before the window opens and still be caught."""

RX1_LATE_BY_S = 0.1
"""Defect ``rx1_late``: RX1 opens this much too late. More than one symbol at every LoRa data rate
(SF12/125 kHz: 32.8 ms), so a downlink starting at the correct time is missed; RX2 is unaffected."""

_FSK_SYMBOL_BYTES = 1  # an FSK "symbol" for the timeout is one byte time (FSK is not received)


@dataclass(frozen=True, slots=True)
class RxWindow:
    """One receive window: ``slot`` "1", "2" or "C", opening at rig time ``open_at``.

    ``spreading_factor``/``bandwidth_hz`` are None for an FSK data rate (not modelled: such a
    window hears nothing).
    """

    slot: str
    open_at: float
    frequency_hz: int
    dr: int
    spreading_factor: int | None
    bandwidth_hz: int | None
    symbol_s: float

    @property
    def timeout_s(self) -> float:
        """How long the window listens for a preamble: 8 symbols + 1 ms."""
        return PREAMBLE_TIMEOUT_SYMBOLS * self.symbol_s + PREAMBLE_TIMEOUT_MARGIN_S

    @property
    def close_at(self) -> float:
        """When the radio goes back to sleep if no preamble was found."""
        return self.open_at + self.timeout_s

    @property
    def earliest_start(self) -> float:
        """The earliest preamble start the window still catches."""
        return self.open_at - EARLY_TOLERANCE_SYMBOLS * self.symbol_s

    @property
    def latest_start(self) -> float:
        """The latest preamble start the window still catches (its close)."""
        return self.close_at

    def matches(self, tx: Transmission) -> bool:
        """Whether ``tx`` is a downlink on this window's frequency, SF and bandwidth."""
        return (
            tx.downlink
            and self.spreading_factor is not None
            and tx.frequency_hz == self.frequency_hz
            and tx.spreading_factor == self.spreading_factor
            and tx.bandwidth_hz == self.bandwidth_hz
        )

    def hears(self, tx: Transmission) -> bool:
        """Whether the window locks on ``tx``: right channel and modulation, preamble start in time."""
        return self.matches(tx) and self.earliest_start <= tx.start <= self.latest_start


def make_window(region: Region, slot: str, open_at: float, frequency_hz: int, dr: int) -> RxWindow:
    """A window of ``region`` data rate ``dr`` on ``frequency_hz`` opening at ``open_at``."""
    rate = region.data_rate(dr)
    if rate.modulation == "LORA":
        assert rate.spreading_factor is not None and rate.bandwidth_hz is not None
        sym = symbol_time(rate.spreading_factor, rate.bandwidth_hz)
        return RxWindow(slot, open_at, frequency_hz, dr, rate.spreading_factor, rate.bandwidth_hz, sym)
    assert rate.bitrate is not None
    return RxWindow(slot, open_at, frequency_hz, dr, None, None, _FSK_SYMBOL_BYTES * 8 / rate.bitrate)


@dataclass(frozen=True, slots=True)
class RxParams:
    """The receive parameters a device uses after an uplink (region defaults or its session's)."""

    rx1_delay_s: float
    rx2_delay_s: float
    rx1_dr_offset: int
    rx2_frequency_hz: int
    rx2_dr: int


def join_rx_params(region: Region) -> RxParams:
    """Windows after a join-request: JOIN_ACCEPT_DELAY1/2 and the region's defaults."""
    return RxParams(region.join_accept_delay1_s, region.join_accept_delay2_s, 0, region.rx2_frequency_hz, region.rx2_dr)


def class_a_windows(
    region: Region,
    *,
    tx_end: float,
    uplink_frequency_hz: int,
    uplink_dr: int,
    params: RxParams,
    rx1_late: bool = False,
) -> tuple[RxWindow, RxWindow]:
    """RX1 and RX2 after an uplink that ended at ``tx_end`` (``rx1_late``: the defect)."""
    rx1_dr = region.rx1_dr(uplink_dr, params.rx1_dr_offset)
    rx1_open = tx_end + params.rx1_delay_s + (RX1_LATE_BY_S if rx1_late else 0.0)
    rx1 = make_window(region, "1", rx1_open, region.rx1_frequency(uplink_frequency_hz), rx1_dr)
    rx2 = make_window(region, "2", tx_end + params.rx2_delay_s, params.rx2_frequency_hz, params.rx2_dr)
    return rx1, rx2


def still_on_air(window: RxWindow, transmissions: list[Transmission], now: float) -> list[Transmission]:
    """The frames ``window`` locked on that have not ended by ``now``: what the radio's preamble
    detector knows when the window's timeout expires (the medium delivers each at its end)."""
    return [tx for tx in transmissions if tx.end >= now and window.hears(tx)]


def preamble_lock_deadline(tx: Transmission) -> float:
    """The latest time a receiver may start listening and still lock on to ``tx`` (rig seconds)."""
    sym = symbol_time(tx.spreading_factor, tx.bandwidth_hz)
    return tx.start + (PREAMBLE_SYMBOLS - MIN_PREAMBLE_LOCK_SYMBOLS) * sym
