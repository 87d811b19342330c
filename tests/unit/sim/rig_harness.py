"""A virtual rig driven the way the framework will drive a real one: pyserial on the console,
pyvisa-py on the SCPI instruments, the reference network server behind the gateway transport.
No test lives here."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyvisa
import serial

from drivers.gateway.chirpstack_mqtt import ChirpStackMqttTransport
from drivers.gateway.semtech_udp import SemtechUdpTransport
from hil.clock import Deadline, ScaledClock
from hil.network import DeviceConfig, NetworkServer
from hil.network.application import ApplicationUplink
from hil.relay.protocol import FPORT, RelayKey, RelayMessage, decode
from hil.sim.config import SimConfig, load_sim_config
from hil.sim.rig import VirtualRig

ROOT = Path(__file__).resolve().parents[3]


def sim_config(**dut: Any) -> SimConfig:
    """rigs/sim.yaml with some ``dut`` fields (or ``time_scale``/``gateway``/``feedback``) replaced."""
    base = load_sim_config(ROOT / "rigs" / "sim.yaml")
    top = {k: dut.pop(k) for k in ("time_scale", "gateway", "feedback") if k in dut}
    if "gateway" in top:
        top["gateway"] = base.gateway.model_copy(update=top["gateway"])
    if "feedback" in top:
        top["feedback"] = base.feedback.model_copy(update=top["feedback"])
    return base.model_copy(update={"dut": base.dut.model_copy(update=dut), **top})


@dataclass
class Bench:
    """The rig plus the clients a test uses."""

    rig: VirtualRig
    ns: NetworkServer
    console: serial.Serial
    psu: Any
    dmm: Any
    uplinks: "queue.Queue[ApplicationUplink]" = field(default_factory=queue.Queue)
    transcript: list[str] = field(default_factory=list)

    @property
    def clock(self) -> ScaledClock:
        return self.rig.clock

    def expect(self, pattern: str, timeout_rig_s: float = 60.0) -> str:
        """Read console lines until one contains ``pattern``; AssertionError with the tail if not."""
        deadline = Deadline.after(self.clock, timeout_rig_s)
        while not deadline.expired:
            self.console.timeout = max(0.01, self.clock.real_seconds(deadline.remaining))
            line = self.console.readline().decode("ascii", "replace").strip()
            if line:
                self.transcript.append(line)
                if pattern in line:
                    return line
        tail = "\n".join(self.transcript[-10:])
        raise AssertionError(f"console: expected {pattern!r} within {timeout_rig_s} rig s; last lines:\n{tail}")

    def send(self, line: str) -> None:
        self.console.write(line.encode() + b"\r\n")

    def power(self, on: bool, volts: float = 5.0) -> None:
        self.psu.write(f"VOLT {volts},(@1)")
        self.psu.write("CURR 0.5,(@1)")
        self.psu.write(f"OUTP {1 if on else 0},(@1)")
        assert self.psu.query("*OPC?").strip() == "1"

    def relay_uplink(self, key: RelayKey, timeout_rig_s: float = 30.0) -> RelayMessage:
        """The next relay packet the network delivered on FPort 10."""
        deadline = Deadline.after(self.clock, timeout_rig_s)
        while not deadline.expired:
            try:
                up = self.uplinks.get(timeout=self.clock.real_seconds(deadline.remaining))
            except queue.Empty:
                break
            if up.fport == FPORT:
                return decode(up.payload, key)
        raise AssertionError(f"no relay uplink within {timeout_rig_s} rig s")


def open_bench(config: SimConfig) -> Iterator[Bench]:
    """Start the rig, the network server on its gateway, and the clients; close all at the end."""
    udp = None
    if config.gateway.transport == "semtech-udp":
        udp = SemtechUdpTransport(clock=ScaledClock(config.time_scale))
    rig = VirtualRig(config, udp_server=udp.address if udp else None)
    rm = None
    opened: list[Any] = []
    try:
        ep = rig.start()
        from hil.lorawan.region import get_region

        if udp is not None:
            udp.clock = rig.clock
            transport: Any = udp
        else:
            host, port = ep.mqtt_url.removeprefix("mqtt://").split(":")  # type: ignore[union-attr]
            transport = ChirpStackMqttTransport(host, int(port), topic_prefix=config.gateway.topic_prefix,
                                                clock=rig.clock)
        ns = NetworkServer(get_region(config.dut.region), rig.clock, net_id=0x000013, transport=transport)
        opened.append(ns)
        d = config.dut
        ns.add_device(DeviceConfig(dev_eui=d.dev_eui, join_eui=d.join_eui, version=d.lorawan_version,
                                   device_class=d.device_class, app_key=d.app_key,
                                   nwk_key=d.nwk_key or (d.app_key if d.lorawan_version == "1.1" else None)))
        console = serial.Serial(ep.console_path, 115200, timeout=0.1)
        opened.append(console)
        rm = pyvisa.ResourceManager("@py")
        psu = rm.open_resource(ep.psu_resource, read_termination="\n", write_termination="\n", timeout=5000)
        opened.append(psu)
        dmm = None
        if ep.dmm_resource:
            dmm = rm.open_resource(ep.dmm_resource, read_termination="\n", write_termination="\n", timeout=5000)
            opened.append(dmm)
        bench = Bench(rig, ns, console, psu, dmm)
        ns.on_uplink(bench.uplinks.put)
        yield bench
    finally:
        for thing in reversed(opened):
            thing.close()
        if rm is not None:
            rm.close()
        rig.stop()
        if udp is not None:
            udp.close()


def threads_now() -> set[str]:
    return {t.name for t in threading.enumerate()}
