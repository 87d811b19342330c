"""Firmware defects the virtual relay node can be built with, so the suites can prove they catch them.

Each defect is a row of data: its name (as written in a rig file's ``sim.dut.defects``), the layer
that implements it (``mac``: hil/sim/dut/mac.py, ``relay``: hil/sim/dut/relay_app.py,
``board``: the firmware core), what it breaks, and the suite (pytest marker) that must fail
because of it. :func:`validate_defects` turns a rig file's list into a frozenset, rejecting names
it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal


@dataclass(frozen=True, slots=True)
class Defect:
    name: str
    layer: Literal["mac", "relay", "board"]
    breaks: str
    caught_by: str  # the suite's pytest marker


DEFECTS: tuple[Defect, ...] = (
    Defect("devnonce_not_persisted", "mac",
           "the DevNonce counter lives in RAM only: after a power cycle it restarts from the value NVM "
           "had at boot, so join-requests repeat DevNonces and the join server rejects them", "devnonce"),
    Defect("devnonce_persisted_after_tx", "mac",
           "the incremented DevNonce is written only after the join-request's TX ends: a power cut "
           "between TX and the end of that write reuses the nonce", "devnonce"),
    Defect("fcnt_not_persisted", "mac",
           "FCntUp lives in RAM only: after a power cycle it restarts from the NVM value and the "
           "network drops the uplinks as replays", "fcnt"),
    Defect("join_accept_mic_unchecked", "mac",
           "a join-accept with a wrong MIC is accepted (the device ends up with a session the network "
           "does not have)", "join"),
    Defect("rx1_late", "mac",
           "RX1 opens too late to catch a downlink sent at the correct time; only RX2 works", "join"),
    Defect("sync_silent", "relay",
           "a relay command with the wrong frame counter gets no SYNC response (0x83), so the "
           "controller cannot recover its counter", "fcnt"),
    Defect("relay_accepts_replay", "relay",
           "a relay command whose counter is below the expected one is executed (replay attack "
           "succeeds); the expected counter is left unchanged", "fcnt"),
    Defect("relay_feedback_lies", "relay",
           "the relay reports the commanded state as sensed (230 V when on, status OK) instead of "
           "reading its mains sense", "relay"),
    Defect("relay_restores_last_state", "relay",
           "after a power cycle the relay comes back in the last commanded state (on, if it was on) "
           "instead of its documented safe state, off", "relay"),
    Defect("contact_welded", "board",
           "the relay contact is welded closed: it never opens, whatever the coil does", "relay"),
)

KNOWN_DEFECTS: frozenset[str] = frozenset(d.name for d in DEFECTS)
MAC_DEFECTS: frozenset[str] = frozenset(d.name for d in DEFECTS if d.layer == "mac")


class UnknownDefectError(ValueError):
    """A defect name that the virtual DUT does not implement."""


def defect(name: str) -> Defect:
    """The defect called ``name``; UnknownDefectError naming the known ones otherwise."""
    for d in DEFECTS:
        if d.name == name:
            return d
    raise UnknownDefectError(f"unknown firmware defect {name!r}; known defects: {', '.join(sorted(KNOWN_DEFECTS))}")


def validate_defects(names: Iterable[str] | None, where: str = "") -> frozenset[str]:
    """The defects as a frozenset; an unknown (or non-string) name is an error naming the known ones.

    ``where`` says where the list came from (e.g. ``"rigs/sim.yaml: sim.dut.defects"``).
    """
    if names is None:
        return frozenset()
    if isinstance(names, str):
        names = [names]
    result: set[str] = set()
    for name in names:
        if not isinstance(name, str) or name not in KNOWN_DEFECTS:
            prefix = f"{where}: " if where else ""
            raise UnknownDefectError(
                f"{prefix}unknown firmware defect {name!r}; known defects: {', '.join(sorted(KNOWN_DEFECTS))}"
            )
        result.add(name)
    return frozenset(result)
