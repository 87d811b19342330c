"""Cost of masking secrets as the number of recorded keys grows (a provisioning line records one
or two keys per unit, so thousands in a shift; every log record and console line is masked).

For each key count: the real time to record the keys, and the time to mask one line of typical
console and log text (best of the rounds). Target: masking does not grow with the key count.

    python bench/bench_redaction.py [--keys 5 500 5000] [--lines 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from hil.lorawan.crypto import AESKey
from hil.rigfile.redaction import Redactor

LINES = [
    "[  12.345] < +EVT:RX_1:-70:7:UNICAST:10:00112233",
    "t=54.466 up unconfirmed_data_up accepted FCnt=0 FPort=10 MHz=868.3 DR=5",
    "unit 70b3d57ed2000001: join PASSED in 1.23 s (24.6 rig s): DevNonce=0007 FCnt=3",
    "[  13.002] > AT+SEND=2:0102030405060708090a0b0c0d0e0f1011121314",
]


def measure(keys: int, lines: int, rounds: int, rng: random.Random) -> dict[str, float]:
    redactor = Redactor()
    material = [AESKey(rng.randbytes(16)) for _ in range(keys)]
    start = time.perf_counter()
    for key in material:
        redactor.add_key(key)
    record_s = time.perf_counter() - start
    leak = f"AT+APPKEY={material[keys // 2].reveal().hex().upper()}"
    assert redactor.redact(leak) == "AT+APPKEY=****", "the benchmark's key was not masked"
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(lines):
            redactor.redact(LINES[i % len(LINES)])
        best = min(best, (time.perf_counter() - start) / lines)
    return {"keys": keys, "record_all_s": round(record_s, 3), "mask_line_us": round(best * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=[5, 500, 5000])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(1)
    results = [measure(n, args.lines, args.rounds, rng) for n in args.keys]
    for r in results:
        print(f"{r['keys']:>6} keys: recorded in {r['record_all_s']:.3f} s; {r['mask_line_us']:.1f} µs to mask a line")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
