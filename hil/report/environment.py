"""``environment.properties`` and ``executor.json`` for an Allure results folder.

The environment says what was tested with what: the rig (name, kind, file, overrides), the DUT
(firmware version and identity as its console reports them, the image's SHA-256 when the image
is known, DevEUI, LoRaWAN version, class, region, console dialect), the framework (``git
describe``), Python and the libraries that touch the rig. Under pytest-xdist each worker merges
its values into the one file (a file lock; differing values are joined with ``", "``). Every value
passes through the rig's redactor. The executor (which CI build) comes from the CI system's own
variables, by the table in ``executors.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import yaml
from filelock import FileLock

from hil import __version__
from hil.files import write_atomically
from hil.rigfile.redaction import redact

__all__ = [
    "EXECUTORS_FILE",
    "LIBRARIES",
    "environment",
    "executor",
    "file_sha256",
    "framework_version",
    "read_properties",
    "write_executor",
    "write_properties",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
EXECUTORS_FILE = Path(__file__).with_name("executors.yaml")
LIBRARIES = ("pytest", "allure-pytest", "pyserial", "pyvisa", "pyvisa-py", "paho-mqtt", "cryptography", "pydantic",
             "matplotlib")
GIT_TIMEOUT_S = 10.0  # real seconds for `git describe` (a subprocess, not a rig wait)
_VAR = re.compile(r"\$\{(\w+)\}")


def framework_version(root: Path = REPO_ROOT) -> str:
    """``git describe --tags --always --dirty`` of the framework's checkout; the package version
    when it is not a git checkout or git is missing."""
    try:
        done = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=root, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    described = done.stdout.strip()
    return f"{__version__} ({described})" if done.returncode == 0 and described else __version__


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def environment(rig: Any = None, *, identity: Mapping[str, str] | None = None, rig_ref: str | None = None,
                firmware_image: Path | None = None, flashed: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run as ``key -> value`` (keys dotted, values masked).

    ``rig``: the resolved rig file (:class:`hil.rigfile.Rig`), if the run brought one up;
    ``identity``: what the DUT's console reported (``version``, ``dev_eui``...);
    ``flashed``: the image the session flashed (``RigSession.firmware_info``: ``firmware``,
    ``firmware_sha256``, ``firmware_version``, ``firmware_flashed``);
    ``firmware_image``: else the image under test (default: ``$HIL_FIRMWARE_IMAGE``, else the rig
    file's ``dut.swd.firmware``) whose SHA-256 is computed here.
    """
    values: dict[str, str] = {}
    for key, value in (flashed or {}).items():
        name = {"firmware": "image", "firmware_sha256": "image_sha256", "firmware_version": "image_version",
                "firmware_flashed": "flashed"}.get(key, key)
        values[f"dut.firmware.{name}"] = str(value)
    if "dut.firmware.image" in values:
        firmware_image = None  # the session said what it flashed
    if rig is not None:
        values["rig.name"] = rig.name
        values["rig.kind"] = "virtual" if rig.is_virtual else "real bench"
        path = getattr(rig, "path", None)
        if path:
            values["rig.file"] = str(path)
        overrides = getattr(rig, "overrides", ())
        if overrides:
            values["rig.overrides"] = ", ".join(f"{key}={_value_at(rig, key)}" for key in overrides)
        dut = rig.dut
        values["dut.console.dialect"] = dut.console.dialect
        if dut.lorawan is not None:
            lw = dut.lorawan
            values["dut.dev_eui"] = str(lw.dev_eui)
            values["dut.lorawan.version"] = lw.version
            values["dut.lorawan.class"] = lw.device_class
            values["dut.lorawan.region"] = lw.region
            values["dut.lorawan.activation"] = lw.activation
        if not flashed and firmware_image is None and dut.swd is not None and dut.swd.firmware is not None:
            firmware_image = Path(dut.swd.firmware)
    elif rig_ref:
        values["rig.file"] = rig_ref
    for key, value in (identity or {}).items():
        values[f"dut.firmware.{key}" if key == "version" else f"dut.reported.{key}"] = value
    if not flashed and firmware_image is None and os.environ.get("HIL_FIRMWARE_IMAGE"):
        firmware_image = Path(os.environ["HIL_FIRMWARE_IMAGE"])
    if firmware_image is not None:
        values["dut.firmware.image"] = str(firmware_image)
        try:
            values["dut.firmware.image_sha256"] = file_sha256(firmware_image)
        except OSError as exc:
            values["dut.firmware.image_sha256"] = f"unreadable ({exc.strerror})"
    values["framework.version"] = framework_version()
    values["python.version"] = f"{platform.python_implementation()} {platform.python_version()}"
    values["host.platform"] = platform.platform(terse=True)
    for name, version in library_versions().items():
        values[f"lib.{name}"] = version
    return {key: redact(str(value)) for key, value in values.items()}


