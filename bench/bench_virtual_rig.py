"""Virtual rig: start-up and shutdown time, and the time compression achieved for a join plus a
relay round trip (SET on, answered with the sensed 230 V) driven through pyserial, pyvisa-py,
MQTT and the reference network server.

    python bench/bench_virtual_rig.py [--scales 1 20 50 100] [--runs 3]

"compression" = rig seconds elapsed / real seconds elapsed for the round trip; at time_scale s
the ideal is s. It falls short when the host cannot keep up (2-core VM, Python threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from hil.relay.protocol import FPORT, Command, RelayKey, RelayMessage, encode
from hil.sim.bench import open_bench, sim_config, wait_booted


def one_run(scale: float) -> dict[str, float]:
    config = sim_config(time_scale=scale)
    key = RelayKey(config.dut.relay_passphrase.get_secret_value())  # type: ignore[union-attr]
    t0 = time.perf_counter()
    gen = open_bench(config)
    bench = next(gen)
    started = time.perf_counter() - t0
    try:
        real0, rig0 = time.perf_counter(), bench.clock.now()
        bench.power(True)
        wait_booted(bench)
        bench.send("AT+JOIN")
        bench.expect("+EVT:JOINED", timeout_rig_s=120)
        hello = bench.relay_uplink(key)
        cmd = RelayMessage(Command.SET_OUTPUT, hello.fcnt, 0, bytes([1, 0, 0, 0, 0, 0]))
        bench.ns.enqueue_downlink(config.dut.dev_eui, FPORT, encode(cmd, key))
        answer = bench.relay_uplink(key)
        assert answer.relay_state and answer.output_voltage == 230
        rig_s, real_s = bench.clock.now() - rig0, time.perf_counter() - real0
    finally:
        t1 = time.perf_counter()
        gen.close()
        stopped = time.perf_counter() - t1
    return {"start_s": started, "stop_s": stopped, "rig_s": rig_s, "real_s": real_s, "compression": rig_s / real_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 20, 50, 100])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for scale in args.scales:
        runs = [one_run(scale) for _ in range(args.runs)]
        print(json.dumps({
            "time_scale": scale,
            "start_s_median": round(statistics.median(r["start_s"] for r in runs), 3),
            "stop_s_median": round(statistics.median(r["stop_s"] for r in runs), 3),
            "round_trip_rig_s_median": round(statistics.median(r["rig_s"] for r in runs), 2),
            "round_trip_real_s_median": round(statistics.median(r["real_s"] for r in runs), 3),
            "compression_median": round(statistics.median(r["compression"] for r in runs), 1),
            "runs": args.runs,
        }))


if __name__ == "__main__":
    main()
