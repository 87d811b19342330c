"""Helpers of the rig-file tests: a minimal valid rig, written to a temporary file and loaded."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from hil.rigfile import Rig, load_rig

ROOT = Path(__file__).resolve().parents[2]
APP_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
NWK_KEY = "000102030405060708090a0b0c0d0e0f"
PASSPHRASE = "correct-horse-battery"

BASE: dict[str, Any] = {
    "name": "bench-t",
    "dut": {
        "console": {"port": "/dev/ttyUSB0", "dialect": "rak3172"},
        "lorawan": {"dev_eui": "70b3d57ed0000001", "app_key": APP_KEY},
        "relay": {"passphrase": PASSPHRASE},
    },
}


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in; a value None deletes the key."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_rig(folder: Path, body: str | Mapping[str, Any], name: str = "rig.yaml") -> Path:
    path = folder / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(dict(body), sort_keys=False))
    return path


def load(folder: Path, body: str | Mapping[str, Any], env: Mapping[str, str] | None = None) -> Rig:
    """Load ``body`` (text, or changes to BASE) without checking profile names against files."""
    if not isinstance(body, str):
        body = merged(BASE, body)
    return load_rig(write_rig(folder, body), env=env or {}, profiles_dir=None)
