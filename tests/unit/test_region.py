"""Regional parameters: the EU868/US915 tables and the helpers that answer questions about them.

Expected values are typed in from the sources cited in hil/lorawan/regions/*.yaml (RP002-1.0.x,
LoRaWAN 1.0.1 §7.1, ChirpStack lrwn region/*.rs, LoRaMac-node Region*.h), not read back from the YAML.
"""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from hil.lorawan.errors import LoRaWANError
from hil.lorawan.region import Channel, DataRate, Region, RegionError, get_region, known_regions

MHZ = 1_000_000


@pytest.fixture(scope="module")
def eu868() -> Region:
    return get_region("EU868")


@pytest.fixture(scope="module")
def us915() -> Region:
    return get_region("US915")


def _table_text(name: str) -> str:
    return resources.files("hil.lorawan.regions").joinpath(name).read_text(encoding="utf-8")


# -- loading ------------------------------------------------------------------------------------


def test_tables_ship_as_package_resources() -> None:
    names = {p.name for p in resources.files("hil.lorawan.regions").iterdir()}
    assert {"eu868.yaml", "us915.yaml"} <= names
    assert known_regions() == ("EU868", "US915")


@pytest.mark.parametrize("name", ["EU868", "eu868", " Eu868 "])
def test_get_region_is_case_insensitive_and_cached(name: str) -> None:
    region = get_region(name)
    assert region.name == "EU868"
    assert region is get_region("EU868")


@pytest.mark.parametrize("name", ["AS923", "EU433", "", "eu 868", None, 868])
def test_unknown_region_names_the_known_ones(name: object) -> None:
    with pytest.raises(RegionError, match="EU868, US915") as info:
        get_region(name)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LoRaWANError)


def test_unknown_yaml_key_is_rejected() -> None:
    data = yaml.safe_load(_table_text("eu868.yaml"))
    data["rx3_frequency_hz"] = 869_525_000
    with pytest.raises(RegionError, match="rx3_frequency_hz"):
        Region.from_yaml(yaml.safe_dump(data))


def test_unknown_data_rate_key_is_rejected() -> None:
    data = yaml.safe_load(_table_text("eu868.yaml"))
    data["data_rates"][0]["coding_rate"] = "4/5"
    with pytest.raises(RegionError, match="coding_rate"):
        Region.from_yaml(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("data_rates", 0, "spreading_factor"), None, "LORA needs"),
        (("data_rates", 1, "index"), 0, "duplicate data rate index 0"),
        (("rx2_dr",), 9, "rx2_dr"),
        (("rx1_dr_table", 7), [7, 6, 5], "differ in length"),
        (("uplink_channels", 0, "max_dr"), 12, "bad DR range"),
        (("join_backoff", 1, "start_s"), 7200, "join_backoff window 1"),
        (("default_tx_power",), 8, "default_tx_power"),
        (("cflist_type",), 2, "cflist_type"),
    ],
)
def test_inconsistent_tables_are_rejected(path: tuple, value: object, message: str) -> None:
    data = yaml.safe_load(_table_text("eu868.yaml"))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RegionError, match=message):
        Region.from_yaml(yaml.safe_dump(data))


# -- data rates ---------------------------------------------------------------------------------

# (DR, SF, BW Hz, M, N) — RP002-1.0.x EU863-870 data rates and max payload size without repeater.
EU868_LORA = [
    (0, 12, 125_000, 59, 51),
    (1, 11, 125_000, 59, 51),
    (2, 10, 125_000, 59, 51),
    (3, 9, 125_000, 123, 115),
    (4, 8, 125_000, 250, 242),
    (5, 7, 125_000, 250, 242),
    (6, 7, 250_000, 250, 242),
]

# (DR, SF, BW Hz, M, N, uplink) — RP002-1.0.x US902-928.
US915_LORA = [
    (0, 10, 125_000, 19, 11, True),
    (1, 9, 125_000, 61, 53, True),
    (2, 8, 125_000, 133, 125, True),
    (3, 7, 125_000, 250, 242, True),
    (4, 8, 500_000, 250, 242, True),
    (8, 12, 500_000, 61, 53, False),
    (9, 11, 500_000, 137, 129, False),
    (10, 10, 500_000, 250, 242, False),
    (11, 9, 500_000, 250, 242, False),
    (12, 8, 500_000, 250, 242, False),
    (13, 7, 500_000, 250, 242, False),
]


