"""Failure categories: a rig fault is "Rig fault" (broken), an assertion "Product defect", a timeout
"Timing", any other exception "Test error"; the rules exclude each other and read the same in
JavaScript (Allure 3) as in Python; a real run's categories.json sorts its results that way."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import drivers.console  # noqa: F401  (the types the rules name, loaded as in a run)
import drivers.instruments.visa  # noqa: F401
import hil.relay.controller  # noqa: F401
from hil.faults import RigFault
from hil.report.categories import CategoryError, classify, load_rules
from tests.unit.report.support import by_name, run_inner

CASES = [
    ("broken", "hil.faults.RigFault: bad rig file", "Rig fault"),
    ("broken", "hil.faults.RigBusy: rig 'sim' is in use by pid 7", "Rig fault"),
    ("broken", "drivers.instruments.visa.InstrumentError: psu at TCPIP0::10.0.0.7::5025::SOCKET: refused", "Rig fault"),
    ("broken", "drivers.console.ConsolePortError: /dev/ttyUSB0 lost", "Rig fault"),
    ("broken", "hil.faults.RigFault", "Rig fault"),
    ("failed", "AssertionError: the DUT reported no join: '+EVT:JOIN_FAILED_RX_TIMEOUT'", "Product defect"),
    ("failed", "AssertionError", "Product defect"),
    ("failed", "drivers.console.ConsoleCommandError: 'AT+JOIN' was answered 'AT_BUSY_ERROR'", "Product defect"),
    ("failed", "Failed: the relay stayed on", "Product defect"),
    ("failed", "drivers.console.ConsoleTimeout: rak3172 console: expected /OK/ within 5.0 rig s; nothing matched.\n"
               "  last lines...", "Timing"),
    ("failed", "hil.relay.controller.NoCommunication: relay: no answer to command 0x01", "Timing"),
    ("failed", "Failed: Timeout >30.0s", "Timing"),
    ("broken", "TimeoutError: timed out", "Timing"),
    ("broken", "ValueError: could not convert string to float: 'x'", "Test error"),
    ("broken", "NameError: name 'nvm' is not defined", "Test error"),
    ("broken", "hil.faults.RigFaultLike: a different type whose name starts the same", "Test error"),
    ("broken", "AssertionError but broken?", "Test error"),
]


@pytest.fixture(scope="module")
def rules() -> list[dict[str, object]]:
    return load_rules()


@pytest.mark.parametrize("status, message, expected", CASES)
def test_each_failure_lands_in_its_category(rules: list[dict[str, object]], status: str, message: str,
                                            expected: str) -> None:
    assert classify(status, message, rules) == expected


@pytest.mark.parametrize("status, message, expected", CASES)
def test_no_result_matches_two_categories(rules: list[dict[str, object]], status: str, message: str,
                                          expected: str) -> None:
    """Allure 2 puts a result in every category that matches: the rules must exclude each other."""
    matching = [r["name"] for r in rules if classify(status, message, [r]) is not None]
    assert matching == [expected]


def test_a_rig_fault_subclass_defined_anywhere_is_a_rig_fault() -> None:
    class ProbeGone(RigFault):
        pass

    name = f"{ProbeGone.__module__}.{ProbeGone.__qualname__}"
    assert classify("broken", f"{name}: SWD probe lost", load_rules()) == "Rig fault"
    assert classify("passed", "", load_rules()) is None


def test_javascript_reads_the_rules_as_python_does(rules: list[dict[str, object]], tmp_path: Path) -> None:
    """Allure 3 matches with `new RegExp(...)`: every case sorts the same in Node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the JavaScript reading of the rules is not checked")
    script = tmp_path / "classify.js"
    script.write_text(
        "const [rules, cases] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const out = cases.map(([s, m]) => { const r = rules.find(r => r.matchedStatuses.includes(s) &&"
        " new RegExp(r.messageRegex).test(m)); return r ? r.name : null; });\n"
        "process.stdout.write(JSON.stringify(out));\n", encoding="utf-8")
    done = subprocess.run([node, str(script)], input=json.dumps([rules, [[s, m] for s, m, _ in CASES]]),
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [expected for _, _, expected in CASES]


def test_a_bad_categories_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "categories.yaml"
    bad.write_text("groups: {}\ncategories:\n  - name: X\n    statuses: [exploded]\n", encoding="utf-8")
    with pytest.raises(CategoryError, match=r"categories\.yaml: categories\.0\.statuses\.0"):
        load_rules(bad)
    bad.write_text("groups: {}\ncategories:\n  - name: X\n    statuses: [failed]\n    raised: [nope]\n", encoding="utf-8")
    with pytest.raises(CategoryError, match="no group 'nope'"):
        load_rules(bad)


INNER = '''
import pytest
from drivers.console import ConsoleTimeout
from hil.faults import RigFault

class BenchGone(RigFault):
    """A rig fault only this module knows."""

def test_product_defect():
    assert 1 + 1 == 3, "the DUT misbehaved"

def test_rig_fault():
    raise BenchGone("the supply went away")

def test_timing():
    raise ConsoleTimeout("rak3172 console: expected /OK/ within 5.0 rig s; nothing matched.")

def test_test_error():
    {}["missing"]

@pytest.fixture
def broken_bench():
    raise RigFault("instrument unreachable")

def test_rig_fault_in_setup(broken_bench):
    pass

def test_fine():
    pass
'''


def test_a_run_writes_categories_that_sort_its_results(tmp_path: Path) -> None:
    done = run_inner(tmp_path, INNER, "--alluredir", "allure-results")
    assert "1 passed" in done.stdout, done.stdout + done.stderr
    folder = tmp_path / "allure-results"
    rules = json.loads((folder / "categories.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in rules] == ["Rig fault", "Timing", "Product defect", "Test error"]
    found = {name: classify(r["status"], r.get("statusDetails", {}).get("message", ""), rules)
             for name, r in by_name(folder).items()}
    assert found == {
        "test_product_defect": "Product defect",
        "test_rig_fault": "Rig fault",
        "test_timing": "Timing",
        "test_test_error": "Test error",
        "test_rig_fault_in_setup": "Rig fault",
        "test_fine": None,
    }
