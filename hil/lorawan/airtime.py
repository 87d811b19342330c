"""LoRa and FSK time on air.

LoRa uses Semtech's formula (SX1276/77/78/79 datasheet §4.1.1.7, AN1200.13 "LoRa Modem Designer's Guide")::

    T_sym      = 2^SF / BW
    T_preamble = (n_preamble + 4.25) * T_sym
    n_payload  = 8 + max(ceil((8*PL - 4*SF + 28 + 16*CRC - 20*IH) / (4*(SF - 2*DE))) * (CR + 4), 0)
    T_packet   = T_preamble + n_payload * T_sym

with CR 1..4 for 4/5..4/8, IH = 1 for an implicit header, DE = 1 with low-data-rate optimisation.
LoRaWAN uses CR 4/5, an explicit header and 8 preamble symbols; uplinks carry a payload CRC,
downlinks do not. LoRaWAN FSK frames are 5 preamble bytes, 3 sync bytes, a length byte, the
payload and a 2-byte CRC.
"""

from __future__ import annotations

import math

from hil.lorawan.region import Region, RegionError

#: SX127x LoRa bandwidths (Hz); LoRaWAN uses 125, 250 and 500 kHz.
LORA_BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)

#: Low-data-rate optimisation is switched on automatically above this symbol time (seconds).
LDRO_SYMBOL_TIME_S = 0.016

_FSK_OVERHEAD_BYTES = 5 + 3 + 1 + 2  # preamble, sync word, length, CRC


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def symbol_time(spreading_factor: int, bandwidth_hz: int) -> float:
    """LoRa symbol duration in seconds, ``2**SF / BW`` (SF 6..12, BW one of LORA_BANDWIDTHS_HZ)."""
    _check_int("spreading_factor", spreading_factor, 6, 12)
    _check_int("bandwidth_hz", bandwidth_hz, 1, 10**9)
    if bandwidth_hz not in LORA_BANDWIDTHS_HZ:
        raise ValueError(f"bandwidth_hz must be one of {LORA_BANDWIDTHS_HZ}, got {bandwidth_hz}")
    return (1 << spreading_factor) / bandwidth_hz


def time_on_air(
    payload_len: int,
    spreading_factor: int,
    bandwidth_hz: int,
    coding_rate: int = 1,
    preamble_symbols: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
    low_data_rate_optimize: bool | None = None,
) -> float:
    """Time on air in seconds of a LoRa packet with ``payload_len`` PHY payload bytes.

    ``coding_rate`` 1..4 means 4/5..4/8. ``low_data_rate_optimize=None`` switches it on when the
    symbol time exceeds 16 ms (SF11/SF12 at 125 kHz, SF12 at 250 kHz), as the Semtech stack does.
    Raises ValueError naming the offending argument.
    """
    _check_int("payload_len", payload_len, 0, 255)
    _check_int("coding_rate", coding_rate, 1, 4)
    _check_int("preamble_symbols", preamble_symbols, 6, 65535)
    _check_bool("explicit_header", explicit_header)
    _check_bool("crc", crc)
    t_sym = symbol_time(spreading_factor, bandwidth_hz)
    if low_data_rate_optimize is None:
        low_data_rate_optimize = t_sym > LDRO_SYMBOL_TIME_S
    else:
        _check_bool("low_data_rate_optimize", low_data_rate_optimize)

    de = int(low_data_rate_optimize)
    ih = int(not explicit_header)
    numerator = 8 * payload_len - 4 * spreading_factor + 28 + 16 * int(crc) - 20 * ih
    blocks = math.ceil(numerator / (4 * (spreading_factor - 2 * de)))
    payload_symbols = 8 + max(blocks * (coding_rate + 4), 0)
    return (preamble_symbols + 4.25) * t_sym + payload_symbols * t_sym


def fsk_time_on_air(payload_len: int, bitrate: int) -> float:
    """Time on air in seconds of a LoRaWAN FSK frame: (5 + 3 + 1 + payload + 2) bytes at ``bitrate`` bit/s."""
    _check_int("payload_len", payload_len, 0, 255)
    _check_int("bitrate", bitrate, 1, 10**7)
    return (_FSK_OVERHEAD_BYTES + payload_len) * 8 / bitrate


def time_on_air_dr(region: Region, dr: int, payload_len: int, uplink: bool = True) -> float:
    """Time on air in seconds of a ``payload_len``-byte PHYPayload sent at ``region`` data rate ``dr``.

    LoRa: CR 4/5, explicit header, 8 preamble symbols, CRC on uplinks only. FSK: see fsk_time_on_air.
    RegionError if ``dr`` is unknown or not usable in that direction (US915 DR8-13 are downlink-only).
    """
    _check_bool("uplink", uplink)
    rate = region.data_rate(dr)
    if not (rate.uplink if uplink else rate.downlink):
        direction = "uplink" if uplink else "downlink"
        raise RegionError(f"{region.name} DR{dr} is not a {direction} data rate")
    if rate.modulation == "FSK":
        assert rate.bitrate is not None
        return fsk_time_on_air(payload_len, rate.bitrate)
    assert rate.spreading_factor is not None and rate.bandwidth_hz is not None
    return time_on_air(payload_len, rate.spreading_factor, rate.bandwidth_hz, crc=uplink)
