"""Does the HTML report render? Headless Chromium opens it from ``file://``, takes a screenshot, and
the rendered page must show the summary.

::

    python -m hil.report.screenshot [--report reports/html/index.html] [--results reports/allure-results]
                                    [--out reports/html/screenshot.png] [--name "hil test report"]

Two Chromium runs (each bounded): ``--screenshot`` (kept for people and CI artifacts) and
``--dump-dom`` (the page after its scripts ran). The check passes when the page shows the report's
name and its summary counts the expected number of tests (Allure 3: ``Total N``; Allure 2:
``N test cases``), N from the report's ``summary.json`` or else the results folder, and the
screenshot is not blank. Exit codes: 0 rendered with its summary; 1 it did not; 2 no Chromium, or
bad input.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["CHROMIUM_NAMES", "Rendered", "check_page", "expected_total", "find_chromium", "main", "page_text", "render"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RUN_TIMEOUT_S = 120.0  # real seconds per Chromium run
VIRTUAL_TIME_BUDGET_MS = 8000  # the page's own timers get this long to settle
WINDOW = (1400, 1400)  # tall enough for Allure 3's summary and test tree without scrolling
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ATTEMPTS = 2


@dataclass
class Rendered:
    """What Chromium made of the report: the screenshot's path, the page's visible text, seconds taken."""

    screenshot: Path
    text: str
    seconds: float
    problems: list[str] = field(default_factory=list)


def find_chromium(env: dict[str, str] | None = None) -> str | None:
    """``$HIL_CHROMIUM``, else the first Chromium or Chrome on the PATH; None if there is none."""
    env = dict(os.environ) if env is None else env
    if env.get("HIL_CHROMIUM"):
        return env["HIL_CHROMIUM"]
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    return None


def _chromium(binary: str, profile: Path, *extra: str) -> list[str]:
    return [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", *extra,
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run Chromium in its own process group; on timeout that group (and only it) is killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RuntimeError(f"Chromium did not finish within {RUN_TIMEOUT_S:g} s: {' '.join(command[:1])}") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def page_text(dom: str) -> str:
    """The visible text of a dumped DOM (scripts and styles dropped, whitespace collapsed)."""
    dom = re.sub(r"<(script|style|template)\b.*?</\1\s*>", " ", dom, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", dom)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def render(report: Path, screenshot: Path, chromium: str) -> Rendered:
    """Screenshot ``report`` into ``screenshot`` and return the page's text after its scripts ran."""
    url = report.resolve().as_uri()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hil-chromium-") as tmp:
        shot = _run(_chromium(chromium, Path(tmp) / "shot", f"--screenshot={screenshot.resolve()}", url))
        dom = _run(_chromium(chromium, Path(tmp) / "dom", "--dump-dom", url))
    problems = []
    if shot.returncode != 0 or not screenshot.exists():
        problems.append(f"Chromium wrote no screenshot (exit {shot.returncode}): {_tail(shot.stderr)}")
    if dom.returncode != 0:
        problems.append(f"Chromium could not dump the page (exit {dom.returncode}): {_tail(dom.stderr)}")
    return Rendered(screenshot, page_text(dom.stdout.decode("utf-8", "replace")), time.monotonic() - started, problems)


def _tail(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(nothing on stderr)"


def expected_total(report: Path, results: Path | None) -> int | None:
    """How many tests the summary must show: Allure 3's ``summary.json`` beside the report, else the
    results folder's tests (latest result per test), else None (any count)."""
    summary = report.parent / "summary.json"
    if summary.exists():
        try:
            return int(json.loads(summary.read_text(encoding="utf-8"))["stats"]["total"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if results is not None and results.is_dir():
        from hil.report.results import read_results

        outcomes, _ = read_results(results)
        return len(outcomes)
    return None


def check_page(text: str, name: str, total: int | None) -> list[str]:
    """What is missing from the rendered page: the report's name, the summary's test count."""
    problems = []
    if name and name not in text:
        problems.append(f"the report's name {name!r} is not on the page")
    count = r"\d+" if total is None else str(total)
    if not (re.search(rf"\bTotal {count}\b", text) or re.search(rf"\b{count} test cases?\b", text)):
        shown = "N" if total is None else str(total)
        problems.append(f"no summary of {shown} tests on the page (looked for 'Total {shown}' or "
                        f"'{shown} test cases'); the page starts: {text[:200]!r}")
    return problems


def _blank(screenshot: Path) -> bool:
    """True if the screenshot is one colour (nothing rendered)."""
    try:
        from PIL import Image
    except ImportError:  # matplotlib brings Pillow; without it the DOM check alone decides
        return False
    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=4)
    return colours is not None and len(colours) <= 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.report.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=Path("reports/html/index.html"), help="the HTML report")
    parser.add_argument("--results", type=Path, default=Path("reports/allure-results"),
                        help="the results folder it was made from (for the expected count)")
    parser.add_argument("--out", type=Path, default=None, help="screenshot PNG (default: beside the report)")
    parser.add_argument("--name", default="hil test report", help="the report's name, as given to `hil report`")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: screenshot: no report at {args.report} (run python -m hil report first)", file=sys.stderr)
        return EXIT_USAGE
    chromium = find_chromium()
    if chromium is None:
        print("error: screenshot: no Chromium found (apt-get install chromium, or set HIL_CHROMIUM)", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or args.report.with_name("screenshot.png")
    total = expected_total(args.report, args.results)
    for attempt in range(1, ATTEMPTS + 1):  # a second look when the first found no summary (a loaded CI host)
        try:
            rendered = render(args.report, out, chromium)
        except (OSError, RuntimeError) as exc:
            print(f"error: screenshot: {exc}", file=sys.stderr)
            return EXIT_FAILED
        problems = list(rendered.problems) + check_page(rendered.text, args.name, total)
        if not problems and _blank(out):
            problems.append(f"the screenshot {out} is blank")
        if not problems:
            break
        if attempt < ATTEMPTS:
            print(f"screenshot: attempt {attempt} found: {'; '.join(problems)}; trying again", file=sys.stderr)
    if problems:
        print(f"screenshot: {args.report} did not render its summary:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_FAILED
    print(f"screenshot: {out} ({out.stat().st_size / 1e3:.0f} kB) of {args.report}: summary shown "
          f"({rendered.seconds:.1f} s in Chromium)")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
