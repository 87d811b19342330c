"""What the application side of the reference network sees: delivered uplinks and queued downlinks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from hil.lorawan.types import EUI64, DevAddr


@dataclass(frozen=True, slots=True)
class ApplicationUplink:
    """A data uplink delivered to the application: authentic, new, decrypted (FPort > 0)."""

    dev_eui: EUI64
    dev_addr: DevAddr
    fport: int
    payload: bytes
    fcnt: int  # full 32-bit FCntUp
    confirmed: bool
    time: float  # rig seconds at the end of reception
    rssi: float
    snr: float
    frequency_hz: int
    dr: int
    gateway_id: str


UplinkCallback = Callable[[ApplicationUplink], None]


class DownlinkState(str, Enum):
    """Where a queued downlink is: queued, sent (unconfirmed), or the device's answer to a confirmed one."""

    QUEUED = "queued"
    SENT = "sent"  # handed to a gateway; for a confirmed downlink: awaiting the device's ACK
    ACKED = "acked"  # confirmed downlink acknowledged by the device's next uplink
    UNACKED = "unacked"  # the device's next uplink did not acknowledge it
    DISCARDED = "discarded"  # dropped from the queue (device removed or re-joined)


@dataclass(slots=True)
class QueuedDownlink:
    """An application downlink in a device's queue, and what became of it."""

    queue_id: int
    dev_eui: EUI64
    fport: int
    payload: bytes
    confirmed: bool
    enqueued_at: float
    state: DownlinkState = DownlinkState.QUEUED
    fcnt: int | None = None  # the downlink counter it was sent with
    downlink_id: int | None = None  # the transport frame that carried it
    sent_at: float | None = None
    tx_status: str | None = None  # status of the item the gateway transmitted (from TxAck), if reported
