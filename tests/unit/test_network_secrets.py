"""Reference network: no key ever shows in a repr, str, event, report row, error or log line."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from hil.network import DeviceConfig, Fault, UplinkFrame
from tests.unit.network_support import (
    ALL_KEY_HEX, Device, abp_config, dev_eui, make_server, otaa_config,
)


def _leaks(text: str, secrets: list[str]) -> list[str]:
    low = text.lower()
    return [s for s in secrets if s in low]


def test_no_key_in_any_repr_event_or_log(caplog):
    caplog.set_level(logging.DEBUG)
    server, loop, clock = make_server()
    devices = []
    for n, version in enumerate(["1.0.2", "1.0.4", "1.1"], start=1):
        config = otaa_config(n, version)
        server.add_device(config)
        dev = Device(config, loop, clock)
        dev.joined(0)
        devices.append(dev)
    abp = abp_config(9, "1.1")
    server.add_device(abp)
    devices.append(Device.abp(abp, loop, clock))
    delivered: list = []
    server.on_uplink(delivered.append)
    sent: list = []
    for dev in devices:
        clock.advance(5)
        server.faults.inject(dev.config.dev_eui, Fault.CORRUPT_MIC)
        server.enqueue_downlink(dev.config.dev_eui, 1, b"down", confirmed=True)
        sent += dev.up(1, b"up", confirmed=True)
        dev.send(dev.data(1, b"bad", keys=None)[:-1] + b"\x00")  # a bad MIC
    loop.inject_uplink(UplinkFrame(b"\x00\x01", 868_100_000, 7, 125_000))  # malformed

    secrets = list(ALL_KEY_HEX)
    for dev in devices:  # derived session keys too
        keys = dev.keys
        secrets += [k.reveal_hex() for k in (keys.f_nwk_s_int_key, keys.s_nwk_s_int_key, keys.nwk_s_enc_key, keys.app_s_key)]

    texts = [repr(server), repr(server.registry), repr(server.faults), repr(server.events), repr(loop.sent)]
    for state in server.registry:
        texts += [repr(state), str(state.config), repr(state.config), repr(state.session), repr(state.previous_session)]
        texts += [repr(item) for item in state.queue]
    texts += [repr(e) for e in server.events.events()]
    texts += [str(row) for row in server.events.to_rows()]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(up) for up in delivered]
    texts += [repr(server.downlink(q)) for q in range(1, 5)]
    texts += [repr(frame) for frame in sent]
    leaked = {t[:80]: _leaks(t, secrets) for t in texts if _leaks(t, secrets)}
    assert not leaked
    assert len(server.events) > 10


def test_config_errors_do_not_echo_keys():
    secret = "00112233445566778899aabbccddeefg"  # one bad digit
    with pytest.raises(ValidationError) as info:
        DeviceConfig(dev_eui=dev_eui(1), app_key=secret)
    assert "00112233445566778899" not in str(info.value)
    short = "00112233445566778899aabbccddee"
    with pytest.raises(ValidationError) as info:
        DeviceConfig(dev_eui=dev_eui(1), app_key=short)
    assert short not in str(info.value)
    with pytest.raises(ValidationError) as info:
        DeviceConfig(dev_eui=dev_eui(1), version="1.0.4", app_key="2b7e151628aed2a6abf7158809cf4f3c",
                      nwk_key="603deb1015ca71be2b73aef0857d7781")
    assert not _leaks(str(info.value), list(ALL_KEY_HEX))
