"""The provisioning station: one unit after another through identify, flash, write, test, record.

Per unit (each a recorded step with its rig and real duration and its measurement):

=================  ==========================================================================
``identify``       scan the label (TR005) and/or read the MCU unique ID through SWD
``allocate``       the store's record for the unit: its existing identity (an interrupted run,
                   a failed unit, a rework) or a new one: DevEUI from the label or the EUI block's
                   next serial, fresh keys, sealed and stored before anything touches the unit
``flash``          the production image through SWD, verified, skipped when its hash matches
``write``          identity and keys into the DUT (SWD into the NVM layout, or the console), read back
``register``       the unit on the reference network server
``sleep_current``  supply current with the unit idle
``join``           OTAA join over the air
``relay``          relay on and off over the air, 230 V at the output checked by the meter
``uplink``         a long uplink received by the network; the supply's peak during it (TX current)
``record``         the result; the handler bins the unit (PASS, FAIL; REJECT for refused units)
=================  ==========================================================================

A rig fault (:class:`~hil.faults.RigFault`) stops the run with the unit's record still in
progress, so the next run finds the same unit in the fixture and resumes it with the same
identity. A DUT failure (AssertionError) fails the unit and the line goes on with the next one,
until ``max_consecutive_failures`` in a row stop it (something is wrong with the station).
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from hil.clock import Clock, Deadline
from hil.faults import RigFault
from hil.lorawan.types import EUI64
from hil.provision import functional
from hil.provision.config import StationConfig
from hil.provision.identity import EuiBlock, generate_root_keys
from hil.provision.kek import KeyEncryptor, load_kek
from hil.provision.measure import Measurement
from hil.provision.store import AlreadyProvisioned, Claim, DuplicateDevEui, RecordStore, StepRecord
from hil.provision.tr005 import LabelError, Tr005Label, format_label, parse_label
from hil.provision.writer import ConsoleIdentityWriter, Identity, IdentityWriter, SwdIdentityWriter
from hil.relay.protocol import RelayKey

__all__ = ["BatchResult", "ProvisioningStation", "StationParts", "StationStopped", "StepResult", "UnitOutcome"]

log = logging.getLogger("hil.provision")

STEPS = ("identify", "allocate", "flash", "write", "register", "sleep_current", "join", "relay", "uplink", "record")


class StationStopped(RuntimeError):
    """The line stopped: too many units failed in a row, or a unit could not be sorted."""


@dataclass
class StationParts:
    """The rig parts the station drives (drivers, opened; see :func:`hil.provision.session.parts_from_session`)."""

    clock: Clock
    console: Any  # drivers.console.DutConsole
    psu: Any  # drivers.psu.PowerSupply
    meter: Any  # drivers.feedback: ac_voltage()
    network: Any  # hil.network.NetworkServer
    handler: Any  # drivers.handler.UnitHandler
    relay_key: RelayKey | None = None
    relay_fport: int = 10
    network_settings: Any = None  # hil.rigfile.model.Network (RX settings for the device config)
    swd: Any = None  # drivers.swd.SwdProbe, opened; None: no probe
    nvm_layout: dict[str, Any] = field(default_factory=dict)  # the rig file's dut.swd.nvm_layout
    firmware_image: Path | None = None  # the rig file's dut.swd.firmware


@dataclass(frozen=True)
class StepResult:
    """One step of one unit: status, durations and measurements."""

    name: str
    status: str  # passed, failed, error
    real_s: float
    rig_s: float
    measurements: tuple[Measurement, ...] = ()
    detail: str = ""


@dataclass
class UnitOutcome:
    """What became of one unit: ``passed``, ``failed``, ``refused`` (passed before, no --rework),
    ``rejected`` (unidentifiable label, DevEUI taken) or ``sorted`` (passed earlier, binned now)."""

    status: str
    unit_uid: str | None = None
    dev_eui: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    real_s: float = 0.0
    rig_s: float = 0.0
    message: str = ""
    new_identity: bool = False


@dataclass
class BatchResult:
    """A run of the station: every unit's outcome and the batch's count of passed units."""

    batch: str
    target: int
    passed_in_batch: int
    outcomes: list[UnitOutcome] = field(default_factory=list)
    real_s: float = 0.0
    rig_s: float = 0.0
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return self.passed_in_batch >= self.target

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for outcome in self.outcomes:
            found[outcome.status] = found.get(outcome.status, 0) + 1
        return found


class _StepFailed(Exception):
    """A step failed (its result is recorded); the unit stops there."""


class ProvisioningStation:
    """Runs units through the flow with the rig ``parts``, recording into ``store``."""

    def __init__(self, config: StationConfig, parts: StationParts, store: RecordStore | None = None, *,
                 encryptor: KeyEncryptor | None = None, on_step: Callable[[str, StepResult], None] | None = None) -> None:
        self.config = config
        self.parts = parts
        self.clock = parts.clock
        self.encryptor = encryptor or load_kek(config.kek, base_dir=config.base_dir)
        self.store = store or RecordStore(config.store_url, self.encryptor, now=self.clock.unix_time)
        self.on_step = on_step
        identity = config.identity
        self.block: EuiBlock | None = identity.eui_block.block() if identity.eui_block is not None else None
        if identity.unit_id == "swd" or config.write.method == "swd":
            if parts.swd is None:
                raise RigFault("the station config needs the SWD probe (identity.unit_id or write.method is swd), "
                               "and the rig file has no dut.swd")
        self.writer: IdentityWriter
        if config.write.method == "swd":
            layout = {**parts.nvm_layout, **config.write.nvm_layout}
            self.writer = SwdIdentityWriter(parts.swd, layout, config.write.swd_fields)
        else:
            self.writer = ConsoleIdentityWriter(parts.console)
        self.firmware = self._firmware_image()

    def _firmware_image(self) -> Path | None:
        fw = self.config.firmware
        if not fw.flash or self.parts.swd is None:
            return None
        image = self.config.resolve(fw.image) if fw.image is not None else self.parts.firmware_image
        if image is not None and not image.is_file():
            raise RigFault(f"firmware image {image} does not exist")
        return image

    def close(self) -> None:
        self.store.close()

    # -- a batch -----------------------------------------------------------------------------------

    def run_batch(self, count: int, *, rework: bool = False, max_units: int | None = None) -> BatchResult:
        """Provision until the batch holds ``count`` passed units (counting earlier runs of it)."""
        batch = self.config.batch
        start_real, start_rig = time.monotonic(), self.clock.now()
        result = BatchResult(batch, count, self.store.passed_count(batch))
        failures_in_row = 0
        handled = 0
        first = True
        while result.passed_in_batch < count:
            if max_units is not None and handled >= max_units:
                result.stopped = f"stopped after {handled} unit(s) (max_units)"
                break
            outcome = self.process_next(rework=rework, resume=first)
            first = False
            handled += 1
            result.outcomes.append(outcome)
            result.passed_in_batch = self.store.passed_count(batch)
            failures_in_row = failures_in_row + 1 if outcome.status == "failed" else 0
            log.info("%s: unit %s %s in %.1f s (%.1f rig s); batch %s: %d/%d passed", self.config.station_id,
                     outcome.dev_eui or outcome.unit_uid or "?", outcome.status.upper(), outcome.real_s,
                     outcome.rig_s, batch, result.passed_in_batch, count)
            if failures_in_row >= self.config.max_consecutive_failures:
                result.stopped = (f"{failures_in_row} units failed in a row: the line stops "
                                  "(check the fixture, the antenna, the supply)")
                break
        result.real_s, result.rig_s = time.monotonic() - start_real, self.clock.now() - start_rig
        return result

    def process_next(self, *, rework: bool = False, resume: bool = True) -> UnitOutcome:
        """Take the unit in the fixture (a run's leftover, when ``resume``) or load the next one, and process it."""
        handler = self.parts.handler
        self.parts.psu.output(False)  # no unit moves under power
        t0, r0 = time.monotonic(), self.clock.now()
        load_deadline = Deadline.after(self.clock, getattr(handler, "load_timeout_s", 120.0))
        if not (resume and handler.unit_present()):
            handler.load_next(load_deadline)
        outcome = self.process_unit(rework=rework)
        outcome.real_s, outcome.rig_s = time.monotonic() - t0, self.clock.now() - r0
        return outcome

    # -- one unit ----------------------------------------------------------------------------------

    def process_unit(self, *, rework: bool = False) -> UnitOutcome:
        """Run the unit in the fixture through the flow and bin it."""
        outcome = UnitOutcome("failed")
        claim: Claim | None = None
        attempt = 0
        try:
            try:
                with self._step(outcome, "identify"):
                    unit_uid, label, mcu_uid = self._identify()
                    outcome.unit_uid = unit_uid
                try:
                    with self._step(outcome, "allocate"):
                        claim = self._claim(unit_uid, label, mcu_uid, rework)
                except (AlreadyProvisioned, DuplicateDevEui) as exc:
                    outcome.status, outcome.message = ("refused" if isinstance(exc, AlreadyProvisioned)
                                                       else "rejected"), str(exc)
                    log.warning("%s", exc)
                    self._unload("reject")
                    return outcome
                record = claim.record
                outcome.dev_eui = record.dev_eui
                outcome.new_identity = claim.new
                attempt = record.attempts
                for step in outcome.steps:
                    self._record_step(record.id, attempt, step)
                if claim.finish_sorting:
                    outcome.status = "sorted"
                    outcome.message = "passed in an interrupted run; binned now"
                    self._unload("pass")
                    self.store.mark_sorted(record.id)
                    return outcome
                self._test(outcome, claim, attempt)
                outcome.status = "passed"
            except _StepFailed as exc:
                outcome.status, outcome.message = "failed", str(exc)
            except LabelError as exc:
                outcome.status, outcome.message = "rejected", str(exc)
        finally:
            self._power(False)
        if claim is None:
            self._unload("reject")
            return outcome
        with self._step(outcome, "record", record_to=(claim.record.id, attempt)):
            self.store.finish(claim.record.id, outcome.status == "passed")
        self._unload("pass" if outcome.status == "passed" else "fail")
        self.store.mark_sorted(claim.record.id)
        return outcome

    def _test(self, outcome: UnitOutcome, claim: Claim, attempt: int) -> None:
        cfg, parts, clock = self.config, self.parts, self.clock
        record, keys = claim.record, claim.keys
        dev_eui = EUI64.parse(record.dev_eui)
        identity = Identity(dev_eui, EUI64.parse(record.join_eui), keys, record.lorawan_version,
                            cfg.lorawan.device_class)
        at = (record.id, attempt)
        if self.firmware is not None:
            with self._step(outcome, "flash", record_to=at) as meas:
                self._power(True)
                result = parts.swd.flash(self.firmware, verify=cfg.firmware.verify, skip_if_same=True)
                self.store.set_fields(record.id, firmware_sha256=result.sha256)
                meas.append(Measurement("firmware_bytes", float(result.bytes), "B"))
                meas.append(Measurement("firmware_written", 0.0 if result.skipped else float(result.bytes), "B"))
                self._check_running_version(result.version)
        with self._step(outcome, "write", record_to=at):
            self._power(True)
            self._wait_console(cfg.test.boot_timeout_s)  # booted once: a blank unit's NVM is laid out
            self.writer.write(identity, Deadline.after(clock, 60.0))
            if self.writer.method == "swd":
                self._wait_console(cfg.write.boot_timeout_s)
        with self._step(outcome, "register", record_to=at):
            self._register(identity)
        with self._step(outcome, "sleep_current", record_to=at) as meas:
            m = functional.sleep_current(parts.psu, clock, cfg.limits.sleep_current, settle_s=cfg.test.sleep_settle_s,
                                         samples=cfg.test.sleep_samples)
            meas.append(m)
            if not m.passed:
                raise AssertionError(m.describe())
        link = (functional.RelayLink(parts.network, clock, dev_eui, parts.relay_key, parts.relay_fport)
                if parts.relay_key is not None else None)
        try:
            with self._step(outcome, "join", record_to=at) as meas:
                meas.append(functional.join(parts.console, parts.network, clock, dev_eui, cfg.test.join_timeout_s))
            if link is not None:
                with self._step(outcome, "relay", record_to=at) as meas:
                    meas.extend(functional.relay_click(link, parts.meter, on_limit=cfg.limits.mains_on,
                                                       off_limit=cfg.limits.mains_off,
                                                       timeout_s=cfg.test.relay_timeout_s))
        finally:
            if link is not None:
                link.close()
        with self._step(outcome, "uplink", record_to=at) as meas:
            payload = _test_payload(dev_eui, cfg.test.uplink_payload_bytes)
            meas.extend(functional.uplink_with_tx_current(
                parts.console, parts.network, parts.psu, clock, dev_eui, port=cfg.test.uplink_port, payload=payload,
                limit=cfg.limits.tx_current, attempts=cfg.test.tx_attempts, interval_s=cfg.test.sample_interval_s,
                timeout_s=cfg.test.uplink_timeout_s))

    # -- steps -------------------------------------------------------------------------------------

    def _identify(self) -> tuple[str, str | None, str | None]:
        cfg = self.config.identity
        label_text: str | None = None
        if cfg.unit_id == "label" or cfg.dev_eui == "label":
            label_text = self.parts.handler.scan_label()
            if label_text is None:
                raise LabelError("no label was scanned (the unit has none, or the scanner missed it)",
                                 field="payload", position=0)
            parse_label(label_text)  # LabelError: a clear message, the unit is rejected
        mcu_uid = None
        if cfg.unit_id == "swd" or self.parts.swd is not None:
            self._power(True)
            mcu_uid = bytes(self.parts.swd.unique_id()).hex()
        if cfg.unit_id == "swd":
            assert mcu_uid is not None
            return f"swd:{mcu_uid}", label_text, mcu_uid
        assert label_text is not None
        return f"label:{parse_label(label_text).dev_eui}", label_text, mcu_uid

    def _claim(self, unit_uid: str, label_text: str | None, mcu_uid: str | None, rework: bool) -> Claim:
        cfg = self.config
        scanned = parse_label(label_text) if label_text is not None else None
        settings = cfg.identity.label

        def label_for(dev_eui: EUI64) -> str:
            if scanned is not None:
                return label_text or ""
            return format_label(Tr005Label(cfg.lorawan.join_eui, dev_eui, settings.vendor_id, settings.model_id),
                                checksum=settings.checksum)

        kwargs: dict[str, Any] = {}
        if cfg.identity.dev_eui == "label":
            assert scanned is not None
            kwargs["dev_eui"] = scanned.dev_eui
        else:
            kwargs["block"] = self.block
        join_eui = scanned.join_eui if scanned is not None and cfg.identity.dev_eui == "label" else cfg.lorawan.join_eui
        return self.store.claim(
            unit_uid, batch=cfg.batch, station_id=cfg.station_id, operator=cfg.operator,
            lorawan_version=cfg.lorawan.version, join_eui=join_eui,
            keys_factory=lambda: generate_root_keys(cfg.lorawan.version), label=label_for, mcu_uid=mcu_uid,
            rework=rework, **kwargs)

    def _register(self, identity: Identity) -> None:
        from hil.network import DeviceConfig
        from hil.network.errors import UnknownDeviceError

        net = self.parts.network
        settings = self.parts.network_settings
        extra: dict[str, Any] = {}
        if settings is not None:
            extra = dict(rx1_dr_offset=settings.rx1_dr_offset, rx2_dr=settings.rx2_dr, rx_delay=settings.rx_delay_s)
        config = DeviceConfig(dev_eui=identity.dev_eui, join_eui=identity.join_eui, version=identity.lorawan_version,
                              device_class=identity.device_class, activation="otaa", name=str(identity.dev_eui),
                              app_key=identity.keys.app_key, nwk_key=identity.keys.nwk_key, **extra)
        try:
            net.remove_device(identity.dev_eui)  # a retest: forget the earlier DevNonces and session
        except UnknownDeviceError:
            pass
        net.add_device(config)

    def _power(self, on: bool) -> None:
        psu = self.parts.psu
        if on:
            if not psu.output_is_on():
                psu.output(True)
        else:
            psu.output(False)

    def _check_running_version(self, flashed: str | None) -> None:
        """After a flash: the unit boots the image and reports its version (when the image names one and
        the console dialect can be asked); a unit still running another image fails the step."""
        console = self.parts.console
        if flashed is None or "version" not in console.profile.identity:
            return
        self._wait_console(self.config.test.boot_timeout_s)
        running = console.identity(Deadline.after(self.clock, 30.0)).get("version", "")
        if flashed not in running:
            raise AssertionError(f"flashed firmware {flashed} ({self.firmware.name if self.firmware else '?'}) "
                                 f"but the unit reports version {running!r}")

    def _wait_console(self, timeout_s: float) -> None:
        self.parts.console.wait_ready(Deadline.after(self.clock, timeout_s))

    def _unload(self, bin: str) -> None:
        self._power(False)
        handler = self.parts.handler
        handler.unload(bin, Deadline.after(self.clock, getattr(handler, "load_timeout_s", 120.0)))

    @contextmanager
    def _step(self, outcome: UnitOutcome, name: str, *,
              record_to: tuple[int, int] | None = None) -> Iterator[list[Measurement]]:
        """Time a step; a DUT failure (AssertionError) or a failed measurement fails it, a rig fault is
        recorded as ``error`` and stops the run. Recorded to the store when the unit is known."""
        measurements: list[Measurement] = []
        t0, r0 = time.monotonic(), self.clock.now()
        status, detail = "passed", ""
        try:
            yield measurements
            failed = [m for m in measurements if not m.passed]
            if failed:
                status, detail = "failed", "; ".join(m.describe() for m in failed)
        except AssertionError as exc:
            status, detail = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except (AlreadyProvisioned, DuplicateDevEui, LabelError) as exc:
            status, detail = "failed", str(exc)
            self._finish_step(outcome, name, status, t0, r0, measurements, detail, record_to)
            raise
        except BaseException as exc:
            status, detail = "error", f"{type(exc).__name__}: {exc}"
            self._finish_step(outcome, name, status, t0, r0, measurements, detail, record_to)
            raise
        self._finish_step(outcome, name, status, t0, r0, measurements, detail, record_to)
        if status == "failed":
            raise _StepFailed(f"{name}: {detail}")

    def _finish_step(self, outcome: UnitOutcome, name: str, status: str, t0: float, r0: float,
                     measurements: list[Measurement], detail: str, record_to: tuple[int, int] | None) -> None:
        step = StepResult(name, status, time.monotonic() - t0, self.clock.now() - r0, tuple(measurements), detail)
        outcome.steps.append(step)
        shown = "; ".join(m.describe() for m in measurements)
        log.info("unit %s: %s %s in %.2f s (%.2f rig s)%s%s", outcome.dev_eui or outcome.unit_uid or "?", name,
                 status.upper(), step.real_s, step.rig_s, f": {shown}" if shown else "",
                 f" ({detail})" if detail and status != "passed" else "")
        if record_to is not None:
            self._record_step(*record_to, step)
        if self.on_step is not None:
            self.on_step(outcome.dev_eui or outcome.unit_uid or "?", step)

    def _record_step(self, unit_id: int, attempt: int, step: StepResult) -> None:
        started = self.store.timestamp()
        base = dict(unit_id=unit_id, attempt=attempt, name=step.name, status=step.status, started_at=started,
                    real_s=step.real_s, rig_s=step.rig_s)
        seq = STEPS.index(step.name) if step.name in STEPS else len(STEPS)
        if not step.measurements:
            self.store.record_step(StepRecord(seq=seq, detail=step.detail or None, **base))
        for m in step.measurements:
            self.store.record_step(StepRecord(
                seq=seq, measurement=m.name, value=m.value, unit=m.unit,
                low=m.limit.low if m.limit else None, high=m.limit.high if m.limit else None,
                detail=step.detail or None, **base))


def _test_payload(dev_eui: EUI64, size: int) -> bytes:
    """A recognisable uplink payload of ``size`` bytes for this unit."""
    seed = hashlib.sha256(b"hil-provision-uplink" + EUI64(dev_eui).display).digest()
    return (seed * (size // len(seed) + 1))[:size]
