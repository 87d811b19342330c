"""The reference network and join server: the test bench's own, fully controllable LoRaWAN network.

Gateways reach it through a :class:`GatewayTransport` (MQTT and Semtech UDP transports live in
``drivers/``; :class:`LoopbackTransport` is the in-process one for tests)::

    net = NetworkServer(get_region("EU868"), clock, net_id=NetID(0x13), transport=LoopbackTransport())
    net.add_device(DeviceConfig(dev_eui=..., join_eui=..., app_key=..., version="1.0.4"))
    net.on_uplink(print)
    net.faults.inject(dev_eui, Fault.CORRUPT_MIC)
    net.events.filter(direction="up", outcome="rejected")
"""

from hil.network.application import ApplicationUplink, DownlinkState, QueuedDownlink
from hil.network.devaddr import SequentialDevAddrAllocator, dev_addr_for, in_net_id, nwk_id
from hil.network.errors import (
    DevAddrExhaustedError,
    DeviceConfigError,
    DownlinkError,
    DuplicateDeviceError,
    FaultError,
    NetworkError,
    TransportClosedError,
    UnknownDeviceError,
)
from hil.network.events import EventLog, FrameEvent
from hil.network.faults import ArmedFault, Fault, FaultInjector
from hil.network.registry import DeviceConfig, DeviceRegistry, DeviceState, Session
from hil.network.server import NetworkServer
from hil.network.transport import (
    DownlinkFrame,
    DownlinkItem,
    GatewayTransport,
    LoopbackTransport,
    TxAck,
    TxAckStatus,
    UplinkFrame,
)

__all__ = [
    "ApplicationUplink",
    "ArmedFault",
    "DevAddrExhaustedError",
    "DeviceConfig",
    "DeviceConfigError",
    "DeviceRegistry",
    "DeviceState",
    "DownlinkError",
    "DownlinkFrame",
    "DownlinkItem",
    "DownlinkState",
    "DuplicateDeviceError",
    "EventLog",
    "Fault",
    "FaultError",
    "FaultInjector",
    "FrameEvent",
    "GatewayTransport",
    "LoopbackTransport",
    "NetworkError",
    "NetworkServer",
    "QueuedDownlink",
    "SequentialDevAddrAllocator",
    "Session",
    "TransportClosedError",
    "TxAck",
    "TxAckStatus",
    "UnknownDeviceError",
    "UplinkFrame",
    "dev_addr_for",
    "in_net_id",
    "nwk_id",
]
