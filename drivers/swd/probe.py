"""The DUT's debug probe through pyocd: flash, memory, NVM fields, reset, halt.

::

    probe = SwdProbe("004A00123456789ABCDEF012", "stm32wl55jcix", rig.clock, nvm_layout=swd.nvm_layout)
    probe.open()                              # attaches: a running DUT keeps running
    probe.flash(Path("fw.hex"), progress=lambda f: ...)    # skipped when the chip already holds it
    nonce = probe.read_field("dev_nonce")
    probe.reset("hardware")
    probe.close()

The same code drives a real ST-Link, J-Link or CMSIS-DAP probe and the virtual rig's simulated one
(``hilsim:<unit>`` in the same process, ``remote:host:port`` through pyocd's probe server).

* :meth:`SwdProbe.open` connects with ``connect_mode="attach"``: it never halts or resets the DUT.
  A probe that is missing or held by another program is a :class:`~hil.faults.RigFault` naming it;
  a target that does not answer yet (just powered) is retried until the deadline.
* Every probe or transfer error becomes a RigFault saying what was done where. A transfer error
  is first retried once after reconnecting: a DUT that was power-cycled since the last access has
  lost its debug-port state (the supply is switched off after every test).
* Writes into flash (image, NVM field in flash) go through the target's flash algorithm, which
  halts the core; the DUT is then restarted with a system reset.
* Nothing is printed: pyocd's progress bar is off, progress goes to the callback.
* ``import pyocd`` takes about 0.5 s; it happens in :meth:`SwdProbe.open`, not at import.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, TypeVar

import yaml

from drivers.swd import fields
from drivers.swd.image import FirmwareImage, ImageError, load_image
from hil.clock import Clock, Deadline
from hil.faults import RigFault
from hil.report.steps import rig_step_method
from hil.rigfile.model import NvmField

if TYPE_CHECKING:
    from pyocd.core.session import Session
    from pyocd.core.target import Target

log = logging.getLogger(__name__)

T = TypeVar("T")
ResetKind = Literal["hardware", "sysresetreq"]
CONNECT_TIMEOUT_S = 5.0  # rig seconds a target may take to answer after power-up
RETRY_S = 0.02  # rig seconds between connection attempts
EEPROM_ERASED = 0x00  # data EEPROM (and RAM-like NVM) reads zeros when erased (STM32L0)


class SwdError(RigFault):
    """The debug probe or the target's debug port failed (a rig fault)."""


class _NotAnswering(Exception):
    """The probe is there but the target does not answer on the wire (unpowered, not connected)."""


@dataclass(frozen=True)
class FlashResult:
    """What :meth:`SwdProbe.flash` did. ``seconds`` are rig seconds."""

    path: Path
    sha256: str
    bytes: int
    skipped: bool
    seconds: float
    erased_sectors: int | None = None
    version: str | None = None


class _Progress:
    """pyocd reports an erase ramp (0 to 1) then a program ramp (0 to 1 again): one rising fraction
    from them, the erase as the first half, to a caller's callback."""

    def __init__(self, sink: Callable[[float], None]) -> None:
        self.sink = sink
        self.phase = 0
        self.raw = 0.0
        self.last = -1.0

    def __call__(self, raw: float) -> None:
        if raw < self.raw and self.phase == 0:
            self.phase = 1  # programming started
        self.raw = raw
        self.report(min(1.0, (self.phase + max(0.0, raw)) / 2))

    def report(self, value: float) -> None:
        if value > self.last:
            self.last = value
            self.sink(value)


class _Loader:
    """pyocd's MemoryLoader, keeping the programming statistics it only logs."""

    @staticmethod
    def create(session: "Session", progress: Callable[[float], None]) -> Any:
        from pyocd.flash.loader import MemoryLoader

        class Loader(MemoryLoader):  # type: ignore[misc]
            perf: list[Any] = []

            def _log_performance(self, perf_list: list[Any]) -> None:
                self.perf = list(perf_list)
                super()._log_performance(perf_list)

        return Loader(session, progress=progress, smart_flash=True, keep_unwritten=True, chip_erase="sector")


