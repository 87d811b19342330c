"""A virtual rig driven the way the framework drives a real one: pyserial on the console,
pyvisa-py on the SCPI instruments, the reference network server behind the gateway transport.

Used by ``python -m hil sim --smoke`` (a join and a relay round trip on the virtual bench), by
the virtual-rig tests and by ``bench/bench_virtual_rig.py``.
"""

from __future__ import annotations

import queue
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

DEFAULT_RIG = Path(__file__).resolve().parents[2] / "rigs" / "sim.yaml"


def sim_config(rig_file: Path = DEFAULT_RIG, **dut: Any) -> SimConfig:
    """A rig file's sim: section with some ``dut`` fields (or ``time_scale``/``gateway``/``feedback``) replaced."""
    base = load_sim_config(rig_file)
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


# Console words of each dialect the smoke run needs (the full dialects live in hil/sim/dut/console).
_JOINED = {"rak3172": "+EVT:JOINED", "lora-e5": "+JOIN: Network joined"}


def wait_booted(bench: Bench, timeout_rig_s: float = 10.0) -> None:
    """Poke the console with ``AT`` until the DUT answers (it is silent until booted)."""
    deadline = Deadline.after(bench.clock, timeout_rig_s)
    while not deadline.expired:
        bench.send("AT")
        try:
            bench.expect("OK", timeout_rig_s=min(1.0, max(0.05, deadline.remaining)))
            return
        except AssertionError:
            continue
    raise AssertionError(f"the DUT did not answer AT within {timeout_rig_s} rig s of power-up")


def smoke(config: SimConfig, say: Any = print) -> None:
    """Power up, join and switch the relay on and off through the network; raise AssertionError if
    any step fails. Each step is printed with its rig time."""
    from hil.relay.protocol import Command, encode

    passphrase = config.dut.relay_passphrase
    if passphrase is None:
        raise AssertionError("the rig file sets no sim.dut.relay_passphrase: the relay cannot be commanded")
    key = RelayKey(passphrase.get_secret_value())
    for bench in open_bench(config):
        t = bench.clock.now
        say(f"[{t():8.3f}] rig up: " + "; ".join(bench.rig.endpoints.lines()[:2]))  # type: ignore[union-attr]
        bench.power(True)
        wait_booted(bench)
        say(f"[{t():8.3f}] DUT answers on its console ({config.dut.dialect})")
        bench.send("AT+JOIN")
        bench.expect(_JOINED[config.dut.dialect], timeout_rig_s=120)
        say(f"[{t():8.3f}] joined")
        hello = bench.relay_uplink(key)
        say(f"[{t():8.3f}] relay says expected counter {hello.fcnt}, output {'on' if hello.relay_state else 'off'}")
        fcnt = hello.fcnt
        for on in (True, False):
            cmd = RelayMessage(Command.SET_OUTPUT, fcnt, 0, bytes([int(on), 0, 0, 0, 0, 0]))
            bench.ns.enqueue_downlink(config.dut.dev_eui, FPORT, encode(cmd, key))
            answer = bench.relay_uplink(key)
            fcnt += 1
            volts = float(bench.dmm.query("MEAS:VOLT:AC?")) if bench.dmm is not None else None
            say(f"[{t():8.3f}] SET {'on' if on else 'off'}: relay reports {answer.output_voltage} V, "
                f"meter reads {volts} V")
            if answer.relay_state != on or answer.mains_sensed != on:
                raise AssertionError(f"SET {'on' if on else 'off'}: the relay answered state {answer.relay_state}, "
                                     f"mains sensed {answer.mains_sensed}")
        bench.power(False)
        say(f"[{t():8.3f}] supply off; smoke run passed")
