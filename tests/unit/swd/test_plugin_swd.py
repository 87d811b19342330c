"""The pytest plugin's ``swd`` fixture and ``--firmware`` on the virtual rig, through pytester."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.swd.images import firmware, write_bin

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "rigs" / "sim.yaml"


def test_firmware_flashed_at_session_start_and_the_swd_fixture(pytester: pytest.Pytester, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    image = write_bin(tmp_path / "fw.bin", firmware(1024))
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    pytester.makepyfile(test_rig=f"""
from pathlib import Path

IMAGE = Path(r"{image}").read_bytes()

def test_flashed_before_the_first_test(rig, swd, psu):
    info = rig.firmware_info
    assert info["firmware_sha256"] == "{sha}" and info["firmware_version"] == "2.3.4"
    assert info["firmware_flashed"].startswith("yes")
    assert psu.output_is_on()  # the fixture powered the DUT: a probe reaches only a powered target
    assert swd.read_memory(0x08000000, len(IMAGE)) == IMAGE
    assert rig.rig.dut.swd.probe_uid.startswith("hilsim:")

def test_the_probe_outlives_the_supply_switched_off_after_a_test(swd):
    assert swd.read_memory(0x08000000, len(IMAGE)) == IMAGE
    assert len(swd.unique_id()) == 12
""")
    result = pytester.runpytest_subprocess("-p", "hil.plugin.pytest_plugin", "-p", "no:hypothesispytest",
                                           "-p", "no:benchmark", f"--rig={SIM}", f"--firmware={image}", timeout=300)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*firmware fw.bin (version 2.3.4, sha256 *...): flashed*"])
    assert "[===" not in result.stdout.str()  # no progress bar
