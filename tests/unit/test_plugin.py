"""The pytest plugin through pytester (each run in its own process, on the virtual rig):
safe state after a failing test and after Ctrl-C, rig faults as errors, one session per rig,
a bad rig file's message, parts a rig lacks skipped by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.plugin.rig_lock import RigLock

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "rigs" / "sim.yaml"


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))

    def go(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_rig=source)
        rig = [] if any(a.startswith("--rig=") for a in args) else [f"--rig={SIM}"]
        return pytester.runpytest_subprocess("-p", "hil.plugin.pytest_plugin", *rig, *args, timeout=300)

    return go


def test_supply_is_off_after_a_failing_test(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
def test_dut_misbehaves(dut, psu):
    assert psu.output_is_on()
    assert False, "the DUT misbehaved"

def test_rig_was_left_safe(psu):
    assert not psu.output_is_on()
"""
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*rig left safe (session end): *supply off*"])


def test_ctrl_c_leaves_the_rig_safe(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
def test_interrupted(dut, psu):
    assert psu.output_is_on()
    raise KeyboardInterrupt
"""
    )
    result.stdout.fnmatch_lines(["*rig left safe (session end): *supply off*"])
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])


def test_rig_fault_is_an_error_not_a_failure(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.yaml"
    broken.write_text(SIM.read_text().replace("resource: ${sim:psu}", "resource: TCPIP0::127.0.0.1::9::SOCKET"))
    result = run(
        """
def test_needs_the_supply(psu):
    pass

def test_opens_the_supply_itself(rig):
    rig.psu()
""",
        f"--rig={broken}",
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*rig faults (the bench, not the DUT)*", "*TCPIP0::127.0.0.1::9::SOCKET*"])


def test_a_second_session_fails_naming_the_holder(run) -> None:  # type: ignore[no-untyped-def]
    with RigLock("sim"):  # this process holds the rig (HIL_LOCK_DIR is shared with the inner run)
        result = run("def test_x(rig):\n    pass\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rig 'sim' is in use by *pid*--rig-wait*"])


def test_a_bad_rig_file_names_file_line_and_key(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIM.read_text().replace("  channel: 1\n  voltage: 5.0", "  channel: one\n  voltage: 5.0"))
    result = run("def test_x(rig):\n    pass\n", f"--rig={bad}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*bad rig file*{bad}:*psu.channel*"])


def test_a_part_the_rig_lacks_is_skipped_by_name(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    no_meter = tmp_path / "no-meter.yaml"
    text = SIM.read_text()
    start = text.index("\nfeedback:")
    end = text.index("\nnetwork:")
    no_meter.write_text(text[:start] + text[end:])
    result = run("def test_x(meter):\n    pass\n", f"--rig={no_meter}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the rig file has no 'feedback'*"])


def test_each_xdist_worker_takes_its_own_rig() -> None:
    from hil.plugin.pytest_plugin import choose_rig

    rigs = ["bench-07", "bench-08"]
    assert choose_rig(rigs, None) == "bench-07"
    assert choose_rig(rigs, "gw0") == "bench-07" and choose_rig(rigs, "gw1") == "bench-08"
    assert choose_rig(["sim"], "gw3") == "sim"  # one rig: every worker shares it (the lock serialises them)
    with pytest.raises(pytest.UsageError, match="-n 2"):
        choose_rig(rigs, "gw2")


def test_keys_are_masked_in_captured_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from hil.lorawan.crypto import AESKey
    from hil.rigfile import REDACTOR

    secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    REDACTOR.add_key(AESKey(secret))
    logging.getLogger("hil.test").warning("console sent AT+APPKEY=%s", secret.upper())
    assert secret.upper() not in caplog.text and "****" in caplog.text
