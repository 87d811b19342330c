"""LoRaWAN regional parameters (EU868, US915), loaded from the YAML tables in ``regions/``.

The numbers live in ``hil/lorawan/regions/<name>.yaml`` (with their sources); this module only
validates them (pydantic, unknown keys rejected) and answers questions about them::

    r = get_region("eu868")
    r.rx1_dr(uplink_dr=5, rx1_dr_offset=1)      # -> 4
    r.duty_cycle(868_100_000)                   # -> 0.01
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hil.lorawan.errors import LoRaWANError

_TABLES_PACKAGE = "hil.lorawan.regions"


class RegionError(LoRaWANError, ValueError):
    """An unknown region, or a value that the region's tables do not define."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataRate(_Table):
    """One row of a region's data-rate table.

    ``max_mac_payload`` is M (largest MACPayload) and ``max_app_payload`` is N (largest
    FRMPayload when FOpts is empty), both for an end-device that does not operate behind a repeater.
    """

    index: int = Field(ge=0, le=15)
    modulation: Literal["LORA", "FSK"]
    spreading_factor: int | None = Field(default=None, ge=5, le=12)
    bandwidth_hz: int | None = Field(default=None, gt=0)
    bitrate: int | None = Field(default=None, gt=0)
    max_mac_payload: int = Field(ge=0, le=255)
    max_app_payload: int = Field(ge=0, le=255)
    uplink: bool = True
    downlink: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> DataRate:
        if self.modulation == "LORA":
            if self.spreading_factor is None or self.bandwidth_hz is None or self.bitrate is not None:
                raise ValueError(f"DR{self.index}: LORA needs spreading_factor and bandwidth_hz, no bitrate")
        elif self.bitrate is None or self.spreading_factor is not None or self.bandwidth_hz is not None:
            raise ValueError(f"DR{self.index}: FSK needs bitrate, no spreading_factor/bandwidth_hz")
        if self.max_app_payload > self.max_mac_payload:
            raise ValueError(f"DR{self.index}: max_app_payload (N) exceeds max_mac_payload (M)")
        if not (self.uplink or self.downlink):
            raise ValueError(f"DR{self.index}: neither uplink nor downlink")
        return self

    @property
    def max_payload(self) -> int:
        """M, the largest MACPayload in bytes (alias of ``max_mac_payload``)."""
        return self.max_mac_payload

    @property
    def datr(self) -> str:
        """Semtech UDP ``datr``: ``"SF7BW125"`` for LoRa, the bit rate (``"50000"``) for FSK."""
        if self.modulation == "FSK":
            return str(self.bitrate)
        return f"SF{self.spreading_factor}BW{self.bandwidth_hz // 1000}"


class Channel(NamedTuple):
    """An uplink channel: centre frequency and the data-rate range allowed on it."""

    frequency_hz: int
    min_dr: int
    max_dr: int


class ChannelBlock(_Table):
    """``count`` evenly spaced uplink channels starting at ``first_hz`` (the YAML form of a channel plan)."""

    first_hz: int = Field(gt=0)
    step_hz: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)
    min_dr: int = Field(ge=0)
    max_dr: int = Field(ge=0)
    join: bool = True

    def channels(self) -> list[Channel]:
        """The channels of this block, in channel-index order."""
        step, lo, hi = self.step_hz, self.min_dr, self.max_dr
        return [Channel(self.first_hz + n * step, lo, hi) for n in range(self.count)]


class Rx1Channels(_Table):
    """Fixed RX1 downlink channels: RX1 uses channel ``uplink channel index % count``."""

    first_hz: int = Field(gt=0)
    step_hz: int = Field(gt=0)
    count: int = Field(ge=1)


class DutyCycleBand(_Table):
    """A regulatory sub-band and its duty-cycle limit (fraction of time, 0 < d <= 1)."""

    name: str
    min_hz: int = Field(gt=0)
    max_hz: int = Field(gt=0)
    include_min: bool = True
    include_max: bool = True
    duty_cycle: float = Field(gt=0, le=1)

    def contains(self, frequency_hz: int) -> bool:
        """Whether ``frequency_hz`` lies in this band (edges as configured)."""
        above = frequency_hz >= self.min_hz if self.include_min else frequency_hz > self.min_hz
        below = frequency_hz <= self.max_hz if self.include_max else frequency_hz < self.max_hz
        return above and below


