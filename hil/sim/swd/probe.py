"""The simulated debug probe as a pyocd ``DebugProbe``, and the ``pyocd.probe`` plugin that loads it.

pyocd finds the plugin through the ``pyocd.probe`` entry point (``pyproject.toml``), so
``ConnectHelper.session_with_chosen_probe(unique_id="hilsim:<unit>")`` opens the unit that the
virtual rig registered in this process (:func:`hil.sim.swd.unit.register`). The probe is a plain
SWD probe without accelerated memory access (like CMSIS-DAP): pyocd drives the DP and AP registers
itself, power-up handshake, AP discovery, ROM table and all.

Wire errors reach pyocd as its own exceptions: no acknowledge (target unpowered) is a
``TransferError``, a FAULT a ``TransferFaultError``, a unit another session holds a ``ProbeError``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Collection, Sequence

from pyocd.core import exceptions
from pyocd.core.plugin import Plugin
from pyocd.probe.debug_probe import DebugProbe

from hil.sim.swd.dap import DapFault, NoAck
from hil.sim.swd.unit import PROBE_TYPE, DebugUnit, ProbeBusy, lookup, registered


class SimProbe(DebugProbe):
    """A debug probe wired to one :class:`~hil.sim.swd.unit.DebugUnit`."""

    @classmethod
    def get_all_connected_probes(cls, unique_id: str | None = None, is_explicit: bool = False) -> Sequence["SimProbe"]:
        return [cls(unit) for unit in registered()]

    @classmethod
    def get_probe_with_id(cls, unique_id: str, is_explicit: bool = False) -> "SimProbe | None":
        unit = lookup(unique_id)
        return cls(unit) if unit is not None else None

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.unit = unit
        self._is_open = False
        self._protocol: DebugProbe.Protocol | None = None
        self._reset_asserted = False
        self._owner = f"pyocd probe session {id(self):#x} (pid {os.getpid()})"

    # -- identity ----------------------------------------------------------------------------------

    @property
    def vendor_name(self) -> str:
        return "HIL virtual rig"

    @property
    def product_name(self) -> str:
        return "simulated SWD probe"

    @property
    def supported_wire_protocols(self) -> Collection[DebugProbe.Protocol]:
        return [DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD]  # DEFAULT: SWD

    @property
    def unique_id(self) -> str:
        return self.unit.name

    @property
    def wire_protocol(self) -> DebugProbe.Protocol | None:
        return self._protocol

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def capabilities(self) -> set[DebugProbe.Capability]:
        return set()  # the DAP layer selects APs and handles DP banks itself; no SWJ sequences

    # -- life cycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.unit.claim(self._owner)
        except ProbeBusy as exc:
            raise exceptions.ProbeError(str(exc)) from None
        self._is_open = True

    def close(self) -> None:
        self._is_open = False
        self._protocol = None
        self.unit.release(self._owner)

    def connect(self, protocol: DebugProbe.Protocol | None = None) -> None:
        if protocol not in (None, DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD):
            raise exceptions.ProbeError(f"probe {PROBE_TYPE}:{self.unit.name} speaks SWD only, not {protocol.name}")
        self._protocol = DebugProbe.Protocol.SWD

    def disconnect(self) -> None:
        self._protocol = None

    def set_clock(self, frequency: float) -> None:
        pass  # the simulated wire has no speed limit

    # -- reset pin -------------------------------------------------------------------------------

    def reset(self) -> None:
        self.unit.hardware_reset()

    def assert_reset(self, asserted: bool) -> None:
        if self._reset_asserted and not asserted:
            self.unit.hardware_reset()  # the system leaves reset when nRST is released
        self._reset_asserted = asserted

    def is_reset_asserted(self) -> bool:
        return self._reset_asserted

    # -- DAP access ---------------------------------------------------------------------------------

    def read_dp(self, addr: int, now: bool = True) -> Any:
        return self._result(lambda: self.unit.dap.read_dp(addr), now)

    def write_dp(self, addr: int, data: int) -> None:
        self._wire(lambda: self.unit.dap.write_dp(addr, data))

    def read_ap(self, addr: int, now: bool = True) -> Any:
        return self._result(lambda: self.unit.dap.read_ap(addr), now)

    def write_ap(self, addr: int, data: int) -> None:
        self._wire(lambda: self.unit.dap.write_ap(addr, data))

    def read_ap_multiple(self, addr: int, count: int = 1, now: bool = True) -> Any:
        return self._result(lambda: self.unit.dap.read_ap_multiple(addr, count), now)

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        self._wire(lambda: self.unit.dap.write_ap_multiple(addr, list(values)))

    def _result(self, transfer: Callable[[], Any], now: bool) -> Any:
        value = self._wire(transfer)
        return value if now else (lambda: value)

    def _wire(self, transfer: Callable[[], Any]) -> Any:
        if not self._is_open:
            raise exceptions.ProbeError(f"probe {PROBE_TYPE}:{self.unit.name} is not open")
        try:
            return transfer()
        except NoAck as exc:
            raise exceptions.TransferError(str(exc)) from None
        except DapFault as exc:
            raise exceptions.TransferFaultError(str(exc)) from None


class SimProbePlugin(Plugin):
    """The ``pyocd.probe`` plugin: the simulated probe, and the virtual MCU's target type."""

    def load(self) -> type[SimProbe]:
        from hil.sim.swd.target import register_target

        register_target()
        return SimProbe

    @property
    def name(self) -> str:
        return PROBE_TYPE

    @property
    def description(self) -> str:
        return "HIL virtual rig: simulated SWD probe on the virtual DUT"
