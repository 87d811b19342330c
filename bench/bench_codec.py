"""Throughput of the LoRaWAN core on the network server's hot paths (one core, one process).

Data frames: decode, find the session by DevAddr, rebuild the 32-bit FCnt, verify the MIC,
decrypt FRMPayload (``session.open_frame``, as the network server does). Join-requests: decode, find the root key by DevEUI, verify the MIC.
Target: ≥ 150,000 data frames/s on one core of the 2-core dev machine.

    python bench/bench_codec.py [--devices 1000] [--frames 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from hil.lorawan import fcnt as fcnt_rules
from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import DataFrame, JoinRequest, MType, decode
from hil.lorawan.security import SessionKeys
from hil.lorawan.session import open_frame
from hil.lorawan.types import EUI64, DevAddr


def _data_workload(devices: int, frames: int, rng: random.Random) -> tuple[dict, list[bytes]]:
    from hil.lorawan.session import seal_frame

    sessions: dict[int, tuple[SessionKeys, int]] = {}
    for i in range(devices):
        addr = DevAddr(0x26000000 + i)
        keys = SessionKeys.for_1_0(AESKey(rng.randbytes(16)), AESKey(rng.randbytes(16)))
        sessions[addr] = (keys, 0x10000 + rng.randrange(1000))  # 32-bit counters beyond 16 bits
    addrs = list(sessions)
    wire = []
    for _ in range(frames):
        addr = rng.choice(addrs)
        keys, last = sessions[addr]
        count = last + 1 + rng.randrange(3)
        frame = seal_frame(MType.UNCONFIRMED_DATA_UP, addr, keys, count, fport=10, frm_payload=rng.randbytes(20))
        wire.append(frame.to_bytes())
    return sessions, wire


def bench_data(sessions: dict, wire: list[bytes]) -> float:
    """CPU seconds to process every frame in ``wire`` (CPU time: steal time on a shared VM is not ours)."""
    start = time.process_time()
    for raw in wire:
        frame = decode(raw)
        keys, last = sessions[frame.dev_addr]
        count = fcnt_rules.reconstruct(frame.fcnt, last + 1)
        if not open_frame(frame, keys, count).mic_valid:
            raise AssertionError("benchmark frame failed its MIC")
    return time.process_time() - start


def _join_workload(devices: int, frames: int, rng: random.Random) -> tuple[dict, list[bytes]]:
    keys = {}
    wire = []
    for i in range(devices):
        keys[EUI64(0x70B3D57ED0000000 + i)] = AESKey(rng.randbytes(16))
    euis = list(keys)
    join_eui = EUI64(0x0000000000000001)
    for _ in range(frames):
        dev = rng.choice(euis)
        wire.append(JoinRequest(join_eui, dev, rng.randrange(65536)).signed(keys[dev]).to_bytes())
    return keys, wire


def bench_join(keys: dict, wire: list[bytes]) -> float:
    start = time.process_time()
    for raw in wire:
        frame = decode(raw)
        if not frame.mic_valid(keys[frame.dev_eui]):
            raise AssertionError("benchmark join-request failed its MIC")
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5, help="best of N rounds is reported")
    args = parser.parse_args()
    rng = random.Random(1)
    sessions, data_wire = _data_workload(args.devices, args.frames, rng)
    join_keys, join_wire = _join_workload(args.devices, args.frames, rng)
    data_best = min(bench_data(sessions, data_wire) for _ in range(args.rounds))
    join_best = min(bench_join(join_keys, join_wire) for _ in range(args.rounds))
    result = {
        "data_frames_per_s": round(args.frames / data_best),
        "join_requests_per_s": round(args.frames / join_best),
        "devices": args.devices,
        "frames": args.frames,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
