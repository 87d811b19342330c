"""``python -m hil provision``: the production provisioning station on a rig.

::

    python -m hil provision --rig sim --count 20            # the virtual line, 20 units
    python -m hil provision --rig line-3 --station line-3 --batch PO-4711 --operator alice --count 500
    python -m hil provision --rig sim --rework              # retest units that passed before
    python -m hil provision --export --batch PO-4711        # CSVs and labels of a batch, no rig
    python -m hil provision --new-kek > station.kek         # a fresh key-encryption key

``--count`` is the batch's target of passed units, counting earlier runs of the same batch: a
run killed half-way and started again finishes the batch, resuming the unit left in the fixture
with the identity it already had. Exit codes: 0 the batch is complete, 1 the line stopped (units
failed in a row, a rig fault), 2 bad input, 3 a rig fault. Keys never reach the terminal or the
logs; the exported CSVs hold them (an import needs them) and are written owner-only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hil.cli import UsageError

DEFAULT_STATION = "sim-station"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("provision", help="provision units: identity, keys, functional test, record")
    p.add_argument("--rig", default="rigs/sim.yaml", help="rig file or name under rigs/ (default: the virtual rig)")
    p.add_argument("--station", default=DEFAULT_STATION,
                   help=f"station file or name under rigs/stations/ (default {DEFAULT_STATION})")
    p.add_argument("--count", type=int, default=1, help="passed units the batch must hold (default 1)")
    p.add_argument("--batch", help="batch name (default: the station file's)")
    p.add_argument("--operator", help="who runs the station (default: the station file's)")
    p.add_argument("--store", help="record store: a SQLite file path or a SQLAlchemy URL (default: the station file's)")
    p.add_argument("--out", type=Path, help="folder for the exports (default: the station file's exports.dir)")
    p.add_argument("--rework", action="store_true", help="test again units that passed before (same identity)")
    p.add_argument("--rig-wait", type=float, default=0.0, metavar="SECONDS", help="wait for a rig another session holds")
    p.add_argument("--export", action="store_true", help="only write the batch's CSVs and labels (no rig)")
    p.add_argument("--new-kek", action="store_true", help="print a fresh key-encryption key (64 hex digits) and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-step lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hil.provision.config import StationConfigError, load_station
    from hil.provision.kek import KekError, new_kek_hex

    if args.new_kek:
        print(new_kek_hex())
        return 0
    if args.count < 0:
        raise UsageError("--count must be 0 or more")
    overrides: dict[str, object] = {"batch": args.batch, "operator": args.operator}
    if args.store:
        overrides["store"] = {"url": args.store} if "://" in args.store else {"path": str(Path(args.store).resolve())}
    if args.out:
        overrides["exports"] = {"dir": str(args.out.resolve())}
    try:
        config = load_station(args.station, **overrides)
    except StationConfigError as exc:
        raise UsageError(str(exc)) from None
    _logging(args.quiet)
    try:
        if args.export:
            return _export_only(config)
        return _run_station(config, args)
    except KekError as exc:
        raise UsageError(str(exc)) from None


def _logging(quiet: bool) -> None:
    from hil.rigfile.redaction import install_log_redaction, install_record_redaction

    logger = logging.getLogger("hil.provision")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(getattr(h, "_hil_provision", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hil_provision = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    install_log_redaction()
    install_record_redaction()
    install_log_redaction(logger=logger)


def _export(config, store) -> None:  # type: ignore[no-untyped-def]
    from hil.provision.exports import export_batch

    e = config.exports
    done = export_batch(store, config.batch, config.exports_dir, device_class=config.lorawan.device_class,
                        chirpstack_application_id=e.chirpstack.application_id,
                        chirpstack_device_profile_id=e.chirpstack.device_profile_id,
                        tts_frequency_plan_id=e.tts.frequency_plan_id, tts_phy_version=e.tts.lorawan_phy_version,
                        png=config.identity.label.png)
    print(f"exports: {done.units} unit(s) of batch {config.batch} -> {done.chirpstack}, {done.tts}, "
          f"{len(done.labels)} label file(s) in {done.directory / 'labels'}")


def _export_only(config) -> int:  # type: ignore[no-untyped-def]
    from hil.provision.kek import load_kek
    from hil.provision.store import RecordStore

    store = RecordStore(config.store_url, load_kek(config.kek, base_dir=config.base_dir))
    try:
        _export(config, store)
    finally:
        store.close()
    return 0


def _run_station(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from hil.faults import RigFault
    from hil.plugin.session import MissingPart, RigSession
    from hil.provision.kek import load_kek
    from hil.provision.report import summary_lines
    from hil.provision.rigparts import station_parts
    from hil.provision.station import ProvisioningStation, StationStopped
    from hil.provision.store import StoreError
    from hil.rigfile import RigFileError

    encryptor = load_kek(config.kek, base_dir=config.base_dir)  # a missing KEK is found before the rig comes up
    rig_ref = args.rig
    try:
        session = RigSession(rig_ref, wait_s=args.rig_wait, reports_dir=Path("reports"))
    except RigFileError as exc:
        raise UsageError(str(exc)) from None
    closers = []
    station = None
    try:
        session.start()
        parts, close_parts = station_parts(session)
        closers.append(close_parts)
        station = ProvisioningStation(config, parts, encryptor=encryptor)
        print(f"station {config.station_id} on rig {session.rig.name}: batch {config.batch}, target {args.count} "
              f"passed unit(s), operator {config.operator}, store {station.store.where}")
        result = station.run_batch(args.count, rework=args.rework)
        for line in summary_lines(result):
            print(line)
        _export(config, station.store)
        if result.stopped:
            print(f"LINE STOPPED: {result.stopped}", file=sys.stderr)
            return 1
        return 0 if result.complete else 1
    except (MissingPart, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (RigFault, StationStopped) as exc:
        print(f"RIG FAULT (the station, not the unit): {exc}", file=sys.stderr)
        return 3
    finally:
        if station is not None:
            station.close()
        session.close()  # safe state first (supply off), then the rig's parts
        for close in closers:  # after: pyvisa's resource manager is shared, closing one closes all
            try:
                close()
            except Exception:
                logging.getLogger(__name__).exception("closing a station part failed")
