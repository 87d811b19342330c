"""The virtual rig's bench instruments, reached through their real wire protocols.

* :class:`VirtualPsu` — a bench supply (Keysight E36300, Rigol DP800 profiles) over SCPI on a
  raw TCP socket, driving :class:`~hil.sim.power.SupplyChannel` rails;
* :class:`VirtualDmm` — a Keysight 34461A-style DMM reading the relay output's AC volts;
* :class:`ShellyMeter` — a Shelly Gen2 smart meter on MQTT, metering the relay's load circuit.

Drivers open the SCPI instruments with pyvisa-py (``rm.open_resource(instrument.resource)``,
``TCPIP0::127.0.0.1::<port>::SOCKET``) exactly as they open a LAN instrument's port 5025.
Dialects are data: ``profiles/*.yaml``, parsed by :mod:`hil.sim.instruments.scpi`.
"""

from hil.sim.instruments.dmm import DmmProfile, VirtualDmm
from hil.sim.instruments.psu import PsuProfile, VirtualPsu
from hil.sim.instruments.scpi import ProfileError, ScpiEngine, ScpiError, load_profile
from hil.sim.instruments.smart_meter import ShellyConfig, ShellyMeter, SmartMeterError
from hil.sim.instruments.tcp_server import LineServer, ServerError, SocketInstrument

__all__ = [
    "DmmProfile",
    "LineServer",
    "ProfileError",
    "PsuProfile",
    "ScpiEngine",
    "ScpiError",
    "ServerError",
    "ShellyConfig",
    "ShellyMeter",
    "SmartMeterError",
    "SocketInstrument",
    "VirtualDmm",
    "VirtualPsu",
    "load_profile",
]
