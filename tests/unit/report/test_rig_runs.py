"""Reports of real runs on the virtual rig: a firmware defect's failure carries the transcript, the
frame table and the timeline pointing at it; an unreachable instrument is broken under "Rig fault"."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.report.categories import classify
from hil.report.environment import read_properties
from tests.unit.report.support import SIM, attachment, by_name, labels, run_inner

DEFECT_RUN = '''
import pytest
from hil.clock import Deadline

pytestmark = pytest.mark.join

def test_join(rig, dut, network):
    """The DUT joins at the first attempt."""
    result = dut.join(Deadline.after(rig.clock, 120.0))
    assert result.joined, f"the DUT reported no join: {result.line!r}"

def test_supply_answers(psu):
    psu.output(True)
    assert psu.measure_voltage() > 4.5
'''


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("defect")
    rig = tmp / "sim-rx1-late.yaml"
    text = SIM.read_text(encoding="utf-8")
    assert "    defects: []" in text
    rig.write_text(text.replace("    defects: []", "    defects: [rx1_late]"), encoding="utf-8")
    done = run_inner(tmp, DEFECT_RUN, f"--rig={rig}", "--alluredir", "allure-results", "--junitxml", "junit.xml",
                     "-o", "hil_supply_sample_s=2")
    return tmp, done


def test_the_defect_fails_the_join_as_a_product_defect(defect_run) -> None:  # type: ignore[no-untyped-def]
    tmp, done = defect_run
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    folder = tmp / "allure-results"
    join = by_name(folder)["test_join"]
    rules = json.loads((folder / "categories.json").read_text(encoding="utf-8"))
    assert classify(join["status"], join["statusDetails"]["message"], rules) == "Product defect"
    assert labels(join, "feature") == ["join"] and labels(join, "story") == ["The DUT joins at the first attempt."]
    params = {p["name"]: p["value"] for p in join["parameters"]}
    assert params == {"rig": "sim", "LoRaWAN": "1.0.4", "class": "C", "dialect": "rak3172"}
    assert any(s["name"].startswith("dut: join @ ") and s["name"].endswith(" rig s") for s in join["steps"])
    assert by_name(folder)["test_supply_answers"].get("attachments", []) == []  # passes: no evidence by default


def test_the_failed_test_shows_transcript_frames_and_timeline(defect_run) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = defect_run
    folder = tmp / "allure-results"
    join = by_name(folder)["test_join"]
    transcript = attachment(folder, join, "DUT console transcript").read_text(encoding="utf-8")
    assert "> AT+JOIN=" in transcript and "< +EVT:JOIN_FAILED" in transcript
    frames = attachment(folder, join, "radio frames (CSV)").read_text(encoding="utf-8").splitlines()
    assert frames[0].startswith("rig time (s),dir,type,outcome,DevAddr,DevEUI,FCnt,DevNonce")
    assert any(",up,join_request,join_accepted," in row for row in frames[1:])
    assert any(",down,join_accept,sent," in row for row in frames[1:])  # the network answered: the DUT missed it
    page = attachment(folder, join, "radio frames").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "join_request" in page
    supply = attachment(folder, join, "supply V-I record (CSV)").read_text(encoding="utf-8")
    assert "measure current" in supply  # the sampler's (hil_supply_sample_s = 2)
    png = attachment(folder, join, "timeline").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] == 1300
    assert len(png) > 30_000


def test_environment_and_junit_name_the_rig_and_firmware(defect_run) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = defect_run
    env = read_properties(tmp / "allure-results" / "environment.properties")
    assert env["rig.name"] == "sim" and env["rig.kind"] == "virtual"
    assert env["dut.dev_eui"] == "70b3d57ed0000001" and env["dut.lorawan.version"] == "1.0.4"
    assert env["dut.firmware.version"] and not env["dut.firmware.version"].startswith("unknown")
    suite = ET.parse(tmp / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["rig"] == "sim" and props["firmware"] == env["dut.firmware.version"]
    assert props["dut_dev_eui"] == "70b3d57ed0000001"


UNREACHABLE_RUN = '''
import pytest

@pytest.mark.relay
def test_relay_output(psu, meter):
    assert False, "never reached: the supply does not answer"
'''


def test_an_unreachable_instrument_is_broken_under_rig_fault(tmp_path: Path) -> None:
    broken = tmp_path / "broken-psu.yaml"
    text = SIM.read_text(encoding="utf-8")
    broken.write_text(text.replace("resource: ${sim:psu}", "resource: TCPIP0::127.0.0.1::9::SOCKET"), encoding="utf-8")
    done = run_inner(tmp_path, UNREACHABLE_RUN, f"--rig={broken}", "--alluredir", "allure-results")
    assert "1 error" in done.stdout, done.stdout[-3000:]
    assert "rig faults (the bench, not the DUT)" in done.stdout
    lines = done.stdout.splitlines()
    assert any(line.split() == ["relay", "0", "0", "1", "0"] for line in lines), done.stdout[-2000:]
    folder = tmp_path / "allure-results"
    result = by_name(folder)["test_relay_output"]
    assert result["status"] == "broken"
    assert result["statusDetails"]["message"].startswith("drivers.instruments.visa.InstrumentError: ")
    rules = json.loads((folder / "categories.json").read_text(encoding="utf-8"))
    assert classify(result["status"], result["statusDetails"]["message"], rules) == "Rig fault"
    assert any(a["name"] == "timeline" for a in result.get("attachments", []))  # broken: evidence too
