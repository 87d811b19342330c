"""The air between the virtual DUT and the virtual gateway.

A node transmits a :class:`Transmission` with its rig start and end times; the medium hands it
to every other attached node at its end time, with the RSSI and SNR the link budget gives.
Each receiver decides for itself whether it heard it (the DUT: was a receive window open on
that channel and data rate when the preamble started; the gateway: is it an uplink on one of
its channels). Timing decisions therefore use exact rig timestamps, never the moment a thread
happened to run.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from hil.sim.scheduler import Scheduler

NOISE_FIGURE_DB = 6.0


@dataclass(frozen=True, slots=True)
class Transmission:
    """One LoRa frame on air. ``downlink`` frames use inverted IQ (gateway to device)."""

    phy_payload: bytes
    frequency_hz: int
    spreading_factor: int
    bandwidth_hz: int
    code_rate: str
    power_dbm: float
    start: float
    end: float
    downlink: bool
    sender: str

    @property
    def airtime(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Reception:
    """What a receiver gets: the transmission and its link quality."""

    tx: Transmission
    rssi: float
    snr: float


class RadioNode(Protocol):
    """Something attached to the medium."""

    name: str

    def on_air(self, reception: Reception) -> None:
        """Called on the scheduler thread at the transmission's end time."""
        ...


def noise_floor_dbm(bandwidth_hz: int) -> float:
    """Thermal noise plus a receiver noise figure over the channel bandwidth."""
    return -174.0 + 10.0 * math.log10(bandwidth_hz) + NOISE_FIGURE_DB


def demodulation_floor_db(spreading_factor: int) -> float:
    """The SNR a LoRa receiver needs at this SF (SX127x datasheet: -7.5 dB at SF7 ... -20 dB at SF12)."""
    return -7.5 - 2.5 * (spreading_factor - 7)


class RadioMedium:
    """Delivers every transmission to the other nodes, with a fixed path loss between them."""

    def __init__(self, scheduler: Scheduler, path_loss_db: float = 90.0) -> None:
        self.scheduler = scheduler
        self.path_loss_db = path_loss_db
        self._nodes: list[RadioNode] = []
        self._lock = threading.Lock()
        self.log: deque[Transmission] = deque(maxlen=4096)  # the most recent transmissions, for evidence

    def attach(self, node: RadioNode) -> None:
        with self._lock:
            self._nodes.append(node)

    def detach(self, node: RadioNode) -> None:
        with self._lock:
            if node in self._nodes:
                self._nodes.remove(node)

    def in_flight(self, now: float) -> list[Transmission]:
        """Transmissions still on air at ``now`` (what a preamble detector can lock on to)."""
        with self._lock:
            return [tx for tx in self.log if tx.end >= now]

    def transmit(self, tx: Transmission) -> None:
        """Put ``tx`` on air; each other node's :meth:`RadioNode.on_air` runs at ``tx.end``."""
        rssi = tx.power_dbm - self.path_loss_db
        snr = round(rssi - noise_floor_dbm(tx.bandwidth_hz), 1)
        with self._lock:
            self.log.append(tx)
            receivers = [n for n in self._nodes if n.name != tx.sender]
        for node in receivers:
            self.scheduler.call_at(tx.end, node.on_air, Reception(tx, round(rssi, 1), snr), name=f"air->{node.name}")
