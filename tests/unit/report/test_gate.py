"""``python -m hil gate``: exit 0 only when the build may ship; 1 with the reasons when it may not; 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cli import main
from tests.unit.report.support import write_result

REQUIRED = ("join", "devnonce", "fcnt", "relay")
RIG_FAULT = "drivers.instruments.visa.InstrumentError: psu at TCPIP0::10.0.0.7::5025::SOCKET: connection refused"


def all_passing(folder: Path) -> Path:
    for suite in REQUIRED:
        write_result(folder, f"test_{suite}_a", "passed", (suite,))
        write_result(folder, f"test_{suite}_b", "passed", (suite,))
    return folder


def gate(capsys: pytest.CaptureFixture[str], folder: Path, *args: str) -> tuple[int, str]:
    code = main(["gate", "--results", str(folder), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_every_required_suite_passed_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = gate(capsys, all_passing(tmp_path))
    assert code == 0, out
    assert "GATE PASSED" in out
    for suite in REQUIRED:
        assert any(line.split()[:3] == [suite, "2", "2"] for line in out.splitlines()), out


def test_a_missing_suite_refuses_and_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for suite in ("join", "devnonce", "fcnt"):
        write_result(tmp_path, f"test_{suite}", "passed", (suite,))
    code, out = gate(capsys, tmp_path)
    assert code == 1
    assert "relay: did not run" in out and "GATE REFUSED (1 reason(s))" in out


def test_a_failed_test_refuses_with_its_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_relay_feedback", "failed", ("relay",),
                 "AssertionError: the relay reported ON but the output reads 0.4 V AC")
    code, out = gate(capsys, tmp_path)
    assert code == 1
    assert "relay: 1 failed: test_relay_feedback (Product defect: AssertionError: the relay reported ON" in out


def test_a_timing_failure_refuses_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_join_slow", "failed", ("join",), "drivers.console.ConsoleTimeout: expected /OK/")
    code, out = gate(capsys, tmp_path)
    assert code == 1 and "(Timing: drivers.console.ConsoleTimeout" in out


def test_rig_faults_within_the_allowance_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_fcnt_broken", "broken", ("fcnt",), RIG_FAULT)
    code, out = gate(capsys, tmp_path, "--allow-broken", "1")
    assert code == 0, out
    code, out = gate(capsys, tmp_path)  # default allowance: 0
    assert code == 1
    assert "1 required test(s) broken by rig faults, 0 allowed: test_fcnt_broken (Rig fault" in out


def test_a_test_error_refuses_whatever_the_allowance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_devnonce_typo", "broken", ("devnonce",), "NameError: name 'nvm' is not defined")
    code, out = gate(capsys, tmp_path, "--allow-broken", "5")
    assert code == 1
    assert "devnonce: 1 broken by a test error (not the rig): test_devnonce_typo (Test error: NameError" in out


def test_a_suite_only_skipped_or_only_broken_by_the_rig_did_not_run(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for suite in ("join", "devnonce", "fcnt"):
        write_result(tmp_path / "skipped", f"test_{suite}", "passed", (suite,))
    write_result(tmp_path / "skipped", "test_relay_x", "skipped", ("relay",))
    code, out = gate(capsys, tmp_path / "skipped")
    assert code == 1 and "relay: did not run (all 1 test(s) skipped)" in out

    write_result(tmp_path / "rig", "test_join_x", "broken", ("join",), RIG_FAULT)
    code, out = gate(capsys, tmp_path / "rig", "--require", "join", "--allow-broken", "3")
    assert code == 1 and "join: nothing was verified (no test passed; 1 broken by rig faults)" in out


def test_suites_not_required_do_not_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_station", "failed", ("provision",), "AssertionError: no label printed")
    write_result(tmp_path, "test_codec", "failed", (), "AssertionError: unit")
    code, out = gate(capsys, tmp_path)
    assert code == 0, out
    assert "(not required)" in out
    code, out = gate(capsys, tmp_path, "--require", "join,provision")
    assert code == 1 and "provision: 1 failed" in out


def test_a_retry_that_passed_counts_not_the_first_attempt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    write_result(tmp_path, "test_join_flaky", "failed", ("join",), "AssertionError: x", stop=10, history_id="h1")
    write_result(tmp_path, "test_join_flaky", "passed", ("join",), stop=20, history_id="h1")
    assert gate(capsys, tmp_path)[0] == 0
    write_result(tmp_path, "test_join_flaky", "failed", ("join",), "AssertionError: x", stop=30, history_id="h1")
    assert gate(capsys, tmp_path)[0] == 1


def test_an_unreadable_result_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    all_passing(tmp_path)
    (tmp_path / "0000-result.json").write_text("{ truncated", encoding="utf-8")
    code, out = gate(capsys, tmp_path)
    assert code == 1 and "unreadable results: 0000-result.json" in out


def test_the_results_categories_file_decides_rig_faults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A RigFault subclass only the run knew (defined in a test module) is a rig fault by its categories.json."""
    import json

    from hil.report.categories import load_rules, write_categories

    all_passing(tmp_path)
    write_result(tmp_path, "test_relay_meter", "broken", ("relay",), "test_bench.MeterGone: no reading")
    assert gate(capsys, tmp_path, "--allow-broken", "1")[0] == 1  # built-in rules: a test error
    write_categories(tmp_path, load_rules(extra={"rig_fault": ["test_bench.MeterGone"]}))
    assert json.loads((tmp_path / "categories.json").read_text())[0]["name"] == "Rig fault"
    assert gate(capsys, tmp_path, "--allow-broken", "1")[0] == 0


@pytest.mark.parametrize("args, message", [
    (["--results", "{missing}"], "does not exist"),
    (["--require", ""], "names no suite"),
    (["--require", "join,re lay"], "is not a suite name"),
    (["--allow-broken", "-1"], "must be 0 or more"),
    (["--allow-broken", "many"], "invalid int value"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    all_passing(tmp_path)
    args = [a.replace("{missing}", str(tmp_path / "nope")) for a in args]
    code = main(["gate", "--results", str(tmp_path), *args] if "--results" not in args else ["gate", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