class _Expected(logging.Filter):
    """Turns pyocd's error logs into debug logs in the threads that expect those errors (connecting
    to a target still powering up, closing a session whose target lost power)."""

    LOGGERS = ("pyocd.coresight.dap", "pyocd.core.session", "pyocd.board.board", "pyocd.coresight.cortex_m")

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[int, int] = {}  # thread id -> nesting depth
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread in self.threads and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True

    @contextlib.contextmanager
    def expected(self) -> Iterator[None]:
        with self._lock:
            for name in self.LOGGERS:
                if self not in logging.getLogger(name).filters:
                    logging.getLogger(name).addFilter(self)
            me = threading.get_ident()
            self.threads[me] = self.threads.get(me, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.threads[me] -= 1
                if not self.threads[me]:
                    del self.threads[me]


_EXPECTED = _Expected()


@functools.cache
def _unique_id_table() -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    text = resources.files(__package__).joinpath("unique_id.yaml").read_text(encoding="utf-8")
    return [(e["target"], tuple((p["addr"], p["size"]) for p in e["pieces"])) for e in yaml.safe_load(text)]


class SwdProbe:
    """One debug probe on the DUT, opened by its unique id, for one pyocd target type."""

    def __init__(self, probe_uid: str, target: str, clock: Clock, nvm_layout: Mapping[str, NvmField] | None = None,
                 *, nvm_region: tuple[int, int] | None = None, frequency_hz: int = 4_000_000,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, options: Mapping[str, Any] | None = None) -> None:
        """``nvm_region`` (start, size) is what :meth:`erase_nvm` erases; default: the target memory
        map's EEPROM region. ``options`` are extra pyocd session options."""
        if not probe_uid or not isinstance(probe_uid, str):
            raise ValueError("SwdProbe needs the probe's unique id (dut.swd.probe_uid), e.g. an ST-Link serial")
        if not target or not isinstance(target, str):
            raise ValueError("SwdProbe needs a pyocd target type (dut.swd.target), e.g. stm32wl55jcix")
        self.probe_uid = probe_uid
        self.target = target
        self.clock = clock
        self.nvm_layout: dict[str, NvmField] = dict(nvm_layout or {})
        self.nvm_region = nvm_region
        self.connect_timeout_s = connect_timeout_s
        self._options: dict[str, Any] = {
            "target_override": target, "connect_mode": "attach", "frequency": frequency_hz,
            "hide_programming_progress": True, "no_config": True, "resume_on_disconnect": True,
            **(options or {}),
        }
        self._session: Session | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SwdProbe({self.probe_uid!r}, {self.target!r}, {'open' if self._session is not None else 'closed'})"

    # -- life cycle --------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._session is not None

    def open(self, deadline: Deadline | None = None) -> "SwdProbe":
        """Connect (attach: the DUT is neither halted nor reset). A target that does not answer is
        retried until ``deadline`` (default: ``connect_timeout_s`` rig seconds from now)."""
        with self._lock:
            if self._session is not None:
                return self
            deadline = deadline or Deadline.after(self.clock, self.connect_timeout_s)
            attempt = 0
            while True:
                try:
                    with _EXPECTED.expected() if attempt else contextlib.nullcontext():
                        self._session = self._connect()
                    return self
                except _NotAnswering as exc:
                    attempt += 1
                    if deadline.expired:
                        raise SwdError(f"SWD probe {self.probe_uid}: the {self.target} target does not answer "
                                       f"on SWD: {exc} (is the DUT powered and the SWD cable connected?)") from None
                self.clock.sleep(min(RETRY_S, max(deadline.remaining, 0.0)))

    def close(self) -> None:
        """Disconnect; the DUT is resumed if it was halted. Safe to call twice."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            _close_quietly(session)

    def __enter__(self) -> "SwdProbe":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> "Session":
        from pyocd.core import exceptions
        from pyocd.core.helpers import ConnectHelper
        from pyocd.core.session import Session

        where = f"SWD probe {self.probe_uid}"
        try:  # pyocd's own chooser prints to stdout; this one does not
            probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=self.probe_uid,
                                                            print_wait_message=False)
        except exceptions.Error as exc:
            raise SwdError(f"{where}: cannot look for the probe: {exc}") from None
        if not probes:
            raise SwdError(f"{where} not found: not connected, or another program holds it"
                           f" (probes seen: {self._probes_seen()})")
        exact = [p for p in probes if p.unique_id in (self.probe_uid, self.probe_uid.split(":", 1)[-1])]
        if len(probes) > 1 and len(exact) != 1:
            raise SwdError(f"{where} matches {len(probes)} probes ({', '.join(p.unique_id for p in probes)}): "
                           "give its whole unique id")
        probe = exact[0] if exact else probes[0]
        try:
            session = Session(probe, options=dict(self._options))
        except exceptions.TargetSupportError as exc:
            raise SwdError(f"{where}: pyocd does not know target type {self.target!r}: {exc} "
                           f"(a real part may need `pyocd pack install {self.target}`)") from None
        except exceptions.Error as exc:
            raise SwdError(f"{where}: cannot create a pyocd session: {exc}") from None
        try:
            session.open()
        except exceptions.ProbeError as exc:
            _close_quietly(session)
            raise SwdError(f"{where} is busy or unusable: {exc}") from None
        except exceptions.TargetSupportError as exc:
            _close_quietly(session)
            raise SwdError(f"{where}: the {self.target} target is not supported: {exc}") from None
        except exceptions.Error as exc:
            _close_quietly(session)
            if isinstance(exc, exceptions.TransferError) or isinstance(exc.__cause__, exceptions.TransferError):
                raise _NotAnswering(str(exc.__cause__ or exc)) from None
            raise SwdError(f"{where}: connecting to the {self.target} target failed: {exc}") from None
        except Exception:
            _close_quietly(session)
            raise
        return session

    def _probes_seen(self) -> str:
        from pyocd.core.helpers import ConnectHelper

        try:
            probes = ConnectHelper.get_all_connected_probes(blocking=False)
        except Exception as exc:  # listing is best effort: the error message must not fail
            return f"unknown ({type(exc).__name__})"
        return ", ".join(f"{p.unique_id} ({p.description})" for p in probes) or "none"

    # -- what a test uses ---------------------------------------------------------------------------

    def info(self) -> dict[str, str]:
        """The probe, the target and its core, for ``rig check`` and reports."""
        def look(target: "Target") -> dict[str, str]:
            session = self._require_session()
            core = target.selected_core
            name = getattr(core, "name", "") or type(core).__name__
            return {"probe": f"{session.probe.description} ({self.probe_uid})", "target": self.target,
                    "core": name, "state": target.get_state().name.lower()}
        return self._call("read the target's identity", look)

    def read_memory(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address``."""
        _check_range(address, size)
        return self._call(f"read {size} bytes at 0x{address:08X}",
                          lambda t: bytes(t.read_memory_block8(address, size)) if size else b"")

    def write_memory(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address``; into flash through the flash algorithm (the sectors around
        it are kept; the DUT is restarted with a system reset afterwards)."""
        data = bytes(data)
        _check_range(address, len(data))
        if not data:
            return
        if self._in_flash(address, len(data)):
            self._program([(address, data)], progress=None, what=f"program {len(data)} bytes at 0x{address:08X}")
            self._reset_now("sysresetreq")
            return
        self._call(f"write {len(data)} bytes at 0x{address:08X}", lambda t: t.write_memory_block8(address, data))

    @rig_step_method("swd: read NVM field {name}")
    def read_field(self, name: str) -> int | bytes:
        """The NVM field ``name`` of the rig file's ``nvm_layout`` (int, EUI64 or bytes)."""
        f = fields.field(self.nvm_layout, name)
        return fields.decode(name, f, self.read_memory(f.addr, f.length))

    @rig_step_method("swd: write NVM field {name}")  # the value is not shown: it may be a key
    def write_field(self, name: str, value: int | bytes | str) -> None:
        """Write the NVM field ``name``; the firmware reads it at its next boot."""
        f = fields.field(self.nvm_layout, name)
        self.write_memory(f.addr, fields.encode(name, f, value))

    @rig_step_method("swd: erase NVM", "reset")
    def erase_nvm(self, *, reset: bool = True) -> tuple[int, int]:
        """Make the DUT factory-fresh: halt it, erase the NVM region (flash sectors erased, EEPROM
        zeroed) and, with ``reset``, restart it so the firmware boots from the erased NVM.
        Returns the (start, size) erased."""
        start, size, in_flash = self._nvm_bounds()
        what = f"erase the NVM region 0x{start:08X}..0x{start + size - 1:08X}"

        def erase(target: "Target") -> None:
            target.halt()
            if in_flash:
                from pyocd.flash.eraser import FlashEraser

                FlashEraser(self._require_session(), FlashEraser.Mode.SECTOR).erase([(start, start + size)])
            else:
                target.write_memory_block8(start, bytes([EEPROM_ERASED]) * size)

        self._call(what, erase)
        if reset:
            self._reset_now("sysresetreq")
        return start, size

    def unique_id(self) -> bytes:
        """The MCU's factory-programmed unique ID (96 bits on STM32)."""
        pieces = self._unique_id_pieces()
        return b"".join(self.read_memory(address, size) for address, size in pieces)

    @rig_step_method("swd: {kind} reset", "halt")
    def reset(self, kind: ResetKind = "hardware", *, halt: bool = False) -> None:
        """Reset the DUT: ``hardware`` pulses nRST through the probe, ``sysresetreq`` asks the core
        (AIRCR). With ``halt`` the core stops at the reset vector."""
        self._reset_now(kind, halt=halt)

    @rig_step_method("swd: halt")
    def halt(self) -> None:
        """Stop the core: the firmware does nothing (no radio, no console) until :meth:`resume`."""
        self._call("halt the core", lambda t: t.halt())

    @rig_step_method("swd: resume")
    def resume(self) -> None:
        """Let the halted core run again."""
        self._call("resume the core", lambda t: t.resume())

    def is_halted(self) -> bool:
        from pyocd.core.target import Target

        return self._call("read the core state", lambda t: t.get_state() == Target.State.HALTED)

    # -- flashing ---------------------------------------------------------------------------------

    @rig_step_method("swd: flash {image}", "base_address", "verify", "skip_if_same")
    def flash(self, image: str | Path, *, base_address: int | None = None, verify: bool = True,
              skip_if_same: bool = True, progress: Callable[[float], None] | None = None) -> FlashResult:
        """Program ``image`` (.bin at ``base_address`` or the boot memory, .hex, .elf), verify it by
        reading it back, and restart the DUT. With ``skip_if_same`` an image the chip already holds
        is not programmed (``skipped``). ``progress`` gets the fraction done, 0.0 to 1.0.

        A bad image file is a ValueError (ImageError) naming it; programming or verify trouble a RigFault."""
        started = self.clock.now()
        img = self._load(image, base_address)
        done = _Progress(progress or (lambda fraction: None))
        if skip_if_same and self._holds(img):
            done.report(1.0)
            log.info("%s: %s already on the chip: not flashed", self.probe_uid, img.describe())
            return self._result(img, started, skipped=True)
        perf = self._program([(s.address, s.data) for s in img.segments], progress=done,
                             what=f"flash {img.describe()}")
        if verify:
            self._verify(img)
        self._reset_now("sysresetreq")
        done.report(1.0)
        erased = sum(getattr(p, "erase_sector_count", 0) or 0 for p in perf) if perf else None
        result = self._result(img, started, skipped=False, erased_sectors=erased)
        log.info("%s: flashed %s in %.2f rig s (%s sectors erased)", self.probe_uid, img.describe(), result.seconds,
                 erased)
        return result

    def _load(self, image: str | Path, base_address: int | None) -> FirmwareImage:
        boot = self._call("read the memory map", lambda t: t.memory_map.get_boot_memory())
        img = load_image(image, base_address=base_address, default_base=boot.start if boot is not None else None)
        regions = self._call("read the memory map", lambda t: list(t.memory_map))
        for seg in img.segments:
            if not any(r.contains_range(start=seg.address, length=len(seg.data)) and (r.is_flash or r.is_writable)
                       for r in regions):
                known = ", ".join(f"{r.name} 0x{r.start:08X}..0x{r.end:08X}" for r in regions)
                raise ImageError(f"{img.path}: segment 0x{seg.address:08X}..0x{seg.end - 1:08X} is not inside one "
                                 f"flash or RAM region of {self.target} ({known})")
        return img

    def _holds(self, img: FirmwareImage) -> bool:
        return all(self.read_memory(s.address, len(s.data)) == s.data for s in img.segments)

    def _verify(self, img: FirmwareImage) -> None:
        for seg in img.segments:
            got = self.read_memory(seg.address, len(seg.data))
            if got != seg.data:
                at = next(i for i, (a, b) in enumerate(zip(got, seg.data)) if a != b)
                raise SwdError(f"SWD probe {self.probe_uid}: verify of {img.path.name} failed at "
                               f"0x{seg.address + at:08X}: the chip holds 0x{got[at]:02X}, "
                               f"the image 0x{seg.data[at]:02X}")

    def _program(self, chunks: list[tuple[int, bytes]], progress: Callable[[float], None] | None,
                 what: str) -> list[Any]:
        def program(target: "Target") -> list[Any]:
            loader = _Loader.create(self._require_session(), progress or (lambda fraction: None))
            for address, data in chunks:
                loader.add_data(address, data)
            loader.commit()
            return loader.perf

        return self._call(what, program)

    def _result(self, img: FirmwareImage, started: float, *, skipped: bool,
                erased_sectors: int | None = None) -> FlashResult:
        return FlashResult(path=img.path, sha256=img.sha256, bytes=img.size, skipped=skipped,
                           seconds=self.clock.now() - started, erased_sectors=erased_sectors, version=img.version)

    # -- internals ----------------------------------------------------------------------------------

    def _reset_now(self, kind: str, *, halt: bool = False) -> None:
        from pyocd.core.target import Target

        types = {"hardware": Target.ResetType.HARDWARE, "sysresetreq": Target.ResetType.SYSRESETREQ}
        if kind not in types:
            raise ValueError(f"reset kind must be one of {', '.join(types)}, not {kind!r}")
        reset_type = types[kind]
        if halt:
            self._call(f"{kind} reset and halt", lambda t: t.reset_and_halt(reset_type))
        else:
            self._call(f"{kind} reset", lambda t: t.reset(reset_type))

    def _in_flash(self, address: int, size: int) -> bool:
        regions = self._call("read the memory map", lambda t: list(t.memory_map))
        return any(r.is_flash and r.intersects_range(start=address, length=size) for r in regions)

    def _nvm_bounds(self) -> tuple[int, int, bool]:
        regions = self._call("read the memory map", lambda t: list(t.memory_map))
        if self.nvm_region is not None:
            start, size = self.nvm_region
            return start, size, any(r.is_flash and r.intersects_range(start=start, length=size) for r in regions)
        for r in regions:
            if "eeprom" in r.name.lower():
                return r.start, r.length, r.is_flash
        raise ValueError(f"target {self.target} has no EEPROM region in its memory map "
                         f"({', '.join(r.name for r in regions)}): give SwdProbe nvm_region=(start, size)")

    def _unique_id_pieces(self) -> tuple[tuple[int, int], ...]:
        declared = self._call("read the target type", lambda t: getattr(t, "UNIQUE_ID", None))
        if declared:
            return tuple(declared)
        for pattern, pieces in _unique_id_table():
            if fnmatch.fnmatch(self.target.lower(), pattern):
                return pieces
        known = ", ".join(p for p, _ in _unique_id_table())
        raise ValueError(f"the unique-ID location of target {self.target} is not known "
                         f"(drivers/swd/unique_id.yaml has: {known})")

    def _require_session(self) -> "Session":
        if self._session is None:
            raise SwdError(f"SWD probe {self.probe_uid} is not open: call open() first")
        return self._session

    def _call(self, what: str, action: Callable[["Target"], T]) -> T:
        """Run ``action`` on the target; a transfer error is retried once after reconnecting, any
        probe error ends as a RigFault naming ``what``."""
        from pyocd.core import exceptions

        with self._lock:
            session = self._require_session()
            try:
                return action(session.target)
            except exceptions.TransferError as exc:
                first: Exception = exc
            except exceptions.Error as exc:
                raise self._fault(what, exc) from None
            log.info("SWD probe %s: %s failed (%s): reconnecting once", self.probe_uid, what, first)
            self.close()  # the target was likely power-cycled: its old session cannot close cleanly
            try:
                self.open()
                return action(self._require_session().target)
            except exceptions.Error as exc:
                raise self._fault(what, exc) from None

    def _fault(self, what: str, exc: BaseException) -> SwdError:
        return SwdError(f"SWD probe {self.probe_uid} ({self.target}): {what} failed: {exc}")


def load_pyocd() -> None:
    """Import pyocd now (half a second or more of interpreter time), e.g. before the DUT is powered,
    rather than at the first :meth:`SwdProbe.open`."""
    import pyocd.core.helpers  # noqa: F401
    import pyocd.flash.loader  # noqa: F401


def _check_range(address: int, size: int) -> None:
    if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFFFFFF:
        raise ValueError(f"address must be an int in 0..0xFFFFFFFF, got {address!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or address + size > 1 << 32:
        raise ValueError(f"size must be an int >= 0 that stays inside the 32-bit address space, got {size!r}")


def _close_quietly(session: Any) -> None:
    """Close a pyocd session; its errors (a target gone, e.g. unpowered at the session's end) only
    reach the debug log: disconnecting must not fail."""
    try:
        with _EXPECTED.expected():
            session.close()
    except Exception as exc:
        log.debug("closing the pyocd session failed: %s", exc)
