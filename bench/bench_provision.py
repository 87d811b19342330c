"""Provisioning throughput on the virtual rig: units per hour and where each unit's time goes.

    python bench/bench_provision.py [--units 20] [--station sim-station] [--time-scale 20] [--json]

Runs the station (hil/provision) on a private copy of rigs/sim.yaml (its own rig lock, a record
store in a temporary folder, a throwaway KEK): the handler swaps a factory-fresh virtual DUT in
for every unit, each is identified, written, registered and tested over the air, and recorded.
Prints units per hour (real time) and, per step, the mean real and rig seconds over the passed
units. Real time is what a factory pays; rig time is what the same flow takes on a real line
(the virtual rig runs ``time_scale`` rig seconds per real second), handler moves included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from hil.plugin.session import RigSession
    from hil.provision.config import load_station
    from hil.provision.kek import new_kek_hex
    from hil.provision.report import step_times, units_per_hour
    from hil.provision.rigparts import station_parts
    from hil.provision.station import ProvisioningStation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--station", default="sim-station", help="station file (sim-station: labels + console; "
                    "sim-station-swd: MCU unique ID + SWD)")
    ap.add_argument("--time-scale", type=float, default=None, help="override timing.time_scale of rigs/sim.yaml")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hil-bench-provision-") as tmp:
        data = yaml.safe_load((ROOT / "rigs" / "sim.yaml").read_text())
        data["name"] = f"bench-provision-{os.getpid()}"
        if args.time_scale is not None:
            data["timing"]["time_scale"] = args.time_scale
        rig_file = Path(tmp) / "rig.yaml"
        rig_file.write_text(yaml.safe_dump(data, sort_keys=False))
        config = load_station(args.station, batch="bench", store={"path": str(Path(tmp) / "records.sqlite")})
        config = config.model_copy(update={"kek": new_kek_hex()})
        session = RigSession(rig_file, reports_dir=Path(tmp) / "reports").start()
        close = None
        try:
            parts, close = station_parts(session)
            station = ProvisioningStation(config, parts)
            try:
                result = station.run_batch(args.units)
            finally:
                station.close()
        finally:
            session.close()
            if close is not None:
                close()

    passed = sum(o.status == "passed" for o in result.outcomes)
    times = step_times(result)
    scale = data["timing"]["time_scale"]
    print(f"station {args.station} on the virtual rig (time_scale {scale:g}): {passed}/{len(result.outcomes)} units "
          f"passed in {result.real_s:.1f} s real ({result.rig_s:.0f} rig s)")
    print(f"units per hour: {units_per_hour(result):.0f} (real time); "
          f"{passed * 3600.0 / result.rig_s if result.rig_s else 0:.0f} at rig time (a real line's pace)")
    print(f"{'step':<15} {'real s':>8} {'rig s':>8} {'share':>6}")
    total_rig = sum(rig for _, rig, _ in times.values()) or 1.0
    for name, (real, rig, _) in times.items():
        print(f"{name:<15} {real:8.3f} {rig:8.2f} {100 * rig / total_rig:5.1f}%")
    per_unit = [o.rig_s for o in result.outcomes if o.status == "passed"]
    if per_unit:
        handler_rig = sum(per_unit) / len(per_unit) - total_rig
        print(f"{'handler+other':<15} {'':>8} {handler_rig:8.2f}   (load/unload moves, power switching)")
    if args.json:
        print(json.dumps({"units": len(result.outcomes), "passed": passed, "real_s": result.real_s,
                          "rig_s": result.rig_s, "units_per_hour": units_per_hour(result),
                          "steps": {k: {"real_s": v[0], "rig_s": v[1]} for k, v in times.items()}}, indent=1))
    return 0 if passed == args.units else 1


if __name__ == "__main__":
    raise SystemExit(main())
