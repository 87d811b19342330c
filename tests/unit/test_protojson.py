"""hil.protojson: the protobuf JSON mapping rules ChirpStack Gateway Bridge uses (drivers and virtual rig)."""

from __future__ import annotations

import pytest

from hil import protojson as pj
from hil.protojson import (
    ProtoJsonError,
    ProtoReader,
    camel,
    code_rate_from_enum,
    code_rate_to_enum,
    decode_bytes,
    decode_duration,
    dumps,
    encode_bytes,
    encode_duration,
    message,
)
from hil.sim.gateway.chirpstack_bridge import parse_downlink_frame, uplink_frame_json
from hil.sim.gateway.concentrator import RxPacket


def test_camel_case_names():
    assert camel("phy_payload") == "phyPayload"
    assert camel("time_since_gps_epoch") == "timeSinceGpsEpoch"
    assert camel("frequency") == "frequency"


def test_bytes_standard_base64_with_padding_both_ways():
    assert encode_bytes(bytes.fromhex("c70c7419")) == "xwx0GQ=="
    assert decode_bytes("xwx0GQ==") == bytes.fromhex("c70c7419")
    assert decode_bytes("xwx0GQ") == bytes.fromhex("c70c7419")  # protojson accepts it unpadded
    assert decode_bytes("-_8=") == b"\xfb\xff"  # and URL-safe
    assert decode_bytes("") == b""


@pytest.mark.parametrize("bad", ["xw!x0GQ==", "x", 12, None, ["xw=="], "+/-_"])
def test_bad_base64_names_the_field(bad):
    with pytest.raises(ProtoJsonError, match=r"rxInfo\.context: expected base64"):
        decode_bytes(bad, "rxInfo.context")


@pytest.mark.parametrize("seconds, text", [
    (1, "1s"), (5.0, "5s"), (1.5, "1.500s"), (0, "0s"), (0.000001, "0.000001s"), (2.000000001, "2.000000001s"),
    (-0.25, "-0.250s"), (1.0005, "1.000500s"),
])
def test_duration_strings_both_ways(seconds, text):
    assert encode_duration(seconds) == text
    assert decode_duration(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("bad", ["1", "1.s", "s", "1.0000000001s", "1 s", 1, None, "+1s"])
def test_bad_duration_is_rejected_with_its_path(bad):
    with pytest.raises(ProtoJsonError, match=r"timing\.delay\.delay: expected a duration"):
        decode_duration(bad, "timing.delay.delay")


def test_duration_out_of_range():
    with pytest.raises(ProtoJsonError, match="range"):
        encode_duration(4e11)
    with pytest.raises(ProtoJsonError, match="finite"):
        encode_duration(float("nan"))


@pytest.mark.parametrize("rate, name", [("4/5", "CR_4_5"), ("4/8", "CR_4_8"), ("4/5LI", "CR_LI_4_5"),
                                        ("2/6", "CR_2_6")])
def test_code_rate_enum_names_both_ways(rate, name):
    assert code_rate_to_enum(rate) == name
    assert code_rate_from_enum(name) == rate


def test_code_rate_numbers_and_default():
    assert code_rate_from_enum(1) == "4/5"
    assert code_rate_from_enum(None) is None  # omitted = CR_UNDEFINED
    assert code_rate_from_enum("CR_UNDEFINED") is None
    with pytest.raises(ProtoJsonError, match="codeRate"):
        code_rate_from_enum("CR_9_9")
    with pytest.raises(ProtoJsonError, match="4/9"):
        code_rate_to_enum("4/9")


def test_message_omits_default_scalars_but_keeps_set_messages():
    body = message(downlink_id=0, gateway_id="", power=0, flag=False, items=[], ctx=b"", name=None,
                   immediately={}, inv=True, freq=868100000, payload=b"\x01")
    assert body == {"immediately": {}, "inv": True, "freq": 868100000, "payload": "AQ=="}
    assert dumps(body) == b'{"immediately":{},"inv":true,"freq":868100000,"payload":"AQ=="}'


def test_reader_defaults_aliases_and_numbers():
    msg = ProtoReader.loads(b'{"rx_info":{"rssi":"-52","uplinkId":7895.0,"snr":"NaN"},"a":null}')
    rx = msg.message("rx_info")
    assert rx.int32("rssi") == -52 and rx.uint32("uplink_id") == 7895
    assert rx.double("snr") != rx.double("snr")  # NaN
    assert rx.bytes("context") == b"" and rx.string("gateway_id") == "" and rx.boolean("x") is False
    assert msg.message("tx_info").uint32("frequency") == 0 and msg.messages("items") == []
    assert rx.duration("time_since_gps_epoch") is None
    assert rx.enum("crc_status", ("NO_CRC", "BAD_CRC", "CRC_OK")) == "NO_CRC"


@pytest.mark.parametrize("payload, match", [
    (b'{"rxInfo":{"rssi":1.5}}', r"rxInfo\.rssi: expected an integer"),
    (b'{"rxInfo":{"rssi":true}}', r"rxInfo\.rssi: expected an integer"),
    (b'{"rxInfo":{"uplinkId":-1}}', r"rxInfo\.uplinkId: expected an integer in 0\.\.4294967295"),
    (b'{"rxInfo":{"uplinkId":4294967296}}', r"rxInfo\.uplinkId"),
    (b'{"rxInfo":{"snr":"abc"}}', r"rxInfo\.snr: expected a number"),
    (b'{"rxInfo":{"gatewayId":5}}', r"rxInfo\.gatewayId: expected a string"),
    (b'{"rxInfo":[]}', r"rxInfo: expected an object"),
    (b'{"rxInfo":{"items":{}}}', r"rxInfo\.items: expected a list"),
    (b'{"rxInfo":{"items":[3]}}', r"rxInfo\.items\[0\]: expected an object"),
])
def test_reader_errors_name_the_field(payload, match):
    with pytest.raises(ProtoJsonError, match=match):
        rx = ProtoReader.loads(payload).message("rx_info")
        rx.int32("rssi"), rx.uint32("uplink_id"), rx.double("snr"), rx.string("gateway_id"), rx.messages("items")


@pytest.mark.parametrize("payload, match", [
    (b"\x0a\x04\xc7\x0c\x74\x19\xff", "not UTF-8"), (b"{", "not JSON"), (b"[1]", "expected a JSON object"),
])
def test_reader_rejects_non_objects(payload, match):
    with pytest.raises(ProtoJsonError, match=match):
        ProtoReader.loads(payload, "UplinkFrame")


# -- the virtual gateway's side ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("nanos", "text"),
    [(1_000_000_000, "1s"), (1_500_000_000, "1.500s"), (0, "0s"), (5_000_000_000, "5s"),
     (1_000, "0.000001s"), (1, "0.000000001s"), (250_000_000, "0.250s"), (-1_500_000_000, "-1.500s")],
)
def test_duration_round_trip(nanos: int, text: str) -> None:
    assert pj.encode_duration(nanos / 1e9) == text
    assert round(pj.decode_duration(text) * 1e9) == nanos


