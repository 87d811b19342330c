"""One virtual debug target: the DUT's MCU as a debug probe reaches it, and the in-process registry.

:class:`DebugUnit` puts the SW-DP/AHB-AP (:mod:`.dap`), the system bus (:mod:`.bus`), the debug
core (:mod:`.core`) and the flash interface (:mod:`.flash_algo`) in front of the virtual DUT's
memory. It follows VDD (:meth:`DebugUnit.on_vdd`): below the MCU's brown-out voltage the target
does not answer, and when power returns its debug domain starts from reset. A probe must
:meth:`DebugUnit.claim` it to use it: a second claimant gets :class:`ProbeBusy`, as a second
program opening an ST-Link does.

:func:`register` makes a unit reachable by name to the pyocd probe plugin of this process
(``hilsim:<name>``); other processes reach it through the TCP probe server (:mod:`.server`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from typing import Callable

from hil.sim.dut.memory import DutMemory
from hil.sim.swd.bus import SystemBus
from hil.sim.swd.core import CoreHost, DebugCore
from hil.sim.swd.dap import SwDap
from hil.sim.swd.flash_algo import FlashController
from hil.sim.swd.identity import McuIdentity, mcu_identity

PROBE_TYPE = "hilsim"  # the pyocd probe type: unique ids read "hilsim:<unit name>"
_LOT_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


class ProbeBusy(RuntimeError):
    """The debug unit is already in use by another probe session."""


def derived_unique_id(seed: str) -> bytes:
    """A 96-bit STM32-style unique ID, the same for the same ``seed``: X and Y wafer coordinates
    (16 bits each), the wafer number (8 bits) and a 7-character ASCII lot number."""
    h = hashlib.sha256(b"hil-sim-mcu-uid\x00" + seed.encode()).digest()
    x, y, wafer = h[0] % 100, h[1] % 100, h[2] % 25 + 1
    lot = "V" + "".join(_LOT_CHARS[b % len(_LOT_CHARS)] for b in h[3:9])
    return x.to_bytes(2, "little") + y.to_bytes(2, "little") + bytes([wafer]) + lot.encode("ascii")


class DebugUnit:
    """The virtual MCU behind a debug probe. Thread-safe."""

    def __init__(self, name: str, memory: DutMemory, *, host: CoreHost | None = None, unique_id: bytes | None = None,
                 vdd_min: float = 1.8, identity: McuIdentity | None = None) -> None:
        self.name = name
        self.identity = identity or mcu_identity()
        self.memory = memory
        self.vdd_min = vdd_min
        self._lock = threading.Lock()
        self._vdd = 0.0
        self._owner: str | None = None
        self.bus = SystemBus(memory, self.identity.unique_id, unique_id or derived_unique_id(name))
        self.flash = FlashController(memory)
        self.core = DebugCore(self.identity, self.bus.read, self.flash, host)
        self.bus.attach_core(self.core)
        self.dap = SwDap(self.identity, self.bus, self.powered)

    @property
    def probe_uid(self) -> str:
        """The pyocd unique id of the probe wired to this unit (in this process)."""
        return f"{PROBE_TYPE}:{self.name}"

    @property
    def target(self) -> str:
        """The pyocd target name of the virtual MCU."""
        return self.identity.target

    # -- power -------------------------------------------------------------------------------------

    def powered(self) -> bool:
        with self._lock:
            return self._vdd >= self.vdd_min

    def on_vdd(self, volts: float) -> None:
        """The MCU's supply changed: falling below ``vdd_min`` resets the whole debug domain."""
        with self._lock:
            was_on = self._vdd >= self.vdd_min
            self._vdd = volts
            now_on = volts >= self.vdd_min
        if was_on and not now_on:
            self.dap.power_lost()
            self.core.power_lost()

    def current_at(self, volts: float) -> float:
        """The debug logic's own draw, as a load on the supply channel (negligible)."""
        return 0.0

    # -- the unique ID ------------------------------------------------------------------------------

    @property
    def unique_id(self) -> bytes:
        return self.bus.unique_id

    def set_unique_id(self, uid: bytes) -> None:
        """Swap the MCU for another unit (a production line's next board): its 96-bit unique ID."""
        self.bus.set_unique_id(uid)

    # -- sessions -----------------------------------------------------------------------------------

    def claim(self, owner: str) -> None:
        """Take the unit for ``owner`` (a probe session); ProbeBusy if someone else holds it."""
        with self._lock:
            if self._owner is not None and self._owner != owner:
                raise ProbeBusy(f"probe {self.probe_uid} is busy: in use by {self._owner}")
            self._owner = owner

    def release(self, owner: str) -> None:
        with self._lock:
            if self._owner == owner:
                self._owner = None

    @property
    def owner(self) -> str | None:
        with self._lock:
            return self._owner

    def hardware_reset(self) -> None:
        """The probe pulses nRST: the system resets, the debug domain keeps its state."""
        self.core.system_reset()

    def __repr__(self) -> str:
        return f"DebugUnit({self.name!r}, target={self.target}, {'powered' if self.powered() else 'unpowered'})"


# -- the registry of this process -----------------------------------------------------------------

_REGISTRY: dict[str, DebugUnit] = {}
_REGISTRY_LOCK = threading.Lock()
_NAMES = itertools.count(1)


def new_unit_name(prefix: str = "sim") -> str:
    """A unit name no other live unit of any process has: ``<prefix>-<pid>-<n>``."""
    return f"{prefix}-{os.getpid()}-{next(_NAMES)}"


def register(unit: DebugUnit) -> Callable[[], None]:
    """Make ``unit`` reachable as ``hilsim:<name>``; returns the function that unregisters it."""
    with _REGISTRY_LOCK:
        if unit.name in _REGISTRY:
            raise ValueError(f"a debug unit named {unit.name!r} is already registered")
        _REGISTRY[unit.name] = unit

    def unregister() -> None:
        with _REGISTRY_LOCK:
            if _REGISTRY.get(unit.name) is unit:
                del _REGISTRY[unit.name]

    return unregister


def lookup(name: str) -> DebugUnit | None:
    """The registered unit of that name (without the ``hilsim:`` prefix), or None."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(name)


def registered() -> list[DebugUnit]:
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())
