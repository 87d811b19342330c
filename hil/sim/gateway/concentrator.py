"""The virtual gateway's radio: a LoRa concentrator on the rig's radio medium.

It hears uplinks (normal IQ) on its channel plan, stamps each with the concentrator's 32-bit
microsecond counter ``tmst`` at the *end* of reception, and hands an :class:`RxPacket` to the
packet forwarders registered with :meth:`Concentrator.add_listener`. It transmits what they
schedule, judged the way the Semtech packet forwarder's just-in-time queue judges it
(Lora-net ``lora_pkt_fwd`` / sx1302_hal ``jitqueue.c``): too late, too early, overlapping
another transmission, off-band frequency, too much power.

Time: ``tmst`` = ``tmst_offset`` + microseconds of rig time since rig start, modulo 2^32 (it wraps
every ~71.6 min; ``tmst_offset`` lets tests start near the wrap). A scheduled frame goes on air at
exactly the rig time its ``tmst`` names, through ``Scheduler.call_at``. Everything here runs on
the scheduler thread; a lock keeps the TX queue consistent should a caller forget.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

from hil.lorawan.airtime import time_on_air
from hil.lorawan.region import Region, get_region
from hil.network.transport import TxAckStatus
from hil.sim.radio import RadioMedium, Reception, Transmission, demodulation_floor_db
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

TMST_MODULO = 1 << 32
#: jitqueue.c: time the radio needs to start a TX, µs.
TX_START_DELAY_US = 1_500
#: jitqueue.c: packet overlap margin, µs.
TX_MARGIN_DELAY_US = 1_000
#: jitqueue.c: the JIT thread programs a packet this long before it is due, µs.
TX_JIT_DELAY_US = 30_000
#: A request must arrive more than this before its ``tmst`` (TX_START + TX_MARGIN + TX_JIT).
TOO_LATE_US = TX_START_DELAY_US + TX_MARGIN_DELAY_US + TX_JIT_DELAY_US
#: jitqueue.c TX_MAX_ADVANCE_DELAY: (JIT_NUM_BEACON_IN_QUEUE + 1) * 128 s.
TOO_EARLY_US = (3 + 1) * 128 * 1_000_000
#: jitqueue.c JIT_QUEUE_MAX.
JIT_QUEUE_MAX = 32
#: jitqueue.c: an "immediate" (Class C) downlink is put ASAP, at the earliest 1 s from now.
IMMEDIATE_MARGIN_US = 1_000_000

LORA_SPREADING_FACTORS = range(7, 13)


class GatewayError(RuntimeError):
    """The virtual gateway could not do what the rig asked (a rig fault, not a product failure)."""


class RxChannel(NamedTuple):
    """One receive channel of the concentrator (a multi-SF LoRa channel, SF7..SF12)."""

    frequency_hz: int
    bandwidth_hz: int = 125_000


@dataclass(frozen=True, slots=True)
class RxPacket:
    """One uplink the concentrator demodulated.

    ``tmst`` is the counter at the end of reception; ``time`` the same instant in rig seconds;
    ``channel`` the index of the receive channel in :attr:`Concentrator.channels`.
    """

    phy_payload: bytes
    frequency_hz: int
    spreading_factor: int
    bandwidth_hz: int
    code_rate: str
    rssi: float
    snr: float
    tmst: int
    time: float
    channel: int
    crc_ok: bool = True


@dataclass(frozen=True, slots=True)
class TxRequest:
    """A frame a packet forwarder asks the concentrator to send.

    ``tmst``: send when the counter equals it; ``None``: immediately (as soon as possible, at the
    earliest :data:`IMMEDIATE_MARGIN_US` from now, as the Semtech JIT queue does).
    ``polarization_inversion`` True is a downlink to end devices (inverted IQ).
    """

    phy_payload: bytes
    frequency_hz: int
    spreading_factor: int
    bandwidth_hz: int
    power_dbm: float
    code_rate: str = "4/5"
    tmst: int | None = None
    polarization_inversion: bool = True


@dataclass(frozen=True, slots=True)
class _Queued:
    start_us: int  # unwrapped counter (rig µs + offset), not modulo
    airtime_us: int
    timer: Timer

    @property
    def end_us(self) -> int:
        return self.start_us + self.airtime_us


RxListener = Callable[[RxPacket], None]


def code_rate_index(code_rate: str) -> int:
    """``"4/5"`` .. ``"4/8"`` -> 1..4 (the airtime formula's CR); ValueError otherwise."""
    rates = {"4/5": 1, "4/6": 2, "4/7": 3, "4/8": 4}
    try:
        return rates[code_rate]
    except (KeyError, TypeError):
        raise ValueError(f"code rate must be one of {', '.join(rates)}, got {code_rate!r}") from None


def tmst_add(tmst: int, microseconds: int) -> int:
    """``tmst + microseconds`` on the wrapping 32-bit counter."""
    return (tmst + microseconds) % TMST_MODULO


def tmst_diff(later: int, earlier: int) -> int:
    """``later - earlier`` on the wrapping 32-bit counter, as the unsigned C subtraction gives it."""
    return (later - earlier) % TMST_MODULO


class Concentrator:
    """A LoRa gateway radio node called ``name`` on ``medium``.

    Channels: the region's default uplink channels (EU868: 868.1, 868.3, 868.5 MHz) followed by
    ``extra_frequencies_hz`` (125 kHz each), or exactly ``channels`` when given. A transmission
    above ``max_tx_power_dbm`` (default: the region's max EIRP) is refused with ``TX_POWER``.
    """

    def __init__(
        self,
        medium: RadioMedium,
        scheduler: Scheduler,
        *,
        region: Region | str = "EU868",
        extra_frequencies_hz: Sequence[int] = (),
        channels: Sequence[RxChannel] | None = None,
        name: str = "gateway",
        tmst_offset: int = 0,
        max_tx_power_dbm: float | None = None,
    ) -> None:
        self.region = get_region(region) if isinstance(region, str) else region
        self.medium = medium
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.name = name
        if not isinstance(tmst_offset, int) or not 0 <= tmst_offset < TMST_MODULO:
            raise ValueError(f"tmst_offset must be a uint32, got {tmst_offset!r}")
        self.tmst_offset = tmst_offset
        if channels is None:
            plan = [RxChannel(c.frequency_hz) for c in self.region.default_channels]
            plan += [RxChannel(int(f)) for f in extra_frequencies_hz]
        else:
            plan = [RxChannel(*c) for c in channels]
        self.channels: tuple[RxChannel, ...] = tuple(plan)
        self.max_tx_power_dbm = self.region.max_eirp_dbm if max_tx_power_dbm is None else float(max_tx_power_dbm)
        self._listeners: list[RxListener] = []
        self._queue: list[_Queued] = []
        self._lock = threading.RLock()
        self.received: list[RxPacket] = []
        self.sent: list[Transmission] = []
        self.dropped_uplinks = 0
        medium.attach(self)

    # -- the counter ---------------------------------------------------------------------------

    def _counter_us(self, rig_time: float) -> int:
        """The unwrapped counter at ``rig_time`` (µs since rig start + offset)."""
        return round(rig_time * 1_000_000) + self.tmst_offset

    def tmst_at(self, rig_time: float) -> int:
        """The 32-bit ``tmst`` counter at rig time ``rig_time``."""
        return self._counter_us(rig_time) % TMST_MODULO

    def tmst_now(self) -> int:
        """The counter now."""
        return self.tmst_at(self.clock.now())

    def unix_time_at(self, rig_time: float) -> float:
        """Wall-clock Unix time of rig instant ``rig_time`` (for rxpk.time / gwTime)."""
        return self.clock.unix_time() - (self.clock.now() - rig_time)

    # -- receiving -----------------------------------------------------------------------------

    def add_listener(self, listener: RxListener) -> None:
        """Hand every received packet to ``listener`` (called on the scheduler thread)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: RxListener) -> None:
        """Stop handing packets to ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def channel_index(self, frequency_hz: int, bandwidth_hz: int) -> int | None:
        """The receive channel for this frequency and bandwidth, or None if the gateway has none."""
        for index, channel in enumerate(self.channels):
            if channel.frequency_hz == frequency_hz and channel.bandwidth_hz == bandwidth_hz:
                return index
        return None

    def on_air(self, reception: Reception) -> None:
        """RadioNode: a transmission ended; demodulate it if it is an uplink on one of our channels."""
        tx = reception.tx
        if tx.downlink:
            return  # inverted IQ: the concentrator does not listen to other gateways' downlinks
        channel = self.channel_index(tx.frequency_hz, tx.bandwidth_hz)
        if channel is None or tx.spreading_factor not in LORA_SPREADING_FACTORS:
            log.debug("%s: no channel for %d Hz SF%d/%d Hz", self.name, tx.frequency_hz,
                      tx.spreading_factor, tx.bandwidth_hz)
            return
        if reception.snr < demodulation_floor_db(tx.spreading_factor):
            with self._lock:
                self.dropped_uplinks += 1
            log.info("%s: uplink on %d Hz SF%d below the demodulation floor (SNR %.1f dB)", self.name,
                     tx.frequency_hz, tx.spreading_factor, reception.snr)
            return
        packet = RxPacket(
            phy_payload=tx.phy_payload,
            frequency_hz=tx.frequency_hz,
            spreading_factor=tx.spreading_factor,
            bandwidth_hz=tx.bandwidth_hz,
            code_rate=tx.code_rate,
            rssi=reception.rssi,
            snr=reception.snr,
            tmst=self.tmst_at(tx.end),
            time=tx.end,
            channel=channel,
        )
        with self._lock:
            self.received.append(packet)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(packet)
            except Exception:  # one broken forwarder must not stop the radio
                log.exception("%s: RX listener %r failed", self.name, listener)

    # -- transmitting --------------------------------------------------------------------------

    def schedule(self, request: TxRequest) -> TxAckStatus:
        """Queue ``request`` for transmission; ``OK`` or the error a real gateway gives.

        Checks in the packet forwarder's order: ``TX_FREQ`` (outside the region's band),
        ``TX_POWER`` (above :attr:`max_tx_power_dbm`), then the JIT queue: ``QUEUE_FULL``,
        ``TOO_LATE`` (``tmst`` within 32.5 ms or already past), ``TOO_EARLY`` (more than 512 s
        ahead), ``COLLISION_PACKET`` (overlaps a queued or ongoing transmission).
        ValueError for a request no radio could send (unknown SF, bandwidth or code rate).
        """
        airtime_s = time_on_air(
            len(request.phy_payload), request.spreading_factor, request.bandwidth_hz,
            coding_rate=code_rate_index(request.code_rate), crc=not request.polarization_inversion,
        )
        airtime_us = round(airtime_s * 1_000_000)
        low, high = self.region.frequency_range_hz
        if not low <= request.frequency_hz <= high:
            return self._refuse(request, TxAckStatus.TX_FREQ, f"{request.frequency_hz} Hz is outside {low}..{high} Hz")
        if request.power_dbm > self.max_tx_power_dbm:
            return self._refuse(request, TxAckStatus.TX_POWER,
                                f"{request.power_dbm} dBm is above {self.max_tx_power_dbm} dBm")
        with self._lock:
            now_us = self._counter_us(self.scheduler.now())
            if len(self._queue) >= JIT_QUEUE_MAX:
                return self._refuse(request, TxAckStatus.QUEUE_FULL, f"{JIT_QUEUE_MAX} frames queued")
            if request.tmst is None:
                start_us = self._asap(now_us, airtime_us)
            else:
                ahead = tmst_diff(request.tmst, now_us % TMST_MODULO)
                # The C code's unsigned test would call a tmst already past TOO_EARLY; a tmst in the
                # past half of the counter range is reported TOO_LATE, which is what it means.
                if ahead <= TOO_LATE_US or ahead >= TMST_MODULO // 2:
                    late = ahead - TMST_MODULO if ahead >= TMST_MODULO // 2 else ahead
                    return self._refuse(request, TxAckStatus.TOO_LATE,
                                        f"tmst {request.tmst} is {late} µs ahead of the counter (needs > {TOO_LATE_US})")
                if ahead > TOO_EARLY_US:
                    return self._refuse(request, TxAckStatus.TOO_EARLY,
                                        f"tmst {request.tmst} is {ahead} µs ahead (max {TOO_EARLY_US})")
                start_us = now_us + ahead
            if self._collides(start_us, airtime_us):
                return self._refuse(request, TxAckStatus.COLLISION_PACKET, "overlaps a scheduled transmission")
            start = (start_us - self.tmst_offset) / 1_000_000
            tx = Transmission(
                phy_payload=bytes(request.phy_payload),
                frequency_hz=request.frequency_hz,
                spreading_factor=request.spreading_factor,
                bandwidth_hz=request.bandwidth_hz,
                code_rate=request.code_rate,
                power_dbm=float(request.power_dbm),
                start=start,
                end=start + airtime_us / 1_000_000,
                downlink=request.polarization_inversion,
                sender=self.name,
            )
            entry_box: list[_Queued] = []
            timer = self.scheduler.call_at(start, self._emit, tx, entry_box, name=f"{self.name}-tx")
            entry = _Queued(start_us, airtime_us, timer)
            entry_box.append(entry)
            self._queue.append(entry)
        log.info("%s: TX scheduled at tmst %d (rig %.6f s), %d Hz SF%d, %d bytes", self.name,
                 start_us % TMST_MODULO, start, request.frequency_hz, request.spreading_factor,
                 len(request.phy_payload))
        return TxAckStatus.OK

    def pending_transmissions(self) -> int:
        """Frames queued or on air."""
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        """Leave the medium and drop every queued transmission."""
        with self._lock:
            for entry in self._queue:
                entry.timer.cancel()
            self._queue.clear()
            self._listeners.clear()
        self.medium.detach(self)

    def _refuse(self, request: TxRequest, status: TxAckStatus, why: str) -> TxAckStatus:
        log.warning("%s: TX refused %s: %s", self.name, status.value, why)
        return status

    def _collides(self, start_us: int, airtime_us: int) -> bool:
        """jit_collision_test: [start - pre, end] windows overlap, with TX_MARGIN_DELAY between them."""
        pre = TX_START_DELAY_US + TX_JIT_DELAY_US
        for other in self._queue:
            new_after_old = start_us - pre <= other.end_us + TX_MARGIN_DELAY_US
            old_after_new = other.start_us - pre <= start_us + airtime_us + TX_MARGIN_DELAY_US
            if new_after_old and old_after_new:
                return True
        return False

    def _asap(self, now_us: int, airtime_us: int) -> int:
        """The JIT queue's slot for an immediate frame: now + 1 s, else right after a queued frame."""
        candidate = now_us + IMMEDIATE_MARGIN_US
        if not self._collides(candidate, airtime_us):
            return candidate
        pre = TX_START_DELAY_US + TX_JIT_DELAY_US
        for other in sorted(self._queue, key=lambda q: q.start_us):
            candidate = other.end_us + pre + TX_JIT_DELAY_US + TX_MARGIN_DELAY_US
            if candidate > now_us + TOO_LATE_US and not self._collides(candidate, airtime_us):
                return candidate
        return candidate

    def _emit(self, tx: Transmission, entry_box: list[_Queued]) -> None:
        self.medium.transmit(tx)
        with self._lock:
            self.sent.append(tx)
        self.scheduler.call_at(tx.end, self._done, entry_box[0], name=f"{self.name}-tx-done")

    def _done(self, entry: _Queued) -> None:
        with self._lock:
            if entry in self._queue:
                self._queue.remove(entry)