def test_duration_reader_is_lenient_on_digits_and_strict_on_shape() -> None:
    assert pj.decode_duration("1.5s") == 1.5
    assert pj.encode_duration(2.0) == "2s"
    for bad in ("1", "1.5", "s", "1.0000000001s", "1 s", 5, None):
        with pytest.raises(pj.ProtoJsonError, match="delay"):
            pj.decode_duration(bad, "delay")


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
    assert pj.code_rate_to_enum("4/5") == "CR_4_5"
    assert pj.code_rate_to_enum("4/8LI") == "CR_LI_4_8"
    assert pj.code_rate_from_enum("CR_4_6") == "4/6"
    assert pj.code_rate_from_enum("CR_LI_4_5") == "4/5LI"
    # protojson accepts enum numbers; CR_UNDEFINED reads as "no code rate" (the caller decides)
    assert pj.code_rate_from_enum(1) == "4/5"
    assert pj.code_rate_from_enum("CR_UNDEFINED") is None
    for bad in ("4/5", 99, True):
        with pytest.raises(pj.ProtoJsonError):
            pj.code_rate_from_enum(bad)
    with pytest.raises(pj.ProtoJsonError):
        pj.code_rate_to_enum("CR_4_5")


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


def test_downlink_with_an_undefined_code_rate_is_refused() -> None:
    doc = (b'{"downlinkId":7,"items":[{"phyPayload":"YKb+agGgAwCSzNbb","txInfo":{"frequency":867300000,'
           b'"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_UNDEFINED"}},'
           b'"timing":{"immediately":{}}}}]}')
    with pytest.raises(ValueError, match=r"items\[0\]\.\.\.codeRate: expected a code rate"):
        parse_downlink_frame(doc)
