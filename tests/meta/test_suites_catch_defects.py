"""The mission suites prove they can fail: each firmware defect of the virtual DUT makes tests of its
suite fail (README, "Which test catches which defect").

For every defect in :data:`hil.sim.dut.defects.DEFECTS`, the matching suite (the defect's
``caught_by`` marker) runs in a child pytest against the virtual rig with that one defect switched
on (``--rig-set sim.dut.defects=[name]``). The child must report failures — not errors: a defect
is the DUT's misbehaviour, never a rig fault — and among them every test listed in
:data:`CATCHES` (only those run, to keep this quick; a defect with no list runs its whole suite). The clean firmware passing the same suites is the ordinary ``tests/hil`` run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.sim.dut.defects import DEFECTS

ROOT = Path(__file__).resolve().parents[2]

# defect -> the tests that must fail with it (each suite may fail more; these are the ones named
# in the README table). The slow power-fail campaign is what catches a nonce persisted after TX.
CATCHES: dict[str, tuple[str, ...]] = {
    "join_accept_mic_unchecked": ("test_join.py::test_join_accept_with_bad_mic_is_ignored",),
    "rx1_late": ("test_join.py::test_otaa_join_then_uplink_in_the_new_session",
                 "test_join.py::test_join_accept_in_rx1_is_taken_at_the_first_attempt"),
    "devnonce_not_persisted": ("test_devnonce.py::test_devnonce_never_repeats_across_restarts",),
    "devnonce_persisted_after_tx": ("test_devnonce.py::test_power_fail_campaign_never_reuses_devnonce",),
    "fcnt_not_persisted": ("test_fcnt.py::test_fcnt_up_is_never_reused_across_a_power_cycle",),
    "sync_silent": ("test_fcnt.py::test_sync_recovery_when_the_controller_disagrees[controller_behind]",
                    "test_fcnt.py::test_a_replayed_command_is_answered_by_sync_and_never_actuates"),
    "relay_accepts_replay": ("test_fcnt.py::test_a_replayed_command_is_answered_by_sync_and_never_actuates",),
    "relay_feedback_lies": ("test_relay.py::test_without_mains_at_its_input_the_relay_reports_its_output_dead",),
    "relay_restores_last_state": ("test_relay.py::test_after_a_power_cycle_the_relay_comes_up_off_and_announces_it",),
    "contact_welded": ("test_relay.py::test_set_get_nop_agree_with_the_bench_measurement",),
}

MARK_EXPR = {"devnonce": "devnonce and (slow or not slow)"}  # the campaign is slow: select it too


def run_suite(marker: str, defect: str, tmp_path: Path, tests: tuple[str, ...] = ()) -> dict[str, str]:
    """Run one suite (or only ``tests`` of it) with one defect in a child pytest;
    test id -> passed/failed/error/skipped."""
    junit = tmp_path / "junit.xml"
    targets = [f"tests/hil/{name}" for name in tests] or ["tests/hil"]
    command = [
        sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider",
        "-m", MARK_EXPR.get(marker, marker),
        f"--rig-set=sim.dut.defects=[{defect}]",
        f"--rig-set=name=sim-meta-{defect.replace('_', '-')}",  # its own rig lock and transcript
        f"--junitxml={junit}", "-o", "junit_family=xunit2",
    ]
    env = {**os.environ, "HIL_META_CHILD": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if not junit.exists():
        pytest.fail(f"the child pytest wrote no results (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{Path(case.get('classname', '').replace('.', '/')).name}.py::{case.get('name')}"
        tags = {child.tag for child in case}
        outcomes[name] = ("failed" if "failure" in tags else "error" if "error" in tags
                          else "skipped" if "skipped" in tags else "passed")
    outcomes["__output__"] = done.stdout[-4000:]
    return outcomes


@pytest.mark.parametrize("defect", [d.name for d in DEFECTS])
def test_suite_catches_defect(defect: str, tmp_path: Path) -> None:
    suite = next(d.caught_by for d in DEFECTS if d.name == defect)
    outcomes = run_suite(suite, defect, tmp_path, CATCHES[defect])
    output = outcomes.pop("__output__")
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    errors = sorted(name for name, outcome in outcomes.items() if outcome == "error")
    assert not errors, f"with {defect} the {suite} suite reported errors (rig faults?) {errors}:\n{output}"
    assert failed, f"the {suite} suite passes on a DUT with the defect {defect}: it cannot catch it\n{output}"
    missing = [name for name in CATCHES[defect] if name not in failed]
    assert not missing, f"with {defect}, {missing} passed; failed were {failed}\n{output}"


TEST_NWK_KEY = "000102030405060708090a0b0c0d0e0f"  # the virtual device's NwkKey for the 1.1 variant
VARIANTS: dict[str, tuple[str, ...]] = {
    # the rig's declared version and class drive the suites: LoRaWAN 1.1 (NwkKey root, JoinNonce,
    # 1.1 session keys) on a Class A device, the other end of the matrix from rigs/sim.yaml (1.0.4, C)
    "lorawan-1.1-class-A": ('sim.dut.lorawan_version="1.1"', 'dut.lorawan.version="1.1"',
                            f"sim.dut.nwk_key={TEST_NWK_KEY}", f"dut.lorawan.nwk_key={TEST_NWK_KEY}",
                            "sim.dut.device_class=A", "dut.lorawan.device_class=A"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_join_and_devnonce_suites_pass_on_variant(variant: str, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    command = [sys.executable, "-m", "pytest", "tests/hil", "-q", "-p", "no:cacheprovider", "-m", "join or devnonce",
               f"--rig-set=name=sim-meta-{variant}", *(f"--rig-set={item}" for item in VARIANTS[variant]),
               f"--junitxml={junit}"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "HIL_META_CHILD": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"the join/devnonce suites fail on the {variant} DUT:\n{done.stdout[-4000:]}"