@pytest.mark.parametrize(("dr", "sf", "bw", "m", "n"), EU868_LORA)
def test_eu868_lora_data_rates(eu868: Region, dr: int, sf: int, bw: int, m: int, n: int) -> None:
    rate = eu868.data_rate(dr)
    assert isinstance(rate, DataRate)
    assert (rate.index, rate.modulation, rate.bitrate) == (dr, "LORA", None)
    assert (rate.spreading_factor, rate.bandwidth_hz) == (sf, bw)
    assert (rate.max_mac_payload, rate.max_app_payload, rate.max_payload) == (m, n, m)
    assert rate.uplink and rate.downlink
    assert eu868.dr_for(sf, bw) == dr
    assert eu868.dr_for(sf, bw, uplink=False) == dr


def test_eu868_fsk_data_rate(eu868: Region) -> None:
    rate = eu868.data_rates[7]
    assert (rate.modulation, rate.bitrate) == ("FSK", 50_000)
    assert (rate.spreading_factor, rate.bandwidth_hz) == (None, None)
    assert (rate.max_mac_payload, rate.max_app_payload) == (250, 242)
    assert sorted(eu868.data_rates) == list(range(8))


@pytest.mark.parametrize(("dr", "sf", "bw", "m", "n", "uplink"), US915_LORA)
def test_us915_data_rates(us915: Region, dr: int, sf: int, bw: int, m: int, n: int, uplink: bool) -> None:
    rate = us915.data_rate(dr)
    assert (rate.modulation, rate.spreading_factor, rate.bandwidth_hz) == ("LORA", sf, bw)
    assert (rate.max_mac_payload, rate.max_app_payload) == (m, n)
    assert (rate.uplink, rate.downlink) == (uplink, not uplink)
    assert us915.dr_for(sf, bw, uplink=uplink) == dr


def test_us915_defines_no_lr_fhss_or_rfu_rates(us915: Region) -> None:
    assert sorted(us915.data_rates) == [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13]


@pytest.mark.parametrize("region_name", ["EU868", "US915"])
def test_n_is_m_minus_the_minimal_frame_header(region_name: str) -> None:
    # N = M - 8: FHDR without FOpts (7 bytes) plus FPort (1 byte).
    for rate in get_region(region_name).data_rates.values():
        assert rate.max_mac_payload - rate.max_app_payload == 8


def test_dr_for_picks_the_direction(us915: Region) -> None:
    assert us915.dr_for(8, 500_000, uplink=True) == 4
    assert us915.dr_for(8, 500_000, uplink=False) == 12
    assert us915.dr_for(7, 500_000, uplink=False) == 13


@pytest.mark.parametrize(
    ("region_name", "sf", "bw", "uplink"),
    [
        ("US915", 10, 500_000, True),  # downlink-only DR10
        ("US915", 10, 125_000, False),  # uplink-only DR0
        ("US915", 12, 125_000, True),
        ("EU868", 12, 250_000, True),
        ("EU868", 7, 500_000, False),
    ],
)
def test_dr_for_unknown_modulation(region_name: str, sf: int, bw: int, uplink: bool) -> None:
    with pytest.raises(RegionError, match=f"SF{sf}/{bw}"):
        get_region(region_name).dr_for(sf, bw, uplink=uplink)


@pytest.mark.parametrize(
    ("region_name", "dr"), [("EU868", 8), ("EU868", -1), ("US915", 5), ("US915", 7), ("US915", 14)]
)
def test_unknown_data_rate(region_name: str, dr: int) -> None:
    with pytest.raises(RegionError, match=f"no data rate {dr}"):
        get_region(region_name).data_rate(dr)
    with pytest.raises(RegionError):
        get_region(region_name).datr(dr)


@pytest.mark.parametrize(
    ("region_name", "dr", "datr"),
    [
        ("EU868", 0, "SF12BW125"),
        ("EU868", 5, "SF7BW125"),
        ("EU868", 6, "SF7BW250"),
        ("EU868", 7, "50000"),
        ("US915", 0, "SF10BW125"),
        ("US915", 4, "SF8BW500"),
        ("US915", 8, "SF12BW500"),
    ],
)
def test_datr(region_name: str, dr: int, datr: str) -> None:
    assert get_region(region_name).datr(dr) == datr


# -- channels -----------------------------------------------------------------------------------


def test_eu868_channels(eu868: Region) -> None:
    assert eu868.join_channels == [868_100_000, 868_300_000, 868_500_000]
    assert eu868.default_channels == [
        Channel(868_100_000, 0, 5),
        Channel(868_300_000, 0, 5),
        Channel(868_500_000, 0, 5),
    ]


def test_us915_channels(us915: Region) -> None:
    channels = us915.default_channels
    assert len(channels) == 72
    assert channels[0] == Channel(902_300_000, 0, 3)
    assert channels[1].frequency_hz == 902_500_000
    assert channels[63] == Channel(914_900_000, 0, 3)
    assert channels[64] == Channel(903_000_000, 4, 4)
    assert channels[71] == Channel(914_200_000, 4, 4)
    narrow = [902_300_000 + 200_000 * n for n in range(64)]
    wide = [903_000_000 + 1_600_000 * n for n in range(8)]
    expected = narrow + wide
    assert us915.join_channels == expected


