"""Radio side of the network: a device's channels and receive windows, and the downlink items for them.

Class A answers go in RX1 (uplink-dependent frequency and data rate, RX1DROffset) and RX2
(fixed frequency and data rate), ``delay_s`` after the end of the uplink; a join-accept uses
JOIN_ACCEPT_DELAY1/2 and the region defaults (its DLSettings apply only afterwards), a data
answer RECEIVE_DELAY1 = the session's RxDelay and RECEIVE_DELAY2 = RxDelay + 1 s. Class C
downlinks go out at once on the RX2 frequency and data rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.lorawan.errors import FrameError
from hil.lorawan.frames import CFList
from hil.lorawan.region import Region, RegionError
from hil.network.errors import DeviceConfigError
from hil.network.registry import DeviceConfig, Session
from hil.network.transport import DownlinkItem, UplinkFrame


@dataclass(frozen=True, slots=True)
class RxSettings:
    """Where and when a device listens after an uplink."""

    rx1_dr_offset: int
    rx2_dr: int
    rx2_frequency_hz: int
    rx1_delay_s: float

    @property
    def rx2_delay_s(self) -> float:
        """RECEIVE_DELAY2 = RECEIVE_DELAY1 + 1 s."""
        return self.rx1_delay_s + 1.0


def default_rx(region: Region) -> RxSettings:
    """The region's defaults: what a device uses before its join-accept."""
    return RxSettings(0, region.rx2_dr, region.rx2_frequency_hz, region.receive_delay1_s)


def device_rx(config: DeviceConfig, region: Region) -> RxSettings:
    """The device's data windows: its overrides, else the region defaults."""
    return RxSettings(
        rx1_dr_offset=0 if config.rx1_dr_offset is None else config.rx1_dr_offset,
        rx2_dr=region.rx2_dr if config.rx2_dr is None else config.rx2_dr,
        rx2_frequency_hz=region.rx2_frequency_hz,
        rx1_delay_s=float(int(region.receive_delay1_s) if config.rx_delay is None else config.rx_delay),
    )


def session_rx(session: Session) -> RxSettings:
    """The data windows a session uses (set at join or, for ABP, from the config)."""
    return RxSettings(session.rx1_dr_offset, session.rx2_dr, session.rx2_frequency_hz, float(session.rx_delay_s))


def cf_list(config: DeviceConfig, region: Region) -> CFList | None:
    """The device's CFList in the region's CFList type, or None."""
    if config.cf_list is None:
        return None
    if region.cflist_type == 0:
        return CFList(0, frequencies=tuple(config.cf_list))
    return CFList(1, ch_masks=tuple(config.cf_list))


def channels(config: DeviceConfig, region: Region) -> tuple[int, ...]:
    """Uplink frequencies in channel-index order: the defaults, then CFList type-0 channels (0 = unused)."""
    default = tuple(ch.frequency_hz for ch in region.default_channels)
    extra = cf_list(config, region)
    if extra is not None and extra.cflist_type == 0:
        return default + tuple(extra.frequencies) + (0,) * (5 - len(extra.frequencies))
    return default


def lora_params(region: Region, dr: int) -> tuple[int, int]:
    """(spreading factor, bandwidth Hz) of a LoRa downlink data rate; RegionError for FSK or none."""
    rate = region.data_rate(dr)
    if rate.modulation != "LORA" or rate.spreading_factor is None or rate.bandwidth_hz is None:
        raise RegionError(f"{region.name} DR{dr} is {rate.modulation}; the reference network sends LoRa only")
    if not rate.downlink:
        raise RegionError(f"{region.name} DR{dr} is not a downlink data rate")
    return rate.spreading_factor, rate.bandwidth_hz


def validate(config: DeviceConfig, region: Region) -> None:
    """Check the device's overrides against the region; DeviceConfigError naming the field."""
    rx = device_rx(config, region)
    try:
        lora_params(region, rx.rx2_dr)
    except RegionError as exc:
        raise DeviceConfigError(f"{config}: rx2_dr {rx.rx2_dr}: {exc}") from None
    width = len(next(iter(region.rx1_dr_table.values())))
    if rx.rx1_dr_offset >= width:
        raise DeviceConfigError(f"{config}: rx1_dr_offset {rx.rx1_dr_offset}: {region.name} allows 0..{width - 1}")
    try:
        listed = cf_list(config, region)
        if listed is not None:
            listed.to_bytes()
    except FrameError as exc:
        raise DeviceConfigError(f"{config}: cf_list: {exc}") from None


def uplink_dr(region: Region, uplink: UplinkFrame) -> int:
    """The data-rate index of a received uplink; RegionError if the region has none for its SF/BW."""
    return region.dr_for(uplink.spreading_factor, uplink.bandwidth_hz, uplink=True)


def class_a_items(
    region: Region,
    uplink: UplinkFrame,
    up_dr: int,
    phy_payload: bytes,
    rx: RxSettings,
    *,
    rx1_delay_s: float,
    rx2_delay_s: float,
    power_dbm: float,
) -> list[DownlinkItem]:
    """RX1 then RX2 items answering ``uplink`` (context copied from it)."""
    rx1_dr = region.rx1_dr(up_dr, rx.rx1_dr_offset)
    sf1, bw1 = lora_params(region, rx1_dr)
    sf2, bw2 = lora_params(region, rx.rx2_dr)
    return [
        DownlinkItem(phy_payload, region.rx1_frequency(uplink.frequency_hz), sf1, bw1, power_dbm, rx1_delay_s,
                     uplink.context),
        DownlinkItem(phy_payload, rx.rx2_frequency_hz, sf2, bw2, power_dbm, rx2_delay_s, uplink.context),
    ]


def class_c_item(region: Region, phy_payload: bytes, rx: RxSettings, *, power_dbm: float) -> DownlinkItem:
    """A Class C downlink: at once, on the RX2 frequency and data rate."""
    sf, bw = lora_params(region, rx.rx2_dr)
    return DownlinkItem(phy_payload, rx.rx2_frequency_hz, sf, bw, power_dbm, None, b"")


def item_dr(region: Region, item: DownlinkItem) -> int | None:
    """The downlink data-rate index of an item (for the event log)."""
    try:
        return region.dr_for(item.spreading_factor, item.bandwidth_hz, uplink=False)
    except RegionError:
        return None
