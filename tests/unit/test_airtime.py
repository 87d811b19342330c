"""LoRa/FSK time on air against published reference values and the formula's properties.

Published values used (milliseconds, preamble 8, explicit header, CRC on unless noted):
  [TTS]  TheThingsNetwork/lorawan-stack pkg/toa/toa_test.go @3a689a3c: 10-byte payload SF7..SF12 at
         125 kHz, SF7 at 125/250/500 kHz, CR 4/5..4/8, 13..19-byte SF7 payloads, FSK 50 kbit/s 200 bytes.
  [AVB]  avbentem/airtime-calculator src/lora/Airtime.test.ts @3bd0464c (the TTN community calculator,
         itself checked against Semtech's LoRa calculator spreadsheet).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.lorawan.airtime import fsk_time_on_air, symbol_time, time_on_air, time_on_air_dr
from hil.lorawan.region import RegionError, get_region

MS = 1e-3


def approx_ms(ms: float) -> object:
    return pytest.approx(ms * MS, abs=1e-9)


# -- published reference values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload_len", "sf", "bw", "cr", "ms"),
    [
        # [TTS] TestDifferentLoRaSFs: 10 bytes, 125 kHz, CR 4/5 (SF11/SF12 with LDRO).
        (10, 7, 125_000, 1, 41.216),
        (10, 8, 125_000, 1, 72.192),
        (10, 9, 125_000, 1, 144.384),
        (10, 10, 125_000, 1, 288.768),
        (10, 11, 125_000, 1, 577.536),
        (10, 12, 125_000, 1, 991.232),
        # [TTS] TestDifferentLoRaBWs
        (10, 7, 250_000, 1, 20.608),
        (10, 7, 500_000, 1, 10.304),
        # [TTS] TestDifferentLoRaCRs
        (10, 7, 125_000, 2, 45.312),
        (10, 7, 125_000, 3, 49.408),
        (10, 7, 125_000, 4, 53.504),
        # [TTS] TestDifferentLoRaPayloadSizes
        (13, 7, 125_000, 1, 46.336),
        (15, 7, 125_000, 1, 46.336),
        (16, 7, 125_000, 1, 51.456),
        (19, 7, 125_000, 1, 51.456),
        # [AVB] Airtime.test.ts
        (14, 7, 125_000, 1, 46.336),
        (25, 7, 125_000, 1, 61.696),
        (14, 7, 250_000, 1, 23.168),
        (25, 7, 250_000, 1, 30.848),
        (14, 7, 125_000, 4, 61.696),
        (16, 7, 125_000, 4, 69.888),
        (25, 7, 250_000, 4, 43.136),
        (14, 8, 125_000, 1, 82.432),
        (15, 8, 125_000, 1, 92.672),
        (25, 8, 125_000, 1, 113.152),
        (14, 11, 125_000, 1, 659.456),
        (25, 11, 125_000, 1, 823.296),
    ],
)
def test_published_lora_values(payload_len: int, sf: int, bw: int, cr: int, ms: float) -> None:
    assert time_on_air(payload_len, sf, bw, coding_rate=cr) == approx_ms(ms)


def test_sf7_13_bytes_by_hand() -> None:
    # T_sym = 128 / 125 kHz = 1.024 ms; preamble 12.25 symbols = 12.544 ms;
    # ceil((104 - 28 + 28 + 16) / 28) = 5 -> 8 + 5*5 = 33 symbols = 33.792 ms. Total 46.336 ms ([TTS]).
    assert symbol_time(7, 125_000) == pytest.approx(1.024 * MS)
    assert time_on_air(13, 7, 125_000) == approx_ms(46.336)


def test_sf12_13_bytes_by_hand() -> None:
    # T_sym = 32.768 ms, LDRO on: ceil((104 - 48 + 44) / 40) = 3 -> 8 + 15 = 23 symbols;
    # 12.25 * 32.768 + 23 * 32.768 = 1155.072 ms.
    assert symbol_time(12, 125_000) == pytest.approx(32.768 * MS)
    assert time_on_air(13, 12, 125_000) == approx_ms(1155.072)


def test_sf9_20_bytes_by_hand() -> None:
    # T_sym = 4.096 ms: ceil((160 - 36 + 44) / 36) = 5 -> 33 symbols; (12.25 + 33) * 4.096 = 185.344 ms.
    assert time_on_air(20, 9, 125_000) == approx_ms(185.344)


def test_fsk_published_value() -> None:
    # [TTS] TestFSK: 200 bytes at 50 kbit/s = 33.76 ms.
    assert fsk_time_on_air(200, 50_000) == approx_ms(33.76)
    assert time_on_air_dr(get_region("EU868"), 7, 200) == approx_ms(33.76)
    assert time_on_air_dr(get_region("EU868"), 7, 200, uplink=False) == approx_ms(33.76)


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sf", "bw", "ldro"),
    [
        (10, 125_000, False),
        (11, 125_000, True),
        (12, 125_000, True),
        (11, 250_000, False),
        (12, 250_000, True),
        (12, 500_000, False),
    ],
)
def test_low_data_rate_optimize_is_automatic_above_16_ms(sf: int, bw: int, ldro: bool) -> None:
    assert (symbol_time(sf, bw) > 0.016) == ldro
    for payload_len in (0, 13, 51, 222):
        auto = time_on_air(payload_len, sf, bw)
        assert auto == time_on_air(payload_len, sf, bw, low_data_rate_optimize=ldro)


def test_ldro_can_be_forced() -> None:
    # SF12/125 kHz 10 bytes without LDRO: ceil(76/48) = 2 -> 18 symbols, same as with it.
    # 51 bytes: with LDRO ceil(404/40) = 11 -> 63 symbols; without ceil(404/48) = 9 -> 53 symbols.
    assert time_on_air(51, 12, 125_000, low_data_rate_optimize=True) == approx_ms((12.25 + 63) * 32.768)
    assert time_on_air(51, 12, 125_000, low_data_rate_optimize=False) == approx_ms((12.25 + 53) * 32.768)


def test_crc_header_and_preamble() -> None:
    # SF7/125 kHz 13 bytes without CRC: ceil(104/28) = 4 -> 28 symbols -> 41.216 ms.
    assert time_on_air(13, 7, 125_000, crc=False) == approx_ms(41.216)
    # Implicit header: ceil(100/28) = 4 -> 28 symbols, also 41.216 ms.
    assert time_on_air(13, 7, 125_000, explicit_header=False) == approx_ms(41.216)
    # Each extra preamble symbol adds one symbol time.
    assert time_on_air(13, 7, 125_000, preamble_symbols=10) == approx_ms(46.336 + 2 * 1.024)
    # An empty payload still costs the 8 header symbols.
    assert time_on_air(0, 7, 125_000, crc=False, explicit_header=False) == approx_ms((12.25 + 8) * 1.024)


def test_time_on_air_dr_downlinks_have_no_crc() -> None:
    eu868, us915 = get_region("EU868"), get_region("US915")
    assert time_on_air_dr(eu868, 5, 13) == approx_ms(46.336)
    assert time_on_air_dr(eu868, 5, 13, uplink=False) == approx_ms(41.216)
    assert time_on_air_dr(eu868, 0, 13) == approx_ms(1155.072)
    assert time_on_air_dr(us915, 8, 33, uplink=False) == time_on_air(33, 12, 500_000, crc=False)
    assert time_on_air_dr(us915, 4, 33) == time_on_air(33, 8, 500_000)


@pytest.mark.parametrize(
    ("region_name", "dr", "uplink"), [("US915", 8, True), ("US915", 0, False), ("US915", 4, False)]
)
def test_time_on_air_dr_checks_the_direction(region_name: str, dr: int, uplink: bool) -> None:
    with pytest.raises(RegionError, match=f"DR{dr} is not a"):
        time_on_air_dr(get_region(region_name), dr, 13, uplink=uplink)


def test_time_on_air_dr_unknown_dr() -> None:
    with pytest.raises(RegionError):
        time_on_air_dr(get_region("EU868"), 8, 13)


# -- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "bad_arg"),
    [
        ({"payload_len": -1}, "payload_len"),
        ({"payload_len": 256}, "payload_len"),
        ({"payload_len": 13.0}, "payload_len"),
        ({"spreading_factor": 5}, "spreading_factor"),
        ({"spreading_factor": 13}, "spreading_factor"),
        ({"spreading_factor": True}, "spreading_factor"),
        ({"bandwidth_hz": 125}, "bandwidth_hz"),
        ({"bandwidth_hz": 0}, "bandwidth_hz"),
        ({"bandwidth_hz": 125e3}, "bandwidth_hz"),
        ({"coding_rate": 0}, "coding_rate"),
        ({"coding_rate": 5}, "coding_rate"),
        ({"preamble_symbols": 5}, "preamble_symbols"),
        ({"explicit_header": 1}, "explicit_header"),
        ({"crc": None}, "crc"),
        ({"low_data_rate_optimize": "auto"}, "low_data_rate_optimize"),
    ],
)
def test_time_on_air_rejects_bad_arguments(kwargs: dict, bad_arg: str) -> None:
    args = {"payload_len": 13, "spreading_factor": 7, "bandwidth_hz": 125_000} | kwargs
    with pytest.raises(ValueError, match=bad_arg):
        time_on_air(**args)


@pytest.mark.parametrize(
    ("sf", "bw", "bad_arg"), [(4, 125_000, "spreading_factor"), (7, 100_000, "bandwidth_hz")]
)
def test_symbol_time_rejects_bad_arguments(sf: int, bw: int, bad_arg: str) -> None:
    with pytest.raises(ValueError, match=bad_arg):
        symbol_time(sf, bw)


@pytest.mark.parametrize(
    ("payload_len", "bitrate", "bad_arg"), [(-1, 50_000, "payload_len"), (10, 0, "bitrate")]
)
def test_fsk_rejects_bad_arguments(payload_len: int, bitrate: int, bad_arg: str) -> None:
    with pytest.raises(ValueError, match=bad_arg):
        fsk_time_on_air(payload_len, bitrate)


def test_time_on_air_dr_rejects_a_bad_payload() -> None:
    with pytest.raises(ValueError, match="payload_len"):
        time_on_air_dr(get_region("EU868"), 5, 300)


# -- properties ---------------------------------------------------------------------------------

lora_settings = st.fixed_dictionaries(
    {
        "bandwidth_hz": st.sampled_from([125_000, 250_000, 500_000]),
        "coding_rate": st.integers(1, 4),
        "explicit_header": st.booleans(),
        "crc": st.booleans(),
    }
)


@given(settings=lora_settings, sf=st.integers(6, 12), payload_len=st.integers(0, 254))
def test_airtime_is_non_decreasing_in_payload_length(settings: dict, sf: int, payload_len: int) -> None:
    shorter = time_on_air(payload_len, sf, **settings)
    longer = time_on_air(payload_len + 1, sf, **settings)
    assert longer >= shorter
    # ... and grows by at most one block of (CR + 4) symbols per byte.
    one_block = (settings["coding_rate"] + 4) * symbol_time(sf, settings["bandwidth_hz"])
    assert longer - shorter <= one_block + 1e-12


@given(settings=lora_settings, sf=st.integers(6, 11), payload_len=st.integers(0, 255))
def test_airtime_increases_with_spreading_factor(settings: dict, sf: int, payload_len: int) -> None:
    assert time_on_air(payload_len, sf + 1, **settings) > time_on_air(payload_len, sf, **settings)


@given(payload_len=st.integers(0, 255), sf=st.integers(7, 12))
def test_wider_bandwidth_is_faster(payload_len: int, sf: int) -> None:
    toa = [time_on_air(payload_len, sf, bw) for bw in (125_000, 250_000, 500_000)]
    assert toa[0] > toa[1] > toa[2]
