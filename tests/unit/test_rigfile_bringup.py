"""Bringing a rig up: providers start, ${provider:name} placeholders are filled in, close() stops all."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from hil.clock import ScaledClock
from hil.rigfile import PlaceholderError, RigUp, bring_up, load_rig
from hil.rigfile.model import ChirpStackMqttGateway, SemtechUdpGateway
from hil.sim.provider import SimProvider
from tests.unit.test_rigfile_support import APP_KEY, load

HERE = "tests.unit.test_rigfile_bringup"


@pytest.fixture
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5.0)  # bounded: a thread still alive after this is a leak
        assert not thread.is_alive(), f"thread {thread.name} left running"


def test_sim_rig_brings_up_real_endpoints_and_stops(no_threads_left: None) -> None:
    rig = load_rig("sim")
    with rig.bring_up() as up:
        resolved = up.rig
        provider = up.providers["sim"]
        assert isinstance(provider, SimProvider) and provider.rig is not None
        assert resolved.placeholders() == [] and resolved.path == rig.path and resolved.name == "sim"
        port = resolved.dut.console.port
        assert port.startswith("/dev/pts/") and os.path.exists(port)
        assert resolved.psu is not None and resolved.psu.resource.startswith("TCPIP0::127.0.0.1::")
        assert resolved.psu.resource.endswith("::SOCKET")
        assert resolved.feedback is not None and resolved.feedback.resource.startswith("TCPIP0::127.0.0.1::")
        gw = resolved.gateway
        assert isinstance(gw, ChirpStackMqttGateway) and gw.host == "127.0.0.1" and not gw.tls
        assert gw.gateway_id == rig.sim.gateway.gateway_id  # type: ignore[union-attr]
        with socket.create_connection((gw.host, gw.port), timeout=5):  # the broker listens
            pass
        assert up.values["sim"]["console"] == port
        assert isinstance(up.clock, ScaledClock) and up.clock is provider.rig.clock
        assert resolved.dut.lorawan == rig.dut.lorawan  # secrets carried over, not re-read
        assert resolved.dut.relay is not None and rig.dut.relay is not None
        assert resolved.dut.relay.passphrase.get_secret_value() == rig.dut.relay.passphrase.get_secret_value()
        broker = provider.rig.broker
        assert "up" in repr(up)
    assert broker is not None and broker.process.poll() is not None
    assert not os.path.exists(port)
    assert rig.placeholders() != []  # the loaded model is left as it was
    up.close()  # twice is fine
    assert "closed" in repr(up)


def test_semtech_udp_rig_gets_a_free_bind_address(tmp_path: Path, no_threads_left: None) -> None:
    rig = load(tmp_path, {
        "dut": {"console": {"port": "${sim:console}"}},
        "gateway": {"transport": "semtech-udp", "bind": "${sim:udp}"},
        "sim": {"dut": {"app_key": APP_KEY}, "gateway": {"transport": "semtech-udp"}, "time_scale": 50},
    })
    with bring_up(rig) as up:
        gw = up.rig.gateway
        assert isinstance(gw, SemtechUdpGateway) and gw.host == "127.0.0.1" and gw.port > 0
        sim_rig = up.providers["sim"].rig  # type: ignore[attr-defined]
        assert sim_rig.endpoints.udp_server == gw.bind  # the forwarder sends where the network binds
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((gw.host, gw.port))  # free for the network server


def test_rig_without_providers_comes_up_unchanged(tmp_path: Path) -> None:
    rig = load(tmp_path, {})
    with rig.bring_up() as up:
        assert up.rig is rig and up.providers == {} and up.clock is None


# -- failures, with providers that only pretend ------------------------------------------------------

class FakeProvider:
    """Hands out fixed values; records start and stop."""

    instances: list["FakeProvider"] = []
    values: dict[str, str] = {}
    fail = False

    def __init__(self, section: Any) -> None:
        self.section = section
        self.started = self.stopped = False
        FakeProvider.instances.append(self)

    def provides(self) -> frozenset[str]:
        return frozenset(self.values)

    def start(self) -> dict[str, str]:
        self.started = True
        if self.fail:
            raise RuntimeError("instrument unreachable")
        return dict(self.values)

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeProvider]:
    monkeypatch.setattr(FakeProvider, "instances", [])
    monkeypatch.setattr(FakeProvider, "fail", False)
    monkeypatch.setattr(FakeProvider, "values", {"console": "socket://127.0.0.1:4000"})
    return FakeProvider


def _sim_rig(tmp_path: Path) -> Any:
    return load(tmp_path, {"dut": {"console": {"port": "${sim:console}"}}, "sim": {"dut": {"app_key": APP_KEY}}})


def test_placeholders_filled_from_provider_values(tmp_path: Path, fake: type[FakeProvider]) -> None:
    up = bring_up(_sim_rig(tmp_path), providers={"sim": f"{HERE}:FakeProvider"})
    assert isinstance(up, RigUp) and up.rig.dut.console.port == "socket://127.0.0.1:4000"
    up.close()
    assert fake.instances[-1].stopped


def test_failed_start_stops_what_started(tmp_path: Path, fake: type[FakeProvider]) -> None:
    fake.fail = True
    with pytest.raises(RuntimeError, match="unreachable"):
        bring_up(_sim_rig(tmp_path), providers={"sim": f"{HERE}:FakeProvider"})
    assert fake.instances[-1].started and fake.instances[-1].stopped


def test_value_not_provided_at_bring_up(tmp_path: Path, fake: type[FakeProvider]) -> None:
    fake.values = {}
    with pytest.raises(PlaceholderError) as info:
        bring_up(_sim_rig(tmp_path), providers={"sim": f"{HERE}:FakeProvider"})
    assert "dut.console.port: ${sim:console} was not provided at bring-up" in str(info.value)
    assert fake.instances[-1].stopped


def test_malformed_provided_value_names_the_key(tmp_path: Path, fake: type[FakeProvider]) -> None:
    fake.values = {"console": "not-a-port"}
    with pytest.raises(PlaceholderError) as info:
        bring_up(_sim_rig(tmp_path), providers={"sim": f"{HERE}:FakeProvider"})
    text = str(info.value)
    assert "dut.console.port: after bring-up: expected a pyserial port" in text and "(got 'not-a-port')" in text
    assert fake.instances[-1].stopped