class JoinBackoffWindow(_Table):
    """Aggregated join-request airtime allowed in ``[start_s, start_s + length_s)`` after power-up.

    A window with ``repeats`` recurs back to back for ever (the last one: 8.7 s per 24 h).
    """

    start_s: float = Field(ge=0)
    length_s: float = Field(gt=0)
    max_airtime_s: float = Field(gt=0)
    repeats: bool = False


class Region(_Table):
    """The regional parameters of one LoRaWAN region, as loaded from its YAML table."""

    name: str
    frequency_range_hz: tuple[int, int]
    data_rates: dict[int, DataRate]
    uplink_channels: tuple[ChannelBlock, ...] = Field(min_length=1)
    rx1_dr_table: dict[int, tuple[int, ...]]
    rx1_channels: Rx1Channels | None
    rx2_frequency_hz: int
    rx2_dr: int
    receive_delay1_s: float = Field(gt=0)
    receive_delay2_s: float = Field(gt=0)
    join_accept_delay1_s: float = Field(gt=0)
    join_accept_delay2_s: float = Field(gt=0)
    max_fcnt_gap: int = Field(gt=0)
    adr_ack_limit: int = Field(gt=0)
    adr_ack_delay: int = Field(gt=0)
    retransmit_timeout_s: float = Field(gt=0)
    retransmit_timeout_jitter_s: float = Field(ge=0)
    cflist_type: Literal[0, 1]
    duty_cycle_bands: tuple[DutyCycleBand, ...] = Field(min_length=1)
    uplink_dwell_time_s: float | None = Field(gt=0)
    max_eirp_dbm: float
    tx_power_reference: Literal["EIRP", "conducted"]
    default_tx_power: int = Field(ge=0)
    tx_power_offsets_db: tuple[int, ...] = Field(min_length=1)
    join_backoff: tuple[JoinBackoffWindow, ...] = Field(min_length=1)

    @field_validator("data_rates", mode="before")
    @classmethod
    def _index_data_rates(cls, value: Any) -> Any:
        """Accept the YAML list of rows and key it by ``index`` (rejecting duplicates)."""
        if not isinstance(value, list):
            return value
        by_index: dict[Any, Any] = {}
        for row in value:
            index = row.get("index") if isinstance(row, dict) else None
            if index in by_index:
                raise ValueError(f"duplicate data rate index {index}")
            by_index[index] = row
        return by_index

    @model_validator(mode="after")
    def _cross_check(self) -> Region:
        for key, rate in self.data_rates.items():
            if key != rate.index:
                raise ValueError(f"data_rates key {key} holds DR{rate.index}")
        known = self.data_rates.keys()
        for block in self.uplink_channels:
            if not {block.min_dr, block.max_dr} <= known or block.min_dr > block.max_dr:
                dr_range = f"{block.min_dr}..{block.max_dr}"
                raise ValueError(f"channel block at {block.first_hz} Hz: bad DR range {dr_range}")
        widths = {len(row) for row in self.rx1_dr_table.values()}
        if len(widths) != 1:
            raise ValueError("rx1_dr_table rows differ in length")
        for up, row in self.rx1_dr_table.items():
            if up not in known or not set(row) <= known:
                raise ValueError(f"rx1_dr_table row {up} names an unknown data rate")
        if self.rx2_dr not in known:
            raise ValueError(f"rx2_dr {self.rx2_dr} is not a known data rate")
        low, high = self.frequency_range_hz
        if not low <= self.rx2_frequency_hz <= high:
            raise ValueError("rx2_frequency_hz is outside frequency_range_hz")
        if self.default_tx_power >= len(self.tx_power_offsets_db):
            raise ValueError("default_tx_power is not in tx_power_offsets_db")
        self._check_join_backoff()
        return self

    def _check_join_backoff(self) -> None:
        expected_start = 0.0
        for n, window in enumerate(self.join_backoff):
            if window.start_s != expected_start:
                raise ValueError(f"join_backoff window {n} starts at {window.start_s}, not {expected_start}")
            if window.repeats != (n == len(self.join_backoff) - 1):
                raise ValueError("exactly the last join_backoff window must repeat")
            expected_start = window.start_s + window.length_s

    @classmethod
    def from_yaml(cls, text: str) -> Region:
        """Build a region from YAML text; RegionError if it is not a valid region table."""
        try:
            return cls.model_validate(yaml.safe_load(text))
        except (yaml.YAMLError, ValidationError) as exc:
            raise RegionError(f"invalid region table: {exc}") from exc

    # -- data rates ---------------------------------------------------------------------------

    def data_rate(self, dr: int) -> DataRate:
        """The data-rate row for index ``dr``; RegionError if the region does not define it."""
        try:
            return self.data_rates[dr]
        except (KeyError, TypeError):
            known = ", ".join(str(n) for n in sorted(self.data_rates))
            raise RegionError(f"{self.name} has no data rate {dr!r} (known: {known})") from None

    def dr_for(self, spreading_factor: int, bandwidth_hz: int, uplink: bool = True) -> int:
        """The LoRa data-rate index for SF/bandwidth in the given direction; RegionError if none.

        ``uplink`` matters where the same modulation has two indexes (US915 SF8/500 kHz is DR4 up, DR12 down).
        """
        for rate in self.data_rates.values():
            usable = rate.uplink if uplink else rate.downlink
            if usable and rate.spreading_factor == spreading_factor and rate.bandwidth_hz == bandwidth_hz:
                return rate.index
        direction = "uplink" if uplink else "downlink"
        raise RegionError(f"{self.name} has no {direction} data rate SF{spreading_factor}/{bandwidth_hz} Hz")

    def datr(self, dr: int) -> str:
        """Semtech UDP ``datr`` string of data rate ``dr`` (``"SF7BW125"``, or ``"50000"`` for FSK)."""
        return self.data_rate(dr).datr

    # -- channels -----------------------------------------------------------------------------

    @property
    def default_channels(self) -> list[Channel]:
        """The default uplink channels in channel-index order (a fresh list)."""
        return [channel for block in self.uplink_channels for channel in block.channels()]

    @property
    def join_channels(self) -> list[int]:
        """Frequencies (Hz) a join-request may use, in channel-index order."""
        joinable = (block for block in self.uplink_channels if block.join)
        return [channel.frequency_hz for block in joinable for channel in block.channels()]

    def uplink_channel_index(self, frequency_hz: int) -> int:
        """Index of the default uplink channel at ``frequency_hz``; RegionError if there is none."""
        for index, channel in enumerate(self.default_channels):
            if channel.frequency_hz == frequency_hz:
                return index
        raise RegionError(f"{frequency_hz} Hz is not a default {self.name} uplink channel")

    # -- receive windows ----------------------------------------------------------------------

    def rx1_dr(self, uplink_dr: int, rx1_dr_offset: int) -> int:
        """RX1 data rate for an uplink at ``uplink_dr`` with ``rx1_dr_offset``.

        RegionError if the region has no RX1 row for ``uplink_dr`` or the offset is out of range.
        """
        row = self.rx1_dr_table.get(uplink_dr)
        if row is None:
            raise RegionError(f"{self.name} has no RX1 data rate for uplink DR{uplink_dr}")
        if not _is_index(rx1_dr_offset, len(row)):
            raise RegionError(f"{self.name} RX1DROffset must be 0..{len(row) - 1}, got {rx1_dr_offset!r}")
        return row[rx1_dr_offset]

    def rx1_frequency(self, uplink_frequency_hz: int) -> int:
        """RX1 frequency for an uplink on ``uplink_frequency_hz``.

        Dynamic-channel regions (EU868) answer on the uplink frequency; fixed-channel regions
        (US915) on RX1 channel ``uplink channel index % 8``. RegionError for an impossible uplink frequency.
        """
        if self.rx1_channels is None:
            low, high = self.frequency_range_hz
            if not low <= uplink_frequency_hz <= high:
                raise RegionError(f"{uplink_frequency_hz} Hz is outside {self.name} ({low}..{high} Hz)")
            return uplink_frequency_hz
        index = self.uplink_channel_index(uplink_frequency_hz)
        rx1 = self.rx1_channels
        return rx1.first_hz + rx1.step_hz * (index % rx1.count)

    # -- regulatory limits --------------------------------------------------------------------

    def duty_cycle(self, frequency_hz: int) -> float:
        """Duty-cycle limit (fraction; 1.0 = none) of the sub-band holding ``frequency_hz``.

        RegionError if the frequency lies in none of the region's sub-bands.
        """
        for band in self.duty_cycle_bands:
            if band.contains(frequency_hz):
                return band.duty_cycle
        raise RegionError(f"{frequency_hz} Hz is in no {self.name} sub-band")

    def tx_power_dbm(self, tx_power: int) -> float:
        """Output power (dBm, referenced as ``tx_power_reference``) of TXPower index ``tx_power``."""
        offsets = self.tx_power_offsets_db
        if not _is_index(tx_power, len(offsets)):
            raise RegionError(f"{self.name} TXPower must be 0..{len(offsets) - 1}, got {tx_power!r}")
        return self.max_eirp_dbm + offsets[tx_power]

    def join_duty_cycle_limit(self, elapsed_since_power_up_s: float) -> tuple[float, float]:
        """``(window_length_s, max_airtime_s)`` of the join back-off window holding that time.

        First hour: (3600, 36); hours 1..11: (36000, 36); afterwards (86400, 8.7) per 24 h window.
        """
        _, window = self._join_window(elapsed_since_power_up_s)
        return window.length_s, window.max_airtime_s

    def join_window_start_s(self, elapsed_since_power_up_s: float) -> float:
        """Start (seconds after power-up) of the join back-off window holding that time."""
        start, _ = self._join_window(elapsed_since_power_up_s)
        return start

    def _join_window(self, elapsed: float) -> tuple[float, JoinBackoffWindow]:
        number = isinstance(elapsed, int | float) and not isinstance(elapsed, bool)
        if not number or not 0 <= elapsed < math.inf:
            raise RegionError(f"elapsed_since_power_up_s must be a finite number >= 0, got {elapsed!r}")
        for window in self.join_backoff:
            if window.repeats:
                periods = math.floor((elapsed - window.start_s) / window.length_s)
                return window.start_s + periods * window.length_s, window
            if elapsed < window.start_s + window.length_s:
                return window.start_s, window
        raise AssertionError("unreachable: the last join_backoff window repeats")  # pragma: no cover


def _is_index(value: object, size: int) -> bool:
    """Whether ``value`` is an int (not a bool) in ``range(size)``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


@functools.cache
def known_regions() -> tuple[str, ...]:
    """Names of the regions with a shipped table, e.g. ``("EU868", "US915")``."""
    names = (p.name for p in resources.files(_TABLES_PACKAGE).iterdir())
    return tuple(sorted(n.removesuffix(".yaml").upper() for n in names if n.endswith(".yaml")))


def get_region(name: str) -> Region:
    """The region called ``name`` (case-insensitive, e.g. ``"eu868"``); cached.

    Raises RegionError (a ValueError) naming the known regions if there is no such table.
    """
    key = name.strip().upper() if isinstance(name, str) else None
    known = known_regions()
    if key not in known:
        raise RegionError(f"unknown region {name!r}; known regions: {', '.join(known)}")
    return _load(key)


@functools.cache
def _load(key: str) -> Region:
    text = resources.files(_TABLES_PACKAGE).joinpath(f"{key.lower()}.yaml").read_text(encoding="utf-8")
    region = Region.from_yaml(text)
    if region.name != key:
        raise RegionError(f"{key.lower()}.yaml declares region {region.name!r}")
    return region