def _value_at(rig: Any, dotted: str) -> str:
    node = rig
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else getattr(node, key, None)
        if node is None:
            return "?"
    if isinstance(node, (list, tuple)):
        return "[" + ",".join(str(getattr(v, "value", v)) for v in node) + "]"
    return str(getattr(node, "value", node))


def _escape(text: str, key: bool = False) -> str:
    """A Java properties key or value: backslash escapes, non-ASCII as \\uXXXX (Allure reads ISO-8859-1)."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch in "=:#!" or (ch == " " and (key or i == 0)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.extend(f"\\u{unit:04x}" for unit in _utf16(ch))
        else:
            out.append(ch)
    return "".join(out)


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def read_properties(path: Path) -> dict[str, str]:
    """The ``key=value`` pairs of a properties file this module wrote ({} if there is none)."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "!")):
            continue
        match = re.match(r"((?:\\.|[^=:\\])*)[=:](.*)$", line.lstrip())
        if match is None:
            continue
        key, value = (_unescape(part) for part in match.groups())
        values[key] = value
    return values


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if s.startswith("u"):
            return chr(int(s[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t"}.get(s, s)

    decoded = re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, text)
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16")


def write_properties(path: Path, values: Mapping[str, str]) -> Path:
    """Merge ``values`` into the properties file at ``path`` (created if needed; other writers
    serialised by a lock file beside it; a key another writer gave a different value keeps both)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(path)):
        merged = read_properties(path)
        for key, value in values.items():
            old = merged.get(key)
            if old is None or old == value:
                merged[key] = value
            elif value not in old.split(", "):
                merged[key] = f"{old}, {value}"
        text = "".join(f"{_escape(k, key=True)}={_escape(v)}\n" for k, v in sorted(merged.items()))
        write_atomically(path, text, encoding="ascii")
    return path


def _lock_path(path: Path) -> str:
    """A lock file outside the results folder (Allure would read it), one per target file; it is
    never deleted (deleting a lock file others may wait on breaks the lock)."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"hil-report-{key}.lock")


def executor(env: Mapping[str, str] = os.environ, table: Path = EXECUTORS_FILE) -> dict[str, str] | None:
    """The executor of this run from CI variables (first matching provider of ``executors.yaml``); None outside CI."""
    providers = (yaml.safe_load(table.read_text(encoding="utf-8")) or {}).get("providers", [])
    for provider in providers:
        flag = env.get(str(provider.get("detect", "")), "")
        if flag.strip().lower() in ("", "0", "false", "no"):
            continue
        out: dict[str, str] = {}
        for field, template in provider.items():
            if field == "detect":
                continue
            names = _VAR.findall(str(template))
            if any(not env.get(name) for name in names):
                continue
            out[field] = redact(_VAR.sub(lambda m: env.get(m.group(1), ""), str(template)))
        return out
    return None


def write_executor(results_dir: Path, env: Mapping[str, str] = os.environ) -> Path | None:
    """Write ``executor.json`` when the run is on a known CI; returns its path, or None."""
    found = executor(env)
    if found is None:
        return None
    target = results_dir / "executor.json"
    write_atomically(target, json.dumps(found, indent=2) + "\n")
    return target
