"""Frame counters: the 32-bit value behind a 16-bit on-air FCnt, and the acceptance rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FCNT_MASK = 0xFFFFFFFF


def reconstruct(fcnt16: int, next_expected: int) -> int:
    """The smallest 32-bit counter ≥ ``next_expected`` whose 16 LSB are ``fcnt16``.

    This is how a receiver infers the MSBs (LoRaWAN 1.0.2 §4.3.1.5): it assumes the counter
    only moved forward, by less than 2^16.
    """
    return (next_expected + ((fcnt16 - next_expected) & 0xFFFF)) & FCNT_MASK


def earlier_candidate(fcnt16: int, next_expected: int) -> int | None:
    """The largest counter < ``next_expected`` with these 16 LSB, or None: a replay's counter.

    A receiver tries it only to *name* a rejected frame (retransmission, replay, reset); it
    never accepts a frame at this value.
    """
    value = reconstruct(fcnt16, next_expected) - 0x10000
    return value if value >= 0 else None


def replay_candidates(fcnt16: int, last: int) -> list[int]:
    """Counters ≤ ``last`` a rejected frame may carry, most recent first: the previous value
    with these 16 LSB, and the raw 16-bit value (a device whose counters were reset)."""
    values = {earlier_candidate(fcnt16, last + 1), fcnt16}
    return sorted((v for v in values if v is not None and v <= last), reverse=True)


class Verdict(str, Enum):
    """What a receiver concludes about a frame counter."""

    OK = "ok"
    RETRANSMISSION = "retransmission"  # the last accepted value again
    REPLAY = "replay"  # a value below the last accepted one
    GAP_TOO_LARGE = "gap_too_large"  # beyond MAX_FCNT_GAP (1.0.0–1.0.3 only)


@dataclass(frozen=True, slots=True)
class CounterCheck:
    """The outcome of :func:`check`: ``fcnt`` is the full counter the verdict is about."""

    verdict: Verdict
    fcnt: int

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.OK


def check(fcnt16: int, last: int | None, *, max_gap: int | None = None) -> CounterCheck:
    """Classify an on-air FCnt against the ``last`` accepted full counter (None: nothing yet).

    The MIC decides between this verdict's ``fcnt`` and :func:`earlier_candidate`; this function
    only does the arithmetic. ``max_gap`` is MAX_FCNT_GAP where the version has one.
    """
    if last is None:
        return CounterCheck(Verdict.OK, fcnt16)
    if fcnt16 == last & 0xFFFF:
        return CounterCheck(Verdict.RETRANSMISSION, last)
    full = reconstruct(fcnt16, last + 1)
    if max_gap is not None and full - (last + 1) >= max_gap:
        return CounterCheck(Verdict.GAP_TOO_LARGE, full)
    return CounterCheck(Verdict.OK, full)
