"""The virtual rig: every instrument of a bench, emulated at its wire protocol, started together.

``VirtualRig(config).start()`` builds the rig clock and scheduler, the radio medium, a real MQTT
broker, the supply (SCPI over TCP) feeding the virtual DUT, the relay contact with its mains feed
(an AC source over SCPI, on at the configured voltage) and load, the feedback meter (DMM over
SCPI or Shelly over MQTT), the DUT's console on a pty and the reference gateway (ChirpStack
Gateway Bridge JSON over MQTT or Semtech UDP). It returns :class:`RigEndpoints`: what a driver or
a person connects to. ``stop()`` (also on Ctrl-C, through the context manager) switches the
relay and the supply off, then closes everything; no process, thread or port is left.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.lorawan.region import get_region
from hil.sim.broker import Broker, start_broker
from hil.sim.clock import StallFreeClock
from hil.sim.config import SimConfig
from hil.sim.dut.console import Console, open_console
from hil.sim.dut.defects import validate_defects
from hil.sim.dut.firmware import FactoryDefaults, Firmware
from hil.sim.dut.memory import DutMemory
from hil.sim.dut.nvm import Nvm
from hil.sim.gateway.chirpstack_bridge import ChirpStackBridge
from hil.sim.gateway.concentrator import Concentrator
from hil.sim.gateway.semtech_forwarder import SemtechForwarder
from hil.sim.instruments.dmm import VirtualDmm
from hil.sim.instruments.handler import HandledUnit, VirtualHandler
from hil.sim.instruments.psu import VirtualPsu
from hil.sim.instruments.smart_meter import ShellyConfig, ShellyMeter
from hil.sim.mains import MainsConfig, RelayContact
from hil.sim.radio import RadioMedium
from hil.sim.scheduler import Scheduler

log = logging.getLogger(__name__)

PSU_PROFILES = {"keysight-e36300": "psu_keysight_e36300", "rigol-dp800": "psu_rigol_dp800"}
MAINS_PROFILES = {"keysight-ac6800": "psu_keysight_ac6800"}


@dataclass(frozen=True)
class RigEndpoints:
    """Where each part of the virtual rig is reached (what a real rig file would name)."""

    console_path: str
    console_dialect: str
    psu_resource: str
    psu_channel: int
    feedback_kind: str
    dmm_resource: str | None
    mqtt_url: str | None
    shelly_topic_prefix: str | None
    gateway_transport: str
    gateway_id: str
    gateway_topic_prefix: str | None
    udp_forwarder: str | None
    udp_server: str | None
    nvm_file: str
    time_scale: float
    extra: dict[str, Any] = field(default_factory=dict)
    probe_uid: str | None = None  # the DUT's simulated SWD probe, for pyocd in this process (hilsim:<unit>)
    probe_server: str | None = None  # the same probe through pyocd's TCP probe server: remote:host:port
    swd_target: str | None = None  # the pyocd target type of the virtual MCU
    mains_resource: str | None = None  # the AC source feeding the relay's contact (SCPI over TCP)

    def lines(self) -> list[str]:
        """Human-readable, one endpoint a line (printed by ``python -m hil sim``)."""
        out = [
            f"console      {self.console_path}  ({self.console_dialect} AT dialect, 115200 8N1)",
            f"psu          {self.psu_resource}  (channel {self.psu_channel}; pyvisa-py '@py')",
        ]
        if self.mains_resource:
            out.append(f"mains        {self.mains_resource}  (AC source feeding the relay; OUTP ON|OFF)")
        if self.dmm_resource:
            out.append(f"dmm          {self.dmm_resource}  (relay output, AC volts)")
        if self.mqtt_url:
            out.append(f"mqtt broker  {self.mqtt_url}")
        if self.shelly_topic_prefix:
            out.append(f"smart meter  {self.shelly_topic_prefix}/status/switch:0  (Shelly Gen2 over MQTT)")
        if self.gateway_transport == "chirpstack-mqtt":
            prefix = self.gateway_topic_prefix or ""
            out.append(f"gateway      {prefix}gateway/{self.gateway_id}/event/up | command/down | event/ack | state/conn")
        else:
            out.append(f"gateway      Semtech UDP {self.udp_forwarder} -> network server {self.udp_server}"
                       f"  (EUI {self.gateway_id})")
        out.append(f"dut nvm      {self.nvm_file}")
        if self.probe_uid:
            out.append(f"swd probe    {self.probe_uid}  (pyocd target {self.swd_target}; this process only)")
        if self.probe_server:
            out.append(f"swd server   {self.probe_server}  <- pyocd commander -u {self.probe_server} "
                       f"-t {self.swd_target}  (with the DUT powered)")
        out.append(f"time scale   {self.time_scale:g} rig s per real s")
        return out


class VirtualRig:
    """A whole virtual bench. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, config: SimConfig, *, udp_server: tuple[str, int] | None = None) -> None:
        self.config = config
        self._udp_server = udp_server
        validate_defects(config.dut.defects, where="sim.dut.defects")
        self.clock = StallFreeClock(config.time_scale)
        self.scheduler = Scheduler(self.clock)
        self.region = get_region(config.dut.region)
        self.medium = RadioMedium(self.scheduler, path_loss_db=config.gateway.path_loss_db)
        self.broker: Broker | None = None
        self.psu: VirtualPsu | None = None
        self.contact: RelayContact | None = None
        self.mains: VirtualPsu | None = None  # the AC source feeding the contact
        self.firmware: Firmware | None = None
        self.console: Console | None = None
        self.dmm: VirtualDmm | None = None
        self.shelly: ShellyMeter | None = None
        self.concentrator: Concentrator | None = None
        self.bridge: ChirpStackBridge | SemtechForwarder | None = None
        self.handler: VirtualHandler | None = None
        self.swd_unit: Any = None  # hil.sim.swd.DebugUnit: the DUT's MCU behind the simulated SWD probe
        self.probe_server: Any = None  # hil.sim.swd.server.ProbeServer
        self.dut_unique_id: bytes | None = None  # the MCU unique ID of the unit in the fixture (handler)
        self.endpoints: RigEndpoints | None = None
        self._tempdir: str | None = None
        self._stack: list[Any] = []  # what stop() closes, last started first

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> RigEndpoints:
        """Start every part; on any failure, stop what was started and re-raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RigEndpoints:
        c = self.config
        self.clock.start()
        self._stack.append(self.clock.stop)
        self.scheduler.start()
        self._stack.append(self.scheduler.stop)
        needs_broker = c.gateway.transport == "chirpstack-mqtt" or c.feedback.kind == "shelly"
        if needs_broker:
            self.broker = start_broker(c.broker)
            self._stack.append(self.broker.stop)

        self.psu = VirtualPsu(PSU_PROFILES[c.psu.dialect], scheduler=self.scheduler)
        psu_host, psu_port = self.psu.start()
        self._stack.append(self.psu.stop)
        supply = self.psu.channel(c.psu.channel)

        m = c.mains
        self.contact = RelayContact(self.scheduler, MainsConfig(
            voltage_rms=m.voltage_rms, frequency_hz=m.frequency_hz, load_ohms=m.load_ohms,
            operate_time_s=m.operate_time_s, release_time_s=m.release_time_s,
        ))
        mains_resource = self._start_mains()

        nvm_path = c.dut.nvm_file
        if nvm_path is None:
            self._tempdir = tempfile.mkdtemp(prefix="hil-sim-")
            nvm_path = Path(self._tempdir) / "dut-nvm.bin"
        nvm = Nvm(self.scheduler, nvm_path)
        d = c.dut
        factory = FactoryDefaults(
            dev_eui=d.dev_eui, join_eui=d.join_eui, app_key=d.app_key, nwk_key=d.nwk_key,
            lorawan_version=d.lorawan_version, activation=d.activation, device_class=d.device_class,
            data_rate=d.data_rate,
            relay_passphrase=d.relay_passphrase.get_secret_value() if d.relay_passphrase else None,
        )
        self.firmware = Firmware(
            self.scheduler, self.medium, self.region, supply, self.contact, nvm,
            factory=factory, defects=frozenset(d.defects), rng=random.Random(c.seed),
            boot_time_s=d.boot_time_s, memory=DutMemory(nvm),
        )
        self._stack.append(self.firmware.close)
        self.console = open_console(d.dialect, self.firmware, self.scheduler)
        self._stack.append(self.console.close)
        self._start_swd(supply)
        if c.handler is not None:
            self.handler = VirtualHandler(c.handler, seed=c.seed, on_unit=self._swap_unit,
                                          dut_powered=lambda: supply.output_on, scheduler=self.scheduler)
            self.handler.start()
            self._stack.append(self.handler.stop)

        dmm_resource = None
        if c.feedback.kind == "dmm":
            self.dmm = VirtualDmm(self.contact.output_voltage_rms, scheduler=self.scheduler)
            self.dmm.start()
            self._stack.append(self.dmm.stop)
            dmm_resource = self.dmm.resource
        else:
            assert self.broker is not None
            self.shelly = ShellyMeter(self.contact, self.scheduler, host=self.broker.host, port=self.broker.port,
                                      config=ShellyConfig(topic_prefix=c.feedback.topic_prefix))
            self.shelly.start()
            self._stack.append(self.shelly.stop)

        self.concentrator = Concentrator(self.medium, self.scheduler, region=self.region.name,
                                         extra_frequencies_hz=c.gateway.extra_channels_hz)
        self._stack.append(self.concentrator.close)
        g = c.gateway
        udp_forwarder = udp_server = None
        if g.transport == "chirpstack-mqtt":
            assert self.broker is not None
            self.bridge = ChirpStackBridge(self.concentrator, self.scheduler, self.broker.host, self.broker.port,
                                           g.gateway_id, topic_prefix=g.topic_prefix, rng=random.Random(c.seed))
        else:
            host, _, port = g.udp_server.rpartition(":")
            server = self._udp_server or (host, int(port))
            self.bridge = SemtechForwarder(self.concentrator, self.scheduler, server[0], server[1], g.gateway_id,
                                           rng=random.Random(c.seed))
            udp_server = f"{server[0]}:{server[1]}"
        self.bridge.start()
        self._stack.append(self.bridge.stop)
        if isinstance(self.bridge, SemtechForwarder):
            fh, fp = self.bridge.local_address
            udp_forwarder = f"{fh}:{fp}"

        self.endpoints = RigEndpoints(
            console_path=self.console.path, console_dialect=d.dialect,
            psu_resource=f"TCPIP0::{psu_host}::{psu_port}::SOCKET", psu_channel=c.psu.channel,
            feedback_kind=c.feedback.kind, dmm_resource=dmm_resource,
            mqtt_url=self.broker.url if self.broker else None,
            shelly_topic_prefix=c.feedback.topic_prefix if self.shelly else None,
            gateway_transport=g.transport, gateway_id=g.gateway_id,
            gateway_topic_prefix=g.topic_prefix if g.transport == "chirpstack-mqtt" else None,
            udp_forwarder=udp_forwarder, udp_server=udp_server, nvm_file=str(nvm_path),
            time_scale=c.time_scale,
            extra={"handler": self.handler.resource} if self.handler is not None else {},
            probe_uid=self.swd_unit.probe_uid, swd_target=self.swd_unit.target,
            probe_server=self.probe_server.probe_uid if self.probe_server is not None else None,
            mains_resource=mains_resource,
        )
        return self.endpoints

    def _start_mains(self) -> str:
        """The relay's mains feed: an AC source (SCPI over TCP) whose output is the contact's input,
        on at ``sim.mains.voltage_rms`` (a bench source left on); its VISA resource."""
        assert self.contact is not None
        m = self.config.mains
        self.mains = VirtualPsu(MAINS_PROFILES[m.dialect], scheduler=self.scheduler)
        feed = self.mains.channel(1)
        feed.attach(self.contact, self.contact.feed)  # the contact (and the lamp behind it) is its load
        self.contact.subscribe(lambda closed: feed.load_changed())
        feed.configure(voltage=m.voltage_rms)
        feed.set_output(True)
        host, port = self.mains.start()
        self._stack.append(self.mains.stop)
        return f"TCPIP0::{host}::{port}::SOCKET"

    def _start_swd(self, supply: Any) -> None:
        """The DUT's debug port: a simulated SWD probe pyocd opens in this process (``hilsim:<unit>``)
        and, with ``sim.swd.probe_server``, through pyocd's TCP probe server."""
        from hil.sim.swd import DebugUnit, derived_unique_id, new_unit_name, register
        from hil.sim.swd.host import FirmwareHost

        c, fw = self.config, self.firmware
        assert fw is not None and fw.memory is not None
        uid = bytes.fromhex(c.swd.unique_id) if c.swd.unique_id else derived_unique_id(f"{c.seed}:{c.dut.dev_eui}")
        unit = self.swd_unit = DebugUnit(new_unit_name(), fw.memory, host=FirmwareHost(fw), unique_id=uid,
                                         vdd_min=fw.board.spec.brown_out_v)
        supply.attach(unit, unit.on_vdd)  # the debug port lives and dies with the DUT's supply
        unit.on_vdd(supply.terminal_voltage())
        self._stack.append(register(unit))
        if c.swd.probe_server:
            from hil.sim.swd.server import ProbeServer

            self.probe_server = ProbeServer(unit).start()
            self._stack.append(self.probe_server.stop)

    def _swap_unit(self, unit: HandledUnit, fresh: bool) -> None:
        """The handler put ``unit`` in the fixture: a fresh one has erased NVM and the factory image
        (the DUT is unpowered)."""
        assert self.firmware is not None
        if fresh:  # as it left PCB assembly: erased NVM, the factory image in flash
            nvm = self.firmware.nvm
            nvm.poke(0, bytes([nvm.erased_byte]) * nvm.size)
            if self.firmware.memory is not None:
                self.firmware.memory.restore_factory_image()
        self.dut_unique_id = unit.uid
        if self.swd_unit is not None:
            self.swd_unit.set_unique_id(unit.uid)  # the SWD probe reads this unit's MCU unique ID

    def make_safe(self) -> None:
        """Relay coil off and supply output off: what every test and every exit leaves behind."""
        if self.psu is not None:
            for channel in self.psu.channels:
                channel.set_output(False)
        if self.contact is not None:
            self.contact.drive_coil(False)

    def stop(self) -> None:
        """Leave the rig safe, then close every part (last started first). Safe to call twice."""
        try:
            self.make_safe()
        except Exception:  # a rig fault while shutting down must not keep parts running
            log.exception("virtual rig: making the rig safe failed")
        while self._stack:
            closer = self._stack.pop()
            try:
                closer()
            except Exception:
                log.exception("virtual rig: %r failed while stopping", closer)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> "VirtualRig":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
