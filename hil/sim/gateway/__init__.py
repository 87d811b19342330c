"""The virtual reference gateway: a LoRa concentrator on the rig's radio medium and the packet
forwarders a real gateway runs in front of it.

* :class:`Concentrator` hears uplinks on its channel plan, stamps them with the 32-bit ``tmst``
  counter and transmits what is scheduled, judged like the Semtech JIT queue judges it.
* :class:`ChirpStackBridge` speaks ChirpStack Gateway Bridge v4 JSON over MQTT.
* :class:`SemtechForwarder` speaks the Semtech UDP packet-forwarder protocol v2.

The network-server side of both transports lives in ``drivers/gateway``.
"""

from hil.sim.gateway.chirpstack_bridge import BridgeConnectionError, ChirpStackBridge
from hil.sim.gateway.concentrator import (
    TMST_MODULO,
    TOO_EARLY_US,
    TOO_LATE_US,
    Concentrator,
    GatewayError,
    RxChannel,
    RxPacket,
    TxRequest,
    tmst_add,
    tmst_diff,
)
from hil.sim.gateway.semtech_forwarder import ForwarderError, ForwarderStats, SemtechForwarder

__all__ = [
    "TMST_MODULO",
    "TOO_EARLY_US",
    "TOO_LATE_US",
    "BridgeConnectionError",
    "ChirpStackBridge",
    "Concentrator",
    "ForwarderError",
    "ForwarderStats",
    "GatewayError",
    "RxChannel",
    "RxPacket",
    "SemtechForwarder",
    "TxRequest",
    "tmst_add",
    "tmst_diff",
]
