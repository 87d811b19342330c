"""Gateway-neutral radio frames and the transport interface between gateways and the server.

The frame types follow ChirpStack's ``gw.proto`` (``UplinkFrame``, ``DownlinkFrame`` with
``DownlinkFrameItem``, ``DownlinkTxAck``), flattened, so that the MQTT transport (ChirpStack
Gateway Bridge JSON) is a plain field mapping and the Semtech UDP transport a small one
(``context`` = 4-byte big-endian ``rxpk.tmst``, ``txpk.tmst = tmst + delay``).

Times: ``UplinkFrame.time`` is rig seconds at the end of reception; ``DownlinkItem.delay_s``
is seconds after the end of reception of the uplink identified by ``context`` (LoRaWAN
measures RECEIVE_DELAY from there), or ``None`` to send at once (Class C).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol, runtime_checkable

from hil.network.errors import TransportClosedError

DEFAULT_GATEWAY_ID = "0016c001f153a14c"


@dataclass(frozen=True, slots=True)
class UplinkFrame:
    """One LoRa frame received by one gateway (gw.proto UplinkFrame: tx_info + rx_info)."""

    phy_payload: bytes
    frequency_hz: int
    spreading_factor: int
    bandwidth_hz: int
    code_rate: str = "4/5"
    rssi: float = -60
    snr: float = 7.0
    gateway_id: str = DEFAULT_GATEWAY_ID
    context: bytes = b""
    uplink_id: int = 0
    time: float | None = None  # rig seconds at the end of reception; None = "now" on arrival


@dataclass(frozen=True, slots=True)
class DownlinkItem:
    """One way to send a downlink (gw.proto DownlinkFrameItem): RX1, RX2 or Class C."""

    phy_payload: bytes
    frequency_hz: int
    spreading_factor: int
    bandwidth_hz: int
    power_dbm: float
    delay_s: float | None  # None: immediately; else seconds after the uplink's end of reception
    context: bytes = b""  # the uplink's gateway context, copied
    polarization_inversion: bool = True
    code_rate: str = "4/5"


@dataclass(frozen=True, slots=True)
class DownlinkFrame:
    """A downlink for one gateway; ``items`` in priority order (RX1, then RX2). At most one is sent."""

    downlink_id: int
    gateway_id: str
    items: list[DownlinkItem] = field(default_factory=list)


class TxAckStatus(str, Enum):
    """gw.proto TxAckStatus names, as the gateway reports them per item."""

    IGNORED = "IGNORED"
    OK = "OK"
    TOO_LATE = "TOO_LATE"
    TOO_EARLY = "TOO_EARLY"
    COLLISION_PACKET = "COLLISION_PACKET"
    COLLISION_BEACON = "COLLISION_BEACON"
    TX_FREQ = "TX_FREQ"
    TX_POWER = "TX_POWER"
    GPS_UNLOCKED = "GPS_UNLOCKED"
    QUEUE_FULL = "QUEUE_FULL"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DUTY_CYCLE_OVERFLOW = "DUTY_CYCLE_OVERFLOW"


@dataclass(frozen=True, slots=True)
class TxAck:
    """The gateway's answer to a DownlinkFrame: one status per item (``"OK"`` for the one sent)."""

    downlink_id: int
    statuses: list[str] = field(default_factory=list)
    gateway_id: str = ""

    @property
    def sent(self) -> bool:
        """True if one item was transmitted."""
        return any(str(s) in (TxAckStatus.OK, "OK") for s in self.statuses)


UplinkHandler = Callable[[UplinkFrame], None]
TxAckHandler = Callable[[TxAck], None]


@runtime_checkable
class GatewayTransport(Protocol):
    """How the network server talks to gateways (MQTT bridge, Semtech UDP, in-process loopback)."""

    def start(self, on_uplink: UplinkHandler, on_tx_ack: TxAckHandler) -> None:
        """Begin delivering received uplinks and TX acknowledgements to the two callbacks."""
        ...

    def send_downlink(self, frame: DownlinkFrame) -> None:
        """Hand a downlink to the gateway named in ``frame.gateway_id``."""
        ...

    def close(self) -> None:
        """Stop delivering callbacks and release resources."""
        ...


class LoopbackTransport:
    """An in-process gateway: tests inject uplinks and read what the server sent.

    ``on_downlink`` (optional) is called with every DownlinkFrame the server sends, e.g. by a
    virtual radio. With ``auto_ack`` each downlink is acknowledged at once: first item ``OK``,
    the rest ``IGNORED``.
    """

    def __init__(self, *, on_downlink: Callable[[DownlinkFrame], None] | None = None, auto_ack: bool = False) -> None:
        self.sent: list[DownlinkFrame] = []
        self._on_uplink: UplinkHandler | None = None
        self._on_tx_ack: TxAckHandler | None = None
        self._on_downlink = on_downlink
        self._auto_ack = auto_ack
        self._closed = False
        self._lock = threading.Lock()

    def start(self, on_uplink: UplinkHandler, on_tx_ack: TxAckHandler) -> None:
        """Attach the server's callbacks (see :class:`GatewayTransport`)."""
        self._check_open()
        self._on_uplink = on_uplink
        self._on_tx_ack = on_tx_ack

    def inject_uplink(self, frame: UplinkFrame) -> None:
        """Deliver ``frame`` to the server as if a gateway had received it."""
        self._check_open()
        if self._on_uplink is None:
            raise TransportClosedError("LoopbackTransport.inject_uplink before start(): no server attached")
        self._on_uplink(frame)

    def send_downlink(self, frame: DownlinkFrame) -> None:
        """Record ``frame`` in :attr:`sent`, pass it to ``on_downlink`` and, with ``auto_ack``, acknowledge it."""
        self._check_open()
        with self._lock:
            self.sent.append(frame)
        if self._on_downlink is not None:
            self._on_downlink(frame)
        if self._auto_ack:
            statuses = [TxAckStatus.OK.value] + [TxAckStatus.IGNORED.value] * (len(frame.items) - 1)
            self.ack(frame.downlink_id, statuses, gateway_id=frame.gateway_id)

    def ack(self, downlink_id: int, statuses: list[str], *, gateway_id: str = "") -> None:
        """Deliver a TxAck to the server, as a gateway would after (not) transmitting."""
        self._check_open()
        if self._on_tx_ack is not None:
            self._on_tx_ack(TxAck(downlink_id, list(statuses), gateway_id))

    def take_sent(self) -> list[DownlinkFrame]:
        """The downlinks sent since the last call (and forget them)."""
        with self._lock:
            out = list(self.sent)
            self.sent.clear()
        return out

    def close(self) -> None:
        """Detach the server; any later use raises TransportClosedError."""
        self._closed = True
        self._on_uplink = None
        self._on_tx_ack = None

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("LoopbackTransport is closed")
