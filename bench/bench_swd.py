"""SWD through the real pyocd on the simulated probe: session-open time, flash and memory throughput.

    python bench/bench_swd.py [--runs 5] [--kib 48]

For each path, the in-process probe (``hilsim:<unit>``) and pyocd's TCP probe server
(``remote:127.0.0.1:<port>``, what another process uses), median of ``--runs``:

* ``import_s``: ``import pyocd`` (the first open pays it once per process);
* ``open_ms``: ``SwdProbe.open()`` (probe lookup, DP/AP discovery, ROM table, core; attach mode);
* ``flash_kib_s``: a ``--kib`` KiB image into erased flash: erase 128-byte sectors, program pages
  through the flash algorithm, verify by reading back, SYSRESETREQ (pyocd waits 0.1 s after it);
* ``reflash_one_byte_s``: the same image with one byte changed (smart flash: one sector);
* ``write_kib_s``/``read_kib_s``: SRAM block transfers (12 KiB).

Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from drivers.swd import SwdProbe
from hil.clock import ScaledClock
from hil.sim.dut.memory import FLASH_BASE, SRAM_BASE, DutMemory
from hil.sim.dut.nvm import Nvm
from hil.sim.scheduler import Scheduler
from hil.sim.swd import DebugUnit, new_unit_name, register
from hil.sim.swd.server import ProbeServer


def timed(action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def rig(scheduler: Scheduler) -> Iterator[tuple[DebugUnit, ProbeServer]]:
    unit = DebugUnit(new_unit_name("bench"), DutMemory(Nvm(scheduler)))
    unit.on_vdd(3.3)
    unregister = register(unit)
    server = ProbeServer(unit).start()
    try:
        yield unit, server
    finally:
        server.stop()
        unregister()


def one_run(uid: str, unit: DebugUnit, clock: ScaledClock, image: Path, changed: Path) -> dict[str, float]:
    unit.memory.mass_erase()
    probe = SwdProbe(uid, unit.target, clock)
    open_s = timed(probe.open)
    try:
        size = image.stat().st_size
        flash_s = timed(lambda: probe.flash(image))
        reflash_s = timed(lambda: probe.flash(changed))
        block = bytes(range(256)) * 48
        write_s = timed(lambda: probe.write_memory(SRAM_BASE, block))
        read_s = timed(lambda: probe.read_memory(SRAM_BASE, len(block)))
        assert unit.memory.read(FLASH_BASE, size) == changed.read_bytes()
    finally:
        probe.close()
    return {"open_ms": open_s * 1000, "flash_kib_s": size / 1024 / flash_s, "reflash_one_byte_s": reflash_s,
            "write_kib_s": len(block) / 1024 / write_s, "read_kib_s": len(block) / 1024 / read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kib", type=int, default=48, help="image size in KiB (the flash holds 64)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import pyocd.core.helpers  # noqa: F401

    import_s = time.perf_counter() - t0
    folder = Path(tempfile.mkdtemp(prefix="bench-swd-"))
    data = bytes((i * 131 + (i >> 7)) & 0xFF for i in range(args.kib * 1024))
    image, changed = folder / "fw.bin", folder / "fw-changed.bin"
    image.write_bytes(data)
    changed.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    scheduler = Scheduler(ScaledClock(1.0))
    scheduler.start()
    try:
        for unit, server in rig(scheduler):
            for path, uid in (("in-process", unit.probe_uid), ("tcp probe server", server.probe_uid)):
                runs = [one_run(uid, unit, scheduler.clock, image, changed) for _ in range(args.runs)]
                medians = {f"{k}_median": round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
                print(json.dumps({"path": path, "image_kib": args.kib, "runs": args.runs,
                                  "import_s": round(import_s, 3), **medians}))
                sys.stdout.flush()
    finally:
        scheduler.stop()
        for path in (image, changed):
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
