"""``python -m hil report`` (a single-file HTML report by Allure 3 or 2, history carried over) and
the headless-Chromium check that the report renders its summary from ``file://``.

The tests that need the Allure command line or Chromium skip, saying what to install, when those
are absent; CI installs both (``.ci/run``) so they run there."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hil.cli import main
from hil.report import allure_cli
from hil.report.allure_cli import find_allure
from hil.report.screenshot import check_page, find_chromium
from hil.report.screenshot import main as screenshot_main
from tests.unit.report.support import run_inner

INNER = '''
import pytest

@pytest.mark.join
def test_joins():
    pass

@pytest.mark.relay
def test_relay_defect():
    assert False, "relay reported ON, output 0 V"

@pytest.mark.fcnt
def test_skipped():
    pytest.skip("no relay on this rig")
'''

NEEDS_ALLURE = "no Allure command line: npm install --prefix .ci/node allure@3.18.0 (CI does, in .ci/run)"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    done = run_inner(tmp, INNER, "--alluredir", "allure-results")
    assert "1 failed, 1 passed, 1 skipped" in done.stdout, done.stdout[-2000:]
    return tmp / "allure-results"


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The report generated twice into one folder (the second run carries the first's history)."""
    if find_allure() is None:
        pytest.skip(NEEDS_ALLURE)
    out = tmp_path_factory.mktemp("report") / "html"
    lines = []
    for _ in range(2):
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["report", "--results", str(results), "--out", str(out)]) == 0
        lines.append(buffer.getvalue().strip())
    return out, lines


def test_report_is_one_html_file_with_history_carried_over(report: tuple[Path, list[str]]) -> None:
    out, lines = report
    html = out / "index.html"
    assert html.is_file() and html.stat().st_size > 100_000
    assert not (out / "data").exists(), "a multi-file report (needs HTTP): expected a single file"
    assert "no earlier history" in lines[0] and "history carried over" in lines[1]
    assert lines[1].startswith(f"report: {html} (") and " MB, single file) by Allure " in lines[1]
    if (out / "summary.json").exists():  # Allure 3
        assert json.loads((out / "summary.json").read_text())["stats"] == {"total": 3, "passed": 1, "failed": 1,
                                                                         "skipped": 1}
        assert len((out / "history.jsonl").read_text().splitlines()) == 2
    else:  # Allure 2
        assert (out / "history" / "history-trend.json").exists()


def test_report_renders_its_summary_in_headless_chromium(report: tuple[Path, list[str]], results: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if find_chromium() is None:
        pytest.skip("no Chromium: apt-get install chromium (CI does, in .ci/run)")
    out, _ = report
    shot = tmp_path / "screenshot.png"
    code = screenshot_main(["--report", str(out / "index.html"), "--results", str(results), "--out", str(shot)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert "summary shown" in printed.out  # (that the check can fail: test_page_check_reads_both_allure_summaries)


def test_page_check_reads_both_allure_summaries() -> None:
    allure3 = "hil test report Report 37.5% Results 8 Categories 1 Total 8 Failed 5 Passed 3 Metadata"
    allure2 = "hil test report 11/22/2026 1:32:52 - 1:33:27 (34s 593ms) 8 test cases 37.5% Suites"
    assert check_page(allure3, "hil test report", 8) == [] and check_page(allure2, "hil test report", 8) == []
    assert check_page(allure2, "hil test report", None) == []
    assert "no summary of 9 tests" in check_page(allure3, "hil test report", 9)[0]
    assert len(check_page("Loading...", "hil test report", 8)) == 2


def test_no_allure_installed_says_how_to_install_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(allure_cli, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("HIL_ALLURE", raising=False)
    assert main(["report", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no Allure command line found" in err and "allure@3.18.0" in err and "allure-commandline@2.46.1" in err


def test_a_named_allure_that_is_not_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--allure", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    fake = tmp_path / "allure"
    fake.write_text("#!/bin/sh\necho 'not allure'\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert main(["report", "--allure", str(fake)]) == 2
    assert "does not answer --version like an Allure command line" in capsys.readouterr().err


def test_a_missing_results_folder_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if find_allure() is None:
        pytest.skip(NEEDS_ALLURE)
    assert main(["report", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "html")]) == 2
    assert "does not exist (run pytest with --alluredir" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "html")]) == 2
    assert "holds no test results" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "html" / "index.html")
