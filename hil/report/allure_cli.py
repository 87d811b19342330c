"""Finding and running the Allure command line: Allure 3 (npm ``allure``) or Allure 2 (``allure-commandline``, Java).

Where it looks, in order: ``--allure PATH`` / ``$HIL_ALLURE``, the repository's CI install
(``.ci/node/node_modules/.bin/allure``, see ``.ci/node/package.json``), ``./node_modules/.bin/allure``
(what ``npx allure`` would run), then ``allure`` on the PATH. Each candidate is asked its
``--version``; Allure 3 is preferred when both are found. Nothing is downloaded: ``npx`` is not
used to fetch a missing tool.

Both produce a single-file HTML report (``index.html`` that opens from ``file://``). History is
carried over: Allure 3 keeps ``history.jsonl`` in the output folder and appends this run;
Allure 2 keeps ``history/`` there, copied into the results before the next report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "ALLURE2_NPM",
    "ALLURE3_NPM",
    "AllureError",
    "AllureTool",
    "Generated",
    "INSTALL_HELP",
    "candidates",
    "find_allure",
    "generate",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ALLURE3_NPM = "allure@3.18.0"
ALLURE2_NPM = "allure-commandline@2.46.1"
VERSION_TIMEOUT_S = 60.0  # real seconds: `allure --version` (Allure 2 starts a JVM)
GENERATE_TIMEOUT_S = 600.0  # real seconds for one report
INSTALL_HELP = (
    "no Allure command line found. Install one:\n"
    f"  Allure 3 (needs Node.js 20+): npm install --prefix .ci/node {ALLURE3_NPM}   (or: npm ci --prefix .ci/node)\n"
    f"  Allure 2 (needs Java 8+):     npm install --prefix .ci/node {ALLURE2_NPM}\n"
    "or point HIL_ALLURE (or --allure) at an allure executable."
)
_VERSION = re.compile(r"\b(\d+)\.(\d+)\.(\d+)\b")


class AllureError(RuntimeError):
    """Allure is missing, or failed to generate the report (the message says which and why)."""


@dataclass(frozen=True)
class AllureTool:
    """An Allure command line: how to run it, its version (major 2 or 3), where it was found."""

    command: tuple[str, ...]
    version: str
    source: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@dataclass(frozen=True)
class Generated:
    """A generated report: its HTML file, the seconds it took, its size in bytes, whether an earlier
    run's history was carried in, and the tool."""

    html: Path
    seconds: float
    size: int
    history: bool
    tool: AllureTool


def candidates(explicit: str | None = None, env: Mapping[str, str] = os.environ,
               cwd: Path | None = None) -> list[tuple[str, str]]:
    """(path, where it came from) of every place an Allure command might be, in search order."""
    out: list[tuple[str, str]] = []
    if explicit:
        out.append((explicit, "--allure"))
    if env.get("HIL_ALLURE"):
        out.append((env["HIL_ALLURE"], "HIL_ALLURE"))
    out.append((str(REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "allure"), ".ci/node"))
    out.append((str((cwd or Path.cwd()) / "node_modules" / ".bin" / "allure"), "./node_modules"))
    on_path = shutil.which("allure", path=env.get("PATH"))
    if on_path:
        out.append((on_path, "PATH"))
    return out


def _version(path: str) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(done.stdout + "\n" + done.stderr)
    return match.group(0) if done.returncode == 0 and match else None


def find_allure(explicit: str | None = None, env: Mapping[str, str] = os.environ) -> AllureTool | None:
    """The Allure command line to use (Allure 3 before 2), or None when there is none.

    An ``explicit`` path (or ``$HIL_ALLURE``) that does not answer ``--version`` is an AllureError.
    """
    found: dict[int, AllureTool] = {}
    seen: set[str] = set()
    for path, source in candidates(explicit, env):
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not os.path.exists(path):
            if source in ("--allure", "HIL_ALLURE"):
                raise AllureError(f"{source}: {path} does not exist")
            continue
        version = _version(path)
        if version is None:
            if source in ("--allure", "HIL_ALLURE"):
                raise AllureError(f"{source}: {path} does not answer --version like an Allure command line")
            continue
        tool = AllureTool((path,), version, source)
        if source in ("--allure", "HIL_ALLURE"):
            return tool  # what the user named wins
        if tool.major in (2, 3):
            found.setdefault(tool.major, tool)
    return found.get(3) or found.get(2)


def _allure3_config(out: Path, name: str, history: Path, categories: list[dict[str, Any]]) -> str:
    """An ``allurerc.mjs`` exporting a plain object (``defineConfig`` would need ``allure`` resolvable
    beside the file)."""
    config = {
        "name": name,
        "output": str(out),
        "historyPath": str(history),
        "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name, "reportLanguage": "en"}}},
    }
    if categories:
        config["categories"] = [{k: v for k, v in rule.items() if k in ("name", "matchedStatuses", "messageRegex")}
                                for rule in categories]
    return "export default " + json.dumps(config, indent=2) + ";\n"


def _run(command: Sequence[str], what: str) -> None:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AllureError(f"{what}: no result within {GENERATE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise AllureError(f"{what}: cannot run {command[0]} ({exc.strerror})") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise AllureError(f"{what} failed (exit {done.returncode}):\n{tail}")


def generate(tool: AllureTool, results: Path, out: Path, *, name: str = "Allure Report",
             categories: list[dict[str, Any]] | None = None) -> Generated:
    """Generate the single-file report of ``results`` into ``out`` (``out/index.html``), history carried over."""
    if not results.is_dir():
        raise AllureError(f"results folder {results} does not exist (run pytest with --alluredir {results})")
    if not any(results.glob("*-result.json")):
        raise AllureError(f"{results} holds no test results (*-result.json)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if tool.major >= 3:
        history_file = out / "history.jsonl"
        had_history = history_file.exists() and history_file.stat().st_size > 0
        with tempfile.TemporaryDirectory(prefix="hil-allure-") as tmp:
            rc = Path(tmp) / "allurerc.mjs"
            rc.write_text(_allure3_config(out.resolve(), name, history_file.resolve(), categories or []),
                          encoding="utf-8")
            _run([*tool.command, "generate", str(results.resolve()), "--config", str(rc), "--output", str(out.resolve())],
                 f"Allure {tool.version} generate")
    else:
        had_history = _allure2(tool, results, out, name)
    html = out / "index.html"
    if not html.exists():
        raise AllureError(f"Allure {tool.version} reported success but wrote no {html}")
    return Generated(html, time.monotonic() - started, html.stat().st_size, had_history, tool)


def _allure2(tool: AllureTool, results: Path, out: Path, name: str) -> bool:
    """Allure 2: the previous report's ``history/`` goes into the results; a multi-file run (in a
    temporary folder) computes the new history, since the single-file report writes none; then
    the single-file report, and the new history is kept in ``out/history`` for the next run."""
    previous = out / "history"
    had_history = previous.is_dir() and any(previous.iterdir())
    carried = results / "history"
    if had_history:
        shutil.rmtree(carried, ignore_errors=True)
        shutil.copytree(previous, carried)
    with tempfile.TemporaryDirectory(prefix="hil-allure2-") as tmp:
        multi = Path(tmp) / "report"
        _run([*tool.command, "generate", str(results), "-o", str(multi), "--clean"], f"Allure {tool.version} history")
        _run([*tool.command, "generate", str(results), "-o", str(out), "--clean", "--single-file", "--name", name],
             f"Allure {tool.version} generate")
        if (multi / "history").is_dir():
            shutil.copytree(multi / "history", out / "history", dirs_exist_ok=True)
    return had_history
