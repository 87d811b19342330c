"""The protobuf JSON mapping helpers of the virtual gateway (Go protojson conventions)."""

from __future__ import annotations

import pytest

from hil.sim.gateway import protojson as pj
from hil.sim.gateway.chirpstack_bridge import parse_downlink_frame, uplink_frame_json
from hil.sim.gateway.concentrator import RxPacket


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(1_000_000_000, "1s"), (1_500_000_000, "1.500s"), (0, "0s"), (5_000_000_000, "5s"),
     (1_000, "0.000001s"), (1, "0.000000001s"), (250_000_000, "0.250s"), (-1_500_000_000, "-1.500s")],
)
def test_duration_round_trip(nanos: int, text: str) -> None:
    assert pj.format_duration(nanos) == text
    assert pj.parse_duration(text) == nanos


def test_duration_reader_is_lenient_on_digits_and_strict_on_shape() -> None:
    assert pj.parse_duration("1.5s") == 1_500_000_000
    assert pj.duration_from_seconds(2.0) == "2s"
    for bad in ("1", "1.5", "s", "1.0000000001s", "1 s", 5, None):
        with pytest.raises(pj.ProtoJsonError, match="delay"):
            pj.parse_duration(bad, "delay")


def test_timestamp_format_and_parse() -> None:
    assert pj.format_timestamp(1_659_537_463.383634) == "2022-08-03T14:37:43.383634Z"
    assert pj.format_timestamp(1_659_537_463.0) == "2022-08-03T14:37:43Z"
    assert pj.format_timestamp(1_659_537_463.5) == "2022-08-03T14:37:43.500Z"
    assert pj.format_timestamp_ns(1_659_537_463_383_634_108) == "2022-08-03T14:37:43.383634108Z"
    assert pj.parse_timestamp("2022-08-03T14:37:43.383634108Z") == 1_659_537_463_383_634_108
    assert pj.parse_timestamp("2022-08-03T16:37:43+02:00") == 1_659_537_463_000_000_000
    with pytest.raises(pj.ProtoJsonError, match="gwTime"):
        pj.parse_timestamp("yesterday", "gwTime")
    with pytest.raises(pj.ProtoJsonError, match="impossible"):
        pj.parse_timestamp("2022-02-30T00:00:00Z")


def test_bytes_standard_url_safe_and_unpadded() -> None:
    assert pj.encode_bytes(bytes.fromhex("c70c7419")) == "xwx0GQ=="
    assert pj.decode_bytes("xwx0GQ==") == bytes.fromhex("c70c7419")
    assert pj.decode_bytes("xwx0GQ") == bytes.fromhex("c70c7419")
    assert pj.decode_bytes("-_8=") == b"\xfb\xff"
    assert pj.decode_bytes("") == b""
    for bad in ("***", "x", 12, None):
        with pytest.raises(pj.ProtoJsonError, match="phyPayload"):
            pj.decode_bytes(bad, "phyPayload")


def test_integers_as_numbers_or_strings() -> None:
    assert pj.parse_uint32(894104280) == 894104280
    assert pj.parse_uint32("894104280") == 894104280
    assert pj.parse_uint32(7.0) == 7
    assert pj.parse_int32("-14") == -14
    for bad in (-1, 2**32, "12a", True, 1.5, None):
        with pytest.raises(pj.ProtoJsonError, match="downlinkId"):
            pj.parse_uint32(bad, "downlinkId")


def test_code_rates() -> None:
    assert pj.code_rate_to_proto("4/5") == "CR_4_5"
    assert pj.code_rate_to_proto("4/8LI") == "CR_LI_4_8"
    assert pj.code_rate_from_proto("CR_4_6") == "4/6"
    assert pj.code_rate_from_proto("CR_LI_4_5") == "4/5LI"
    for bad in ("CR_UNDEFINED", 1, "4/5"):
        with pytest.raises(pj.ProtoJsonError):
            pj.code_rate_from_proto(bad)
    with pytest.raises(pj.ProtoJsonError):
        pj.code_rate_to_proto("CR_4_5")


def test_defaults_are_omitted_but_set_messages_stay() -> None:
    message = {
        "gatewayId": "0016c001f153a14c", "downlinkId": 0, "channel": 0, "snr": 0.0, "flag": False,
        "items": [{"status": "OK"}, {}], "empty": [], "timing": {"immediately": {}}, "context": "",
    }
    assert pj.without_defaults(message) == {
        "gatewayId": "0016c001f153a14c", "items": [{"status": "OK"}, {}], "timing": {"immediately": {}},
    }


def test_uplink_frame_json_matches_chirpstack_shape() -> None:
    packet = RxPacket(bytes.fromhex("80a6fe6a018005000138873a7304"), 867_300_000, 7, 125_000, "4/5", -52.4, 13.75,
                      3_339_482_137, 12.5, 0)
    body = uplink_frame_json(packet, "0016c001f153a14c", 7895, 1_659_537_463.383634)
    assert body == {
        "phyPayload": "gKb+agGABQABOIc6cwQ=",
        "txInfo": {"frequency": 867300000,
                   "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}},
        "rxInfo": {"gatewayId": "0016c001f153a14c", "uplinkId": 7895, "gwTime": "2022-08-03T14:37:43.383634Z",
                   "rssi": -52, "snr": 13.75, "context": "xwx0GQ==", "crcStatus": "CRC_OK"},
    }


def test_parse_the_chirpstack_documentation_downlink() -> None:
    doc = (b'{"downlinkId":894104280,"items":[{"phyPayload":"YKb+agGgAwCSzNbb","txInfo":{"frequency":867300000,'
           b'"power":14,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5",'
           b'"polarizationInversion":true}},"timing":{"delay":{"delay":"1s"}},"context":"xwx0GQ=="}},'
           b'{"phyPayload":"YKb+agGgAwCSzNbb","txInfo":{"frequency":869525000,"power":27,"modulation":{"lora":'
           b'{"bandwidth":125000,"spreadingFactor":12,"codeRate":"CR_4_5","polarizationInversion":true}},'
           b'"timing":{"delay":{"delay":"2s"}},"context":"xwx0GQ=="}}],"gatewayId":"0016c001f153a14c"}')
    frame = parse_downlink_frame(doc)
    assert frame.downlink_id == 894104280
    rx1, rx2 = frame.items
    assert (rx1.frequency_hz, rx1.spreading_factor, rx1.power_dbm, rx1.timing.delay_us) == (867_300_000, 7, 14, 1_000_000)
    assert (rx2.frequency_hz, rx2.spreading_factor, rx2.power_dbm, rx2.timing.delay_us) == (869_525_000, 12, 27, 2_000_000)
    assert rx1.context == bytes.fromhex("c70c7419") and rx1.polarization_inversion
    assert rx1.code_rate == "4/5"