def test_channel_lists_are_fresh_copies(eu868: Region) -> None:
    eu868.join_channels.append(1)
    eu868.default_channels.clear()
    assert len(eu868.join_channels) == 3 and len(eu868.default_channels) == 3


# -- receive windows ----------------------------------------------------------------------------

# RP002-1.0.x EU863-870 RX1 data rate table, rows = uplink DR0..DR7, columns = RX1DROffset 0..5.
EU868_RX1 = [
    [0, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0],
    [2, 1, 0, 0, 0, 0],
    [3, 2, 1, 0, 0, 0],
    [4, 3, 2, 1, 0, 0],
    [5, 4, 3, 2, 1, 0],
    [6, 5, 4, 3, 2, 1],
    [7, 6, 5, 4, 3, 2],
]

# RP002-1.0.x US902-928, rows = uplink DR0..DR4, columns = RX1DROffset 0..3.
US915_RX1 = [
    [10, 9, 8, 8],
    [11, 10, 9, 8],
    [12, 11, 10, 9],
    [13, 12, 11, 10],
    [13, 13, 12, 11],
]


@pytest.mark.parametrize(
    ("region_name", "table"), [("EU868", EU868_RX1), ("US915", US915_RX1)]
)
def test_rx1_dr_table(region_name: str, table: list[list[int]]) -> None:
    region = get_region(region_name)
    got = [[region.rx1_dr(up, offset) for offset in range(len(table[0]))] for up in range(len(table))]
    assert got == table


@pytest.mark.parametrize(
    ("region_name", "offset"), [("EU868", 6), ("EU868", -1), ("US915", 4), ("US915", True)]
)
def test_rx1_dr_rejects_bad_offsets(region_name: str, offset: int) -> None:
    with pytest.raises(RegionError, match="RX1DROffset"):
        get_region(region_name).rx1_dr(0, offset)


@pytest.mark.parametrize(("region_name", "uplink_dr"), [("EU868", 8), ("US915", 8), ("US915", 5)])
def test_rx1_dr_rejects_unknown_uplink_dr(region_name: str, uplink_dr: int) -> None:
    with pytest.raises(RegionError, match=f"uplink DR{uplink_dr}"):
        get_region(region_name).rx1_dr(uplink_dr, 0)


@pytest.mark.parametrize(
    ("uplink_hz", "rx1_hz"),
    [
        (902_300_000, 923_300_000),  # channel 0
        (902_500_000, 923_900_000),  # channel 1
        (903_700_000, 927_500_000),  # channel 7
        (903_900_000, 923_300_000),  # channel 8
        (904_100_000, 923_900_000),  # channel 9
        (914_900_000, 927_500_000),  # channel 63
        (903_000_000, 923_300_000),  # channel 64 (500 kHz)
        (904_600_000, 923_900_000),  # channel 65
        (914_200_000, 927_500_000),  # channel 71
    ],
)
def test_us915_rx1_frequency(us915: Region, uplink_hz: int, rx1_hz: int) -> None:
    assert us915.rx1_frequency(uplink_hz) == rx1_hz


@pytest.mark.parametrize("uplink_hz", [902_400_000, 923_300_000, 868_100_000])
def test_us915_rx1_frequency_needs_an_uplink_channel(us915: Region, uplink_hz: int) -> None:
    with pytest.raises(RegionError, match="not a default US915 uplink channel"):
        us915.rx1_frequency(uplink_hz)


def test_us915_uplink_channel_index(us915: Region) -> None:
    assert us915.uplink_channel_index(902_300_000) == 0
    assert us915.uplink_channel_index(914_900_000) == 63
    assert us915.uplink_channel_index(903_000_000) == 64
    assert us915.uplink_channel_index(914_200_000) == 71


@pytest.mark.parametrize("uplink_hz", [868_100_000, 868_500_000, 867_100_000, 863_000_000, 870_000_000])
def test_eu868_rx1_frequency_is_the_uplink_frequency(eu868: Region, uplink_hz: int) -> None:
    assert eu868.rx1_frequency(uplink_hz) == uplink_hz


@pytest.mark.parametrize("uplink_hz", [862_999_999, 870_000_001, 902_300_000])
def test_eu868_rx1_frequency_outside_the_band(eu868: Region, uplink_hz: int) -> None:
    with pytest.raises(RegionError, match="outside EU868"):
        eu868.rx1_frequency(uplink_hz)


