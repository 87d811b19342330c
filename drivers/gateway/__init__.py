"""Gateway drivers: the network-server side of the two gateway protocols.

Each is a :class:`hil.network.transport.GatewayTransport` for :class:`hil.network.NetworkServer`:

* :class:`ChirpStackMqttTransport` talks to a ChirpStack Gateway Bridge v4 (``marshaler =
  "json"``) through an MQTT broker, as ChirpStack itself does;
* :class:`SemtechUdpTransport` is the server a Semtech UDP packet forwarder (protocol v2) is
  pointed at, as ChirpStack Gateway Bridge's ``semtechudp`` backend is.

Neither knows whether the gateway at the other end is real or virtual. A link that cannot be
set up (no broker, port taken) raises :class:`TransportError`: a rig fault, never a product
failure. Anything malformed that comes from a gateway is logged and dropped.
"""

from hil.faults import RigFault
from hil.network.errors import NetworkError


class TransportError(NetworkError, RigFault):
    """The link to the gateways failed (broker unreachable, socket not bound, not started): a rig fault."""


class TransportConnectError(TransportError):
    """The transport could not connect to (MQTT) or bind (UDP) ``host:port``."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


# The transports import the errors above from this package, so they come after them.
from drivers.gateway.chirpstack_mqtt import ChirpStackMqttTransport  # noqa: E402
from drivers.gateway.semtech_udp import SemtechUdpTransport  # noqa: E402

__all__ = ["ChirpStackMqttTransport", "SemtechUdpTransport", "TransportConnectError", "TransportError"]
