"""The reporting plugin without a rig: labels, severity, rig steps as Allure steps, the files written
at the end (environment, executor, categories), the per-suite summary; steps and environment helpers."""

from __future__ import annotations

import hashlib

import json
from pathlib import Path

import pytest

from hil.clock import ManualClock
from hil.report.environment import executor, read_properties, write_properties
from hil.report.steps import STEP_LOG, rig_step, rig_step_method
from tests.unit.report.support import by_name, labels, run_inner

INNER = '''
import pytest
from hil.clock import ManualClock
from hil.report.steps import rig_step

clock = ManualClock(start=100.0)

@pytest.mark.join
def test_join_documented():
    """Join succeeds at the first attempt.

    More words that are not the story.
    """
    with rig_step("psu: power cycle", clock, off_time_s=2.0):
        clock.advance(2.0)
    with rig_step("dut: join", clock):
        assert False, "no join"

@pytest.mark.relay
@pytest.mark.severity("minor")
def test_relay_minor():
    pass

@pytest.mark.fcnt
@pytest.mark.relay
def test_two_suites():
    pytest.skip("not on this rig")

def test_framework():
    raise ValueError("a bug in the test")
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("inner")
    done = run_inner(tmp, INNER, "--alluredir", "allure-results", "--junitxml", "junit.xml",
                     env={"CI": "true", "HIL_BUILD_NAME": "nightly 42", "HIL_REPORT_URL": "https://ci.example/r/42"})
    return tmp, done


def test_labels_come_from_markers_docstrings_and_labels_yaml(run) -> None:  # type: ignore[no-untyped-def]
    tmp, done = run
    found = by_name(tmp / "allure-results")
    join = found["test_join_documented"]
    assert labels(join, "feature") == ["join"] and labels(join, "epic") == ["Network access"]
    assert labels(join, "story") == ["Join succeeds at the first attempt."]
    assert labels(join, "severity") == ["blocker"]  # labels.yaml: join's default
    relay = found["test_relay_minor"]
    assert labels(relay, "severity") == ["minor"] and labels(relay, "story") == ["test_relay_minor"]
    two = found["test_two_suites"]
    assert sorted(labels(two, "feature")) == ["fcnt", "relay"]
    assert sorted(labels(two, "epic")) == ["Mains switching", "Relay command protocol"]
    plain = found["test_framework"]
    assert labels(plain, "feature") == [] and labels(plain, "epic") == ["Framework self-tests"]


def test_rig_steps_are_allure_steps_with_rig_time(run) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = run
    steps = by_name(tmp / "allure-results")["test_join_documented"]["steps"]
    assert [s["name"] for s in steps] == ["psu: power cycle @ 100.000 rig s", "dut: join @ 102.000 rig s"]
    assert {p["name"]: p["value"] for p in steps[0]["parameters"]} == {"off_time_s": "2", "rig time": "100.000 s"}
    assert steps[0]["status"] == "passed" and steps[1]["status"] == "failed"


def test_environment_executor_and_categories_are_written(run) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = run
    folder = tmp / "allure-results"
    env = read_properties(folder / "environment.properties")
    assert env["framework.version"].startswith("0.") and env["lib.allure-pytest"] and env["python.version"]
    assert "rig.name" not in env  # no test used a rig
    assert json.loads((folder / "executor.json").read_text()) == {
        "name": "CI", "type": "ci", "buildName": "nightly 42", "reportUrl": "https://ci.example/r/42"}
    assert [c["name"] for c in json.loads((folder / "categories.json").read_text())] == [
        "Rig fault", "Timing", "Product defect", "Test error"]


def test_terminal_summary_counts_each_suite(run) -> None:  # type: ignore[no-untyped-def]
    _, done = run
    lines = done.stdout.splitlines()
    start = lines.index(next(line for line in lines if "results per suite" in line))
    table = {line.split()[0]: line.split()[1:] for line in lines[start + 2:start + 7] if line.strip()}
    assert table["join"] == ["0", "1", "0", "0"]
    assert table["fcnt"] == ["0", "0", "0", "1"] and table["relay"] == ["1", "0", "0", "1"]
    assert table["(no"] == ["suite)", "0", "0", "1", "0"]


def test_a_bad_severity_is_a_usage_error(tmp_path: Path) -> None:
    done = run_inner(tmp_path, "import pytest\n@pytest.mark.severity('huge')\ndef test_x():\n    pass\n")
    assert done.returncode == 4
    assert "@pytest.mark.severity('huge'): use one of blocker, critical, normal, minor, trivial" in done.stderr


def test_a_bad_evidence_option_is_a_usage_error(tmp_path: Path) -> None:
    done = run_inner(tmp_path, "def test_x():\n    pass\n", "-o", "hil_evidence=sometimes")
    assert done.returncode == 4 and "hil_evidence: 'sometimes' is not one of failed, all" in done.stderr


# -- helpers ----------------------------------------------------------------------------------------


def test_rig_step_records_and_reraises() -> None:
    clock = ManualClock(start=5.0)
    with pytest.raises(KeyError):
        with rig_step("dut: reset", clock, deadline=7.5):
            clock.advance(1.0)
            raise KeyError("x")
    record = STEP_LOG.between(5.0, 6.0)[-1]
    assert (record.start, record.end, record.name, record.params, record.error) == (
        5.0, 6.0, "dut: reset", (("deadline", "7.5"),), "KeyError")


def test_rig_step_method_names_the_step_from_the_call() -> None:
    class Relay:
        def __init__(self) -> None:
            self.clock = ManualClock(start=50.0)

        @rig_step_method("relay: command 0x{cmd:02x}", "arg")
        def command(self, cmd: int, arg: bytes = bytes(6)) -> int:
            return cmd

    assert Relay().command(0x81, b"\x01\x02") == 0x81
    record = STEP_LOG.between(50.0, 50.0)[-1]
    assert record.name == "relay: command 0x81" and record.params == (("arg", "0102"),)


def test_properties_escape_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "environment.properties"
    write_properties(path, {"rig.name": "bench-07", "note": "a=b: c\\d ü\nnext", " lead": "x"})
    write_properties(path, {"rig.name": "bench-08", "python.version": "3.11"})
    values = read_properties(path)
    assert values == {"rig.name": "bench-07, bench-08", "note": "a=b: c\\d ü\nnext", " lead": "x",
                      "python.version": "3.11"}
    assert path.read_text(encoding="ascii").isascii()


def test_executor_only_on_a_known_ci() -> None:
    assert executor({}) is None and executor({"CI": "false"}) is None
    github = executor({"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": "hil", "GITHUB_RUN_NUMBER": "7",
                       "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/relay",
                       "GITHUB_RUN_ID": "99", "CI": "true"})
    assert github == {"name": "GitHub Actions", "type": "github", "buildName": "hil #7", "buildOrder": "7",
                      "buildUrl": "https://github.com/acme/relay/actions/runs/99"}


# a digest no test key can be a part of (other tests register keys such as 0xab * 16 with the
# process-wide redactor, which would mask a digest made of the same bytes)
IMAGE_SHA256 = hashlib.sha256(b"relay-1.2.3.hex").hexdigest()


def test_environment_names_the_flashed_image_and_the_libraries(tmp_path: Path) -> None:
    from hil.report.environment import environment, file_sha256

    flashed = {"firmware": "/images/relay-1.2.3.hex", "firmware_sha256": IMAGE_SHA256, "firmware_version": "1.2.3",
               "firmware_flashed": "yes"}
    env = environment(None, identity={"version": "RUI_4.0.6", "serial_number": "X1"}, flashed=flashed)
    assert env["dut.firmware.image"] == "/images/relay-1.2.3.hex" and env["dut.firmware.image_sha256"] == IMAGE_SHA256
    assert env["dut.firmware.version"] == "RUI_4.0.6" and env["dut.reported.serial_number"] == "X1"
    assert env["lib.matplotlib"] != "not installed" and env["python.version"].startswith("CPython 3.")
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\x00" * 1000)
    env = environment(None, firmware_image=image)
    assert env["dut.firmware.image_sha256"] == file_sha256(image) and len(file_sha256(image)) == 64
