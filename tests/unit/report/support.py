"""Helpers of the report tests: hand-written Allure results, and inner pytest runs with Allure on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "rigs" / "sim.yaml"
INNER_TIMEOUT_S = 600  # real seconds for an inner pytest run (a bound, not a speed claim)


def write_result(folder: Path, name: str, status: str, features: tuple[str, ...] = (), message: str = "",
                 stop: int = 1, history_id: str | None = None) -> Path:
    """One allure-pytest style ``<uuid>-result.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "name": name, "fullName": f"tests.hil.test_x#{name}", "status": status, "stop": stop,
        "historyId": history_id or name, "labels": [{"name": "feature", "value": f} for f in features],
    }
    if message:
        data["statusDetails"] = {"message": message, "trace": "Traceback ..."}
    path = folder / f"{uuid.uuid4()}-result.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run_inner(tmp: Path, source: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess on ``source`` (written to ``tmp/test_inner.py``) with the rig and
    reporting plugins; the rig lock folder is ``tmp/locks``."""
    test_file = tmp / "test_inner.py"
    test_file.write_text(source, encoding="utf-8")
    (tmp / "pytest.ini").write_text("[pytest]\nmarkers =\n    join: j\n    devnonce: d\n    fcnt: f\n    relay: r\n"
                                    "    provision: p\n", encoding="utf-8")
    environment = {**os.environ, "HIL_LOCK_DIR": str(tmp / "locks"), "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "hil.plugin.pytest_plugin",
               "-p", "hil.plugin.reporting", "--strict-markers", "-rA", str(test_file), *args]
    return subprocess.run(command, cwd=tmp, env=environment, capture_output=True, text=True, timeout=INNER_TIMEOUT_S,
                          check=False)


def results(folder: Path) -> list[dict[str, Any]]:
    """Every ``*-result.json`` in an Allure results folder."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*-result.json"))]


def by_name(folder: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in results(folder)}


def labels(result: dict[str, Any], name: str) -> list[str]:
    return [label["value"] for label in result.get("labels", []) if label["name"] == name]


def attachment(folder: Path, result: dict[str, Any], name: str) -> Path:
    """The file of the result's attachment called ``name`` (AssertionError naming those it has)."""
    found = {a["name"]: a["source"] for a in result.get("attachments", [])}
    assert name in found, f"no attachment {name!r} on {result['name']}: it has {sorted(found)}"
    return folder / found[name]
