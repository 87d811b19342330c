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


RELAY_SAFE_STATE = """
from hil.clock import Deadline

SAFE_NOTE = "safe state: OFF, confirmed by the meter"
seen = {}


def sent_by_the_safe_state(rig):
    return [p for p in rig.relay().log if p.direction == "tx" and p.note == SAFE_NOTE]


def test_leaves_the_relay_on(rig, dut, relay, meter):
    dut.join(Deadline.after(rig.clock, 120))
    relay.wait_announcement(60)
    answer = relay.set_output(True)
    assert answer.relay_state and meter.ac_voltage() > 200


def test_the_safe_state_switched_it_off_confirmed_by_the_meter(rig, meter, psu):
    assert meter.ac_voltage() < 100 and not psu.output_is_on()
    assert len(sent_by_the_safe_state(rig)) == 1  # one OFF command; its answer was not awaited


def test_switches_the_supply_off_itself(rig, dut, relay, psu):
    relay.wait_announcement(120)  # joined before: it rejoins by itself after power-up and announces
    psu.output(False)
    seen["sent"] = len(sent_by_the_safe_state(rig))


def test_no_off_command_to_an_unpowered_coil(rig):
    assert len(sent_by_the_safe_state(rig)) == seen["sent"] == 1
"""


def test_relay_safe_state_is_confirmed_by_the_meter_and_skipped_when_the_coil_is_unpowered(run) -> None:  # type: ignore[no-untyped-def]
    result = run(RELAY_SAFE_STATE, "--rig-set=name=sim-unit-relay-safe")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*rig left safe (session end): relay off, supply off, mains off*"])


NO_METER = """
from hil.clock import Deadline
from hil.relay.protocol import Command


def test_leaves_the_relay_on(rig, dut, relay):
    dut.join(Deadline.after(rig.clock, 120))
    relay.wait_announcement(60)
    assert relay.set_output(True).relay_state


def test_without_a_meter_the_relay_answer_confirmed_off(rig):
    off = [p.message for p in rig.relay().log if p.direction == "rx" and p.message.cmd == 0x80 | Command.SET_OUTPUT]
    assert [m.relay_state for m in off] == [True, False]
"""


def test_without_a_meter_the_relay_safe_state_waits_for_the_answer(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    no_meter = tmp_path / "no-meter.yaml"
    text = SIM.read_text()
    start = text.index("\nfeedback:")
    end = text.index("\nnetwork:")
    no_meter.write_text(text[:start] + text[end:])
    result = run(NO_METER, f"--rig={no_meter}")
    result.assert_outcomes(passed=2)


MAINS_FIXTURE = """
def feed(rig):
    return rig.up.providers["sim"].rig.mains.channel(1)  # the virtual AC source's output


def test_switches_the_feed_off(rig, mains, meter):
    assert mains.output_is_on() and mains.voltage_setpoint() == rig.rig.mains.voltage
    mains.set_voltage(115.0)
    mains.output(False)
    assert not feed(rig).output_on


def test_the_feed_is_back_on_at_its_voltage_after_the_test(rig):
    assert feed(rig).output_on and feed(rig).set_voltage == rig.rig.mains.voltage == 230.0


def test_stays_on_through_the_safe_state_between_tests(rig, psu):
    rig.make_safe("a test's own safe state")
    assert feed(rig).output_on and not psu.output_is_on()
"""


def test_mains_feed_is_restored_after_a_test_and_switched_off_at_session_end(run) -> None:  # type: ignore[no-untyped-def]
    result = run(MAINS_FIXTURE, "--rig-set=name=sim-unit-mains")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*rig left safe (session end): relay off, supply off, mains off*"])


def test_a_rig_without_a_mains_feed_skips_the_mains_fixture_by_name(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    no_mains = tmp_path / "no-mains.yaml"
    text = SIM.read_text()
    start = text.index("\nmains:")
    end = text.index("\nfeedback:")
    no_mains.write_text(text[:start] + text[end:])
    result = run("def test_x(mains):\n    pass\n\ndef test_relay_needs_no_feed(relay):\n    pass\n",
                 f"--rig={no_mains}", "-rs")
    result.assert_outcomes(skipped=1, passed=1)
    result.stdout.fnmatch_lines(["*the rig file has no 'mains' part*"])


def test_session_end_switches_the_mains_feed_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hil.plugin.session import RigSession

    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    session = RigSession(SIM, overrides=["name=sim-unit-mains-end"]).start()
    try:
        assert session.up is not None
        feed = session.up.providers["sim"].rig.mains.channel(1)
        assert feed.output_on  # the virtual source starts on; nothing opened it yet
        session.make_safe("between two tests")
        assert feed.output_on
        session.mains().output(False)
        session.mains_on()
        assert feed.output_on and feed.set_voltage == 230.0
    finally:
        session.close()
    assert not feed.output_on
    assert [action for reason, action in session.safe.history if reason == "session end"] == [
        "relay off", "supply off", "mains off"]
