"""The virtual rig as a rig-file provider: starts it and hands out its endpoints as ``${sim:NAME}`` values.

A rig file's ``sim:`` section is handed to :class:`SimProvider` by the rig-file loader
(``hil.rigfile.loader.PROVIDERS``); :meth:`SimProvider.start` starts :class:`~hil.sim.rig.VirtualRig`
and returns the value of each placeholder name:

==============  ===============================================================================
``console``     the DUT console's pty path
``psu``         the supply's VISA resource (``TCPIP0::127.0.0.1::<port>::SOCKET``)
``mains``       the AC source feeding the relay's contact (VISA resource; on at ``sim.mains.voltage_rms``)
``dmm``         the multimeter's VISA resource (feedback kind dmm)
``mqtt``        the broker URL, ``mqtt://127.0.0.1:<port>`` (ChirpStack gateway or smart meter)
``udp``         ``host:port`` the network server binds for Semtech UDP (the forwarder sends there)
``gateway_id``  the virtual gateway's id (16 hex digits)
``shelly_prefix``  the smart meter's MQTT topic prefix (feedback kind shelly)
``handler``     the unit handler's VISA resource (with a ``handler:`` section)
``probe_uid``   the DUT's simulated SWD probe for pyocd in this process (``hilsim:<unit>``)
``probe_server``  the same probe through pyocd's TCP probe server (``remote:127.0.0.1:<port>``;
                ``sim.swd.probe_server``), usable as a probe_uid from any process
``swd_target``  the pyocd target type of the virtual MCU (``hil_relay_node``)
==============  ===============================================================================
"""

from __future__ import annotations

import socket

from hil.clock import Clock
from hil.sim.config import SimConfig
from hil.sim.rig import RigEndpoints, VirtualRig
from hil.sim.scheduler import LATE_S

__all__ = ["SimProvider"]

_UDP_HOST = "127.0.0.1"


def _free_udp_port(host: str = _UDP_HOST) -> int:
    """A UDP port free right now. The network server binds it a moment later; another process taking
    it in between would make that bind fail loudly (TransportConnectError), never misroute packets."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SimProvider:
    """Brings up the virtual rig of a ``sim:`` section; ``.rig`` is the running :class:`VirtualRig`."""

    def __init__(self, sim_config: SimConfig) -> None:
        self.config = sim_config
        self.rig: VirtualRig | None = None
        self.endpoints: RigEndpoints | None = None

    def provides(self) -> frozenset[str]:
        """The placeholder names :meth:`start` fills in for this configuration."""
        c = self.config
        names = {"console", "psu", "mains", "gateway_id"}
        if c.feedback.kind == "dmm":
            names.add("dmm")
        else:
            names.add("shelly_prefix")
        if c.gateway.transport == "chirpstack-mqtt" or c.feedback.kind == "shelly":
            names.add("mqtt")
        if c.gateway.transport == "semtech-udp":
            names.add("udp")
        if c.handler is not None:
            names.add("handler")
        names.update({"probe_uid", "swd_target"} | ({"probe_server"} if c.swd.probe_server else set()))
        return frozenset(names)

    @property
    def clock(self) -> Clock | None:
        """The virtual rig's clock (rig time), once started."""
        return self.rig.clock if self.rig is not None else None

    def start(self) -> dict[str, str]:
        """Start the virtual rig; the value of each placeholder name in :meth:`provides`."""
        if self.rig is not None:
            raise RuntimeError("the virtual rig is already started")
        udp_server = None
        if self.config.gateway.transport == "semtech-udp":
            udp_server = (_UDP_HOST, _free_udp_port())
        self.rig = VirtualRig(self.config, udp_server=udp_server)
        ep = self.endpoints = self.rig.start()
        values = {"console": ep.console_path, "psu": ep.psu_resource, "gateway_id": ep.gateway_id}
        optional = {"mains": ep.mains_resource, "dmm": ep.dmm_resource, "mqtt": ep.mqtt_url, "udp": ep.udp_server,
                    "shelly_prefix": ep.shelly_topic_prefix, "probe_uid": ep.probe_uid,
                    "probe_server": ep.probe_server, "swd_target": ep.swd_target}
        values.update({name: value for name, value in optional.items() if value is not None})
        values.update({k: v for k, v in ep.extra.items() if k == "handler"})
        return values

    def diagnostics(self) -> list[str]:
        """Lines for the test report: how late the virtual rig ran its callbacks."""
        if self.rig is None:
            return []
        sched = self.rig.scheduler
        lag_ms = sched.max_lag_s * 1000
        scale = self.rig.clock.time_scale
        # Decisions use exact timestamps; lag matters where real I/O races rig time. A few late
        # callbacks are a stalled host (an import, a busy neighbour process); many mean the scale
        # is too high for this machine.
        if sched.late_callbacks == 0:
            verdict = "fine"
        elif sched.late_callbacks <= max(1, sched.callbacks // 100):
            verdict = (f"{sched.late_callbacks} of {sched.callbacks} callbacks over {LATE_S * 1000:.0f} ms late: "
                       "the host stalled now and then")
        else:
            verdict = (f"{sched.late_callbacks} of {sched.callbacks} callbacks over {LATE_S * 1000:.0f} ms late: "
                       "the host is too slow for this time_scale: lower it")
        lines = [f"virtual rig: callbacks ran up to {lag_ms:.1f} ms of rig time late at time_scale {scale:g} ({verdict})"]
        if self.rig.clock.stalls:
            lines.append(f"virtual rig: {self.rig.clock.describe_stalls()}")
        return lines

    def stop(self) -> None:
        """Leave the virtual rig safe and stop it (no thread, process or port left). Safe to call twice."""
        if self.rig is not None:
            self.rig.stop()

    def __repr__(self) -> str:
        state = "running" if self.rig is not None and self.endpoints is not None else "idle"
        return f"SimProvider({state})"
