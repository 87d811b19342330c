"""The virtual unit handler: swaps a factory-fresh DUT into the fixture, at the wire (SCPI over TCP).

A provisioning line's automated handler picks a unit from its input tray, presses it onto the
test fixture's pogo pins, scans its label, and after the test drops it into a PASS, FAIL or REJECT
bin. This one does it to the virtual relay node: loading unit *n* gives the DUT fresh erased NVM
and unit *n*'s MCU unique ID (96 bits, derived from the rig's seed and *n*, so a restarted rig
finds the same unit again); a label, when ``sim.handler.labels`` is set, is a TR005 payload with
DevEUI ``dev_eui_start + n - 1``. Commands are in ``profiles/handler_hil_fixture.yaml``.

Like a real handler it refuses to move a unit while the DUT is powered (``-221`` settings
conflict: hot-plugging pogo pins), or to load onto a unit still in the fixture. Loading and
unloading take ``load_time_s``/``unload_time_s`` of rig time; ``UNIT:PRES?`` says 0 meanwhile.

With ``state_file`` the tray position, the unit in the fixture and the bins survive the process
(written atomically after every change), as the NVM does with ``dut.nvm_file``: a provisioning
run killed half-way finds the same unit in the fixture when it starts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hil.lorawan.types import EUI64
from hil.sim.config import SimHandler
from hil.files import write_atomically
from hil.sim.instruments.scpi import ScpiCall, ScpiEngine, ScpiError, ScpiProfile, load_profile
from hil.sim.instruments.tcp_server import SocketInstrument
from hil.sim.scheduler import Scheduler

__all__ = ["HandledUnit", "VirtualHandler", "unit_uid"]

log = logging.getLogger(__name__)

BINS = ("PASS", "FAIL", "REJECT")
STATE_VERSION = 1


def unit_uid(seed: int, serial: int) -> bytes:
    """The 96-bit MCU unique ID of virtual unit ``serial`` on a rig seeded ``seed``."""
    return hashlib.sha256(f"hil-sim-unit:{seed}:{serial}".encode()).digest()[:12]


@dataclass(frozen=True)
class HandledUnit:
    """A unit the handler put in the fixture: its number, MCU unique ID and label (None: none)."""

    serial: int
    uid: bytes
    label: str | None


@dataclass
class _State:
    next_serial: int = 1
    present: int | None = None
    bins: dict[str, list[int]] = field(default_factory=lambda: {b: [] for b in BINS})


def _label(config: SimHandler, serial: int) -> str | None:
    labels = config.labels
    if labels is None:
        return None
    from hil.provision.tr005 import Tr005Label, format_label  # the label printer speaks TR005

    dev_eui = EUI64((int(labels.dev_eui_start) + serial - 1) & ((1 << 64) - 1))
    return format_label(Tr005Label(labels.join_eui, dev_eui, labels.vendor_id, labels.model_id,
                                   serial_number=f"{serial:08d}"), checksum=True)


class VirtualHandler(SocketInstrument):
    """The handler instrument. ``on_unit(unit, fresh)`` puts ``unit`` in the virtual DUT (fresh:
    erased NVM; not fresh: a unit already there when the rig restarts); ``dut_powered()`` says
    whether the DUT's supply is on."""

    def __init__(
        self,
        config: SimHandler,
        *,
        seed: int,
        on_unit: Callable[[HandledUnit, bool], None],
        dut_powered: Callable[[], bool],
        scheduler: Scheduler | None = None,
        profile: ScpiProfile | str | Path = "handler_hil_fixture",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.profile = profile if isinstance(profile, ScpiProfile) else load_profile(profile, ScpiProfile)
        super().__init__(name=self.profile.name, host=host, port=port, scheduler=scheduler)
        self.config = config
        self.seed = seed
        self._on_unit = on_unit
        self._dut_powered = dut_powered
        self._lock = threading.RLock()
        self._state = self._load_state()
        self._moving: str | None = None  # "load" or "unload" while the arm moves
        self.engine = ScpiEngine(
            self.profile.commands,
            {"load": self._op_load, "present": self._op_present, "busy": self._op_busy, "serial": self._op_serial,
             "label": self._op_label, "bin": self._op_bin, "count": self._op_count},
            idn=self.profile.idn(), error_format=self.profile.error_format,
            error_queue_size=self.profile.error_queue_size, name=self.profile.name,
        )

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Put back the unit a previous run left in the fixture (its NVM is the rig's), then serve."""
        with self._lock:
            present = self._state.present
        if present is not None:
            self._on_unit(self.unit(present), False)
        return super().start()

    def unit(self, serial: int) -> HandledUnit:
        """Unit ``serial`` (1-based) of the tray."""
        return HandledUnit(serial, unit_uid(self.seed, serial), _label(self.config, serial))

    @property
    def present(self) -> HandledUnit | None:
        with self._lock:
            serial = self._state.present if self._moving is None else None
        return self.unit(serial) if serial is not None else None

    def bins(self) -> dict[str, list[int]]:
        with self._lock:
            return {b: list(v) for b, v in self._state.bins.items()}

    def handle_line(self, line: str) -> str | None:
        with self._lock:
            return self.engine.execute(line)

    # -- commands ----------------------------------------------------------------------------------

    def _check_idle(self, what: str) -> None:
        if self._moving is not None:
            raise ScpiError(-221, f"{what}: the handler is still busy ({self._moving})")
        if self._dut_powered():
            raise ScpiError(-221, f"{what}: the DUT is powered; switch its supply off before moving a unit")

    def _op_load(self, call: ScpiCall) -> None:
        self._check_idle("UNIT:LOAD")
        state = self._state
        if state.present is not None:
            raise ScpiError(-221, f"UNIT:LOAD: unit {state.present} is still in the fixture; bin it first (UNIT:BIN)")
        wanted = call.args.get("serial")
        if wanted is None:
            if state.next_serial > self.config.units:
                raise ScpiError(-200, f"UNIT:LOAD: the input tray is empty ({self.config.units} units loaded)")
            serial = state.next_serial
            state.next_serial += 1
        else:
            holder = next((b for b, units in state.bins.items() if wanted in units), None)
            if holder is None:
                raise ScpiError(-222, f"UNIT:LOAD {wanted}: no such unit in the bins")
            state.bins[holder].remove(wanted)
            serial = wanted
        unit = self.unit(serial)
        self._on_unit(unit, wanted is None)  # the DUT is unpowered: swapping it now is invisible until the move ends
        state.present = serial
        self._save()
        self._move("load", self.config.load_time_s, lambda: None)
        log.info("%s: loading unit %d (uid %s)", self.name, serial, unit.uid.hex())

    def _op_bin(self, call: ScpiCall) -> None:
        self._check_idle("UNIT:BIN")
        where = str(call.args["bin"]).upper()
        if where not in BINS:
            raise ScpiError(-224, f"UNIT:BIN {where}: expected one of {', '.join(BINS)}")
        state = self._state
        if state.present is None:
            raise ScpiError(-221, "UNIT:BIN: no unit in the fixture")
        state.bins[where].append(state.present)
        state.present = None
        self._save()
        self._move("unload", self.config.unload_time_s, lambda: None)

    def _move(self, what: str, seconds: float, done: Callable[[], None]) -> None:
        self._moving = what

        def finish() -> None:
            with self._lock:
                self._moving = None
            done()

        if self.scheduler is not None and self.scheduler.running and seconds > 0:
            self.scheduler.call_later(seconds, finish, name=f"handler-{what}")
        else:
            finish()

    def _op_present(self, call: ScpiCall) -> str:
        return "1" if self._state.present is not None and self._moving is None else "0"

    def _op_busy(self, call: ScpiCall) -> str:
        return "1" if self._moving is not None else "0"

    def _op_serial(self, call: ScpiCall) -> str:
        return str(self._state.present or 0) if self._moving is None else "0"

    def _op_label(self, call: ScpiCall) -> str:
        if self._state.present is None or self._moving is not None:
            raise ScpiError(-221, "UNIT:LABel?: no unit in the fixture")
        return f'"{_label(self.config, self._state.present) or ""}"'

    def _op_count(self, call: ScpiCall) -> str:
        where = str(call.args["bin"]).upper()
        if where == "TRAY":
            return str(max(0, self.config.units - self._state.next_serial + 1))
        if where not in BINS:
            raise ScpiError(-224, f"UNIT:COUNt? {where}: expected TRAY or one of {', '.join(BINS)}")
        return str(len(self._state.bins[where]))

    # -- persistence -------------------------------------------------------------------------------

    def _load_state(self) -> _State:
        path = self.config.state_file
        if path is None or not Path(path).exists():
            return _State()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            bins = {b: [int(s) for s in data["bins"].get(b, [])] for b in BINS}
            present = data["present"]
            return _State(int(data["next_serial"]), int(present) if present is not None else None, bins)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"handler state file {path} is unusable ({exc}); delete it to start a fresh tray") from None

    def _save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        path = Path(path)
        state = self._state
        text = json.dumps({"version": STATE_VERSION, "next_serial": state.next_serial, "present": state.present,
                           "bins": state.bins}, indent=1)
        write_atomically(path, text, mode=0o600)

    def describe(self) -> dict[str, Any]:
        """The handler's state (for diagnostics)."""
        with self._lock:
            return {"next_serial": self._state.next_serial, "present": self._state.present,
                    "moving": self._moving, "bins": {b: len(v) for b, v in self._state.bins.items()}}