def test_rx2_and_defaults(eu868: Region, us915: Region) -> None:
    assert (eu868.rx2_frequency_hz, eu868.rx2_dr) == (869_525_000, 0)
    assert (us915.rx2_frequency_hz, us915.rx2_dr) == (923_300_000, 8)
    for region in (eu868, us915):
        delays = (
            region.receive_delay1_s,
            region.receive_delay2_s,
            region.join_accept_delay1_s,
            region.join_accept_delay2_s,
        )
        assert delays == (1.0, 2.0, 5.0, 6.0)
        assert all(isinstance(d, float) for d in delays)
        assert region.receive_delay2_s == region.receive_delay1_s + 1
        assert (region.max_fcnt_gap, region.adr_ack_limit, region.adr_ack_delay) == (16384, 64, 32)
        assert (region.retransmit_timeout_s, region.retransmit_timeout_jitter_s) == (2.0, 1.0)
    assert (eu868.cflist_type, us915.cflist_type) == (0, 1)


# -- regulatory limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency_hz", "duty_cycle"),
    [
        (863_000_000, 0.001),
        (864_999_999, 0.001),
        (865_000_000, 0.01),  # 865.0 MHz belongs to the 865-868 band
        (867_500_000, 0.01),
        (868_000_000, 0.01),
        (868_100_000, 0.01),
        (868_300_000, 0.01),
        (868_500_000, 0.01),
        (868_600_000, 0.01),
        (868_700_000, 0.001),
        (869_200_000, 0.001),
        (869_400_000, 0.1),
        (869_525_000, 0.1),
        (869_650_000, 0.1),
        (869_700_000, 0.01),
        (869_850_000, 0.01),
        (870_000_000, 0.01),
    ],
)
def test_eu868_duty_cycle_bands(eu868: Region, frequency_hz: int, duty_cycle: float) -> None:
    assert eu868.duty_cycle(frequency_hz) == duty_cycle


@pytest.mark.parametrize(
    "frequency_hz", [862_900_000, 868_650_000, 869_300_000, 869_675_000, 870_100_000, 915_000_000]
)
def test_eu868_duty_cycle_outside_sub_bands(eu868: Region, frequency_hz: int) -> None:
    with pytest.raises(RegionError, match="no EU868 sub-band"):
        eu868.duty_cycle(frequency_hz)


def test_us915_has_no_duty_cycle(us915: Region) -> None:
    for frequency_hz in us915.join_channels + [923_300_000, 927_500_000]:
        assert us915.duty_cycle(frequency_hz) == 1.0
    assert us915.uplink_dwell_time_s == 0.4
    with pytest.raises(RegionError):
        us915.duty_cycle(868_100_000)


def test_tx_power(eu868: Region, us915: Region) -> None:
    assert (eu868.max_eirp_dbm, eu868.tx_power_reference, eu868.default_tx_power) == (16.0, "EIRP", 0)
    assert [eu868.tx_power_dbm(n) for n in range(8)] == [16, 14, 12, 10, 8, 6, 4, 2]
    assert (us915.max_eirp_dbm, us915.tx_power_reference) == (30.0, "conducted")
    assert us915.tx_power_dbm(0) == 30 and us915.tx_power_dbm(14) == 2
    with pytest.raises(RegionError, match="TXPower must be 0..7"):
        eu868.tx_power_dbm(8)
    with pytest.raises(RegionError, match="TXPower must be 0..14"):
        us915.tx_power_dbm(15)


@pytest.mark.parametrize(
    ("elapsed_s", "limit", "window_start_s"),
    [
        (0.0, (3600.0, 36.0), 0.0),
        (3599.9, (3600.0, 36.0), 0.0),
        (3600, (36000.0, 36.0), 3600.0),
        (20_000.0, (36000.0, 36.0), 3600.0),
        (39_599.0, (36000.0, 36.0), 3600.0),
        (39_600.0, (86400.0, 8.7), 39600.0),
        (39_600.0 + 86_399.0, (86400.0, 8.7), 39600.0),
        (39_600.0 + 86_400.0, (86400.0, 8.7), 126_000.0),
        (10 * 86_400.0, (86400.0, 8.7), 39_600.0 + 9 * 86_400.0),
    ],
)
def test_join_duty_cycle_limit(eu868: Region, elapsed_s: float, limit: tuple, window_start_s: float) -> None:
    assert eu868.join_duty_cycle_limit(elapsed_s) == limit
    assert eu868.join_window_start_s(elapsed_s) == window_start_s
    assert get_region("US915").join_duty_cycle_limit(elapsed_s) == limit


@pytest.mark.parametrize("elapsed_s", [-1.0, float("nan"), float("inf"), "10", None])
def test_join_duty_cycle_limit_rejects_bad_times(eu868: Region, elapsed_s: object) -> None:
    with pytest.raises(RegionError, match="elapsed_since_power_up_s"):
        eu868.join_duty_cycle_limit(elapsed_s)  # type: ignore[arg-type]
