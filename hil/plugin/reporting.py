"""The reporting plugin: Allure labels and evidence, JUnit properties, the per-suite summary, no secrets.

Loaded from the top-level ``conftest.py`` beside :mod:`hil.plugin.pytest_plugin`. With
``--alluredir DIR`` (allure-pytest) every test gets:

* labels, as allure markers added at collection (so ``--allure-features join`` selects too):
  ``feature`` = each suite marker (join, devnonce, fcnt, relay, provision), ``epic`` = the suite's
  mission area, ``story`` = the docstring's first line or the test's name, ``severity`` = the
  test's ``@pytest.mark.severity("critical")`` or the suite's default (``hil/report/labels.yaml``);
  parameters rig (not part of the history id), DUT LoRaWAN version, class and console dialect;
* evidence attachments when it failed or broke (``hil_evidence = all`` for passes too): the DUT
  console transcript of the test, the radio frames the network saw and sent (HTML and CSV), the
  supply's V/I record (CSV), relay packets and meter readings (CSV), and the timeline plot (PNG);
* at the end, ``environment.properties``, ``executor.json`` (on CI) and ``categories.json``
  (Product defect, Rig fault, Timing, Test error) in the results folder.

Without ``--alluredir`` none of that is written. Always: secrets are masked in every report
before the terminal, JUnit XML or Allure read it, and the result files are checked once more at
the end; ``--junitxml`` gets the rig and the firmware as testsuite properties; the terminal
summary counts passed/failed/broken/skipped per suite (the rig faults themselves are listed by
the rig plugin).

ini options: ``hil_evidence`` (``failed`` | ``all``), ``hil_identify_dut`` (ask the DUT for its
firmware version once per session, default true), ``hil_supply_sample_s`` (sample the supply's
V and I every N rig seconds during a test for the plot; 0, the default, is off).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from hil.faults import RigFault
from hil.report import categories as cats
from hil.report.scrub import AllureResultRedactor, redact_report, scrub_files

log = logging.getLogger(__name__)

SUITES = ("join", "devnonce", "fcnt", "relay", "provision")
LABELS_FILE = Path(__file__).resolve().parents[1] / "report" / "labels.yaml"
SEVERITIES = ("blocker", "critical", "normal", "minor", "trivial")
EVIDENCE_MODES = ("failed", "all")
IDENTIFY_TIMEOUT_S = 15.0  # rig seconds for the DUT's identity queries
NO_SUITE = "(no suite)"

_STATE = pytest.StashKey["Reporting"]()
_TEST = pytest.StashKey["TestRecord"]()


@dataclass
class Phase:
    """How one phase (setup/call/teardown) of a test ended."""

    when: str
    status: str  # passed, failed, broken, skipped
    message: str = ""
    time: float | None = None  # rig time of the report, when a rig was up


@dataclass
class TestRecord:
    """One test's rig-time window (the clock kept from setup: the session's last test closes the
    rig before its teardown report), its phases, its sampler."""

    start: float | None = None
    clock: Any = None
    phases: list[Phase] = field(default_factory=list)
    sampler: Any = None


@dataclass
class Reporting:
    """The plugin's state for one session."""

    config: pytest.Config
    allure_dir: Path | None
    evidence: str
    identify: bool
    sample_s: float
    labels: dict[str, Any]
    rules: list[dict[str, Any]] = field(default_factory=list)
    session: Any = None  # the RigSession, once a test asked for the rig
    clock: Any = None  # its clock, kept from when it was up
    rig: Any = None  # its resolved rig file (hil.rigfile.Rig)
    flashed: dict[str, str] = field(default_factory=dict)  # the firmware the session flashed, if it did
    identity: dict[str, str] | None = None
    junit_record: Any = None
    junit_done: set[str] = field(default_factory=set)  # JUnit properties recorded
    redactor: Any = None
    per_suite: dict[str, dict[str, str]] = field(default_factory=dict)  # suite -> nodeid -> status
    suites_of: dict[str, list[str]] = field(default_factory=dict)  # nodeid -> its suite markers
    seen_rig_faults: set[str] = field(default_factory=set)


# -- options and life cycle ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("hil_evidence", "attach rig evidence to: failed (failed or broken tests, default) or all", default="failed")
    parser.addini("hil_identify_dut", "ask the DUT's console for its firmware version once per session", type="bool",
                  default=True)
    parser.addini("hil_supply_sample_s", "measure the supply's V and I every N rig seconds during a test "
                  "(for the timeline; 0 = off)", default="0")


def _load_labels() -> dict[str, Any]:
    data = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8")) or {}
    for suite, spec in (data.get("suites") or {}).items():
        if spec.get("severity", "normal") not in SEVERITIES:
            raise pytest.UsageError(f"{LABELS_FILE}: suites.{suite}.severity: {spec.get('severity')!r} is not one of "
                                    f"{', '.join(SEVERITIES)}")
    return data


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "severity(level): Allure severity of the test "
                                       f"({', '.join(SEVERITIES)}; default: its suite's, hil/report/labels.yaml)")
    mode = str(config.getini("hil_evidence")).strip().lower()
    if mode not in EVIDENCE_MODES:
        raise pytest.UsageError(f"ini option hil_evidence: {mode!r} is not one of {', '.join(EVIDENCE_MODES)}")
    raw = str(config.getini("hil_supply_sample_s")).strip()
    try:
        sample_s = float(raw or 0)
    except ValueError:
        raise pytest.UsageError(f"ini option hil_supply_sample_s: {raw!r} is not a number of rig seconds") from None
    if sample_s < 0:
        raise pytest.UsageError(f"ini option hil_supply_sample_s: {sample_s:g} must be 0 (off) or more")
    allure_dir = getattr(config.option, "allure_report_dir", None)
    state = Reporting(config, Path(allure_dir) if allure_dir else None, mode, bool(config.getini("hil_identify_dut")),
                      sample_s, _load_labels())
    config.stash[_STATE] = state
    config.pluginmanager.register(_Tally(state), "hil-reporting-tally")
    if state.allure_dir is not None:
        try:
            from allure_commons import plugin_manager

            state.redactor = AllureResultRedactor()
            plugin_manager.register(state.redactor)
        except ImportError:  # pragma: no cover - allure-pytest provides --alluredir
            state.redactor = None


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    tally = config.pluginmanager.get_plugin("hil-reporting-tally")
    if tally is not None:
        config.pluginmanager.unregister(tally)
    if state.redactor is not None:
        from allure_commons import plugin_manager

        plugin_manager.unregister(state.redactor)
    targets = [p for p in (state.allure_dir, _junit_path(config)) if p is not None]
    fixed = scrub_files(targets)
    if fixed:  # a secret got as far as a file: masked now, but someone should know which path let it through
        names = ", ".join(str(p) for p in fixed[:5]) + (f" and {len(fixed) - 5} more" if len(fixed) > 5 else "")
        config.get_terminal_writer().line(f"hil: masked secrets that reached {len(fixed)} result file(s): {names}",
                                          yellow=True)


def _junit_recorder(config: pytest.Config) -> Any:
    """What ``record_testsuite_property`` calls: the JUnit XML writer's ``add_global_property``
    (found among the plugins, so no fixture shows up in every test's setup); None without --junitxml."""
    if _junit_path(config) is None or getattr(config, "workerinput", None) is not None:
        return None  # xdist workers write no XML of their own
    for plugin in config.pluginmanager.get_plugins():
        add = getattr(plugin, "add_global_property", None)
        if callable(add):
            return add
    return None


def _junit_path(config: pytest.Config) -> Path | None:
    xmlpath = getattr(config.option, "xmlpath", None)
    return Path(xmlpath) if xmlpath else None


# -- labels at collection --------------------------------------------------------------------------


def _allure_values(item: pytest.Item, label_type: str) -> list[str]:
    return [str(a) for m in item.iter_markers("allure_label") if m.kwargs.get("label_type") == label_type for a in m.args]


def _story(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    return first or getattr(getattr(item, "function", None), "__name__", item.name)


@pytest.hookimpl(tryfirst=True)  # before allure-pytest's, so --allure-features join selects by these labels
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    suites_spec = state.labels.get("suites") or {}
    default = state.labels.get("default") or {}
    for item in items:
        suites = [s for s in SUITES if item.get_closest_marker(s) is not None]
        state.suites_of[item.nodeid] = suites
        spec = [suites_spec.get(s) or {} for s in suites]
        severity_mark = item.get_closest_marker("severity")
        if severity_mark is not None:
            level = str(severity_mark.args[0]) if severity_mark.args else ""
            if level not in SEVERITIES:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.severity({level!r}): use one of {', '.join(SEVERITIES)}")
        if severity_mark is None:
            level = (spec[0] if spec else default).get("severity", "normal")
        add = []
        if not _allure_values(item, "severity"):
            add.append(("severity", level))
        if not _allure_values(item, "epic"):
            epics = dict.fromkeys(s.get("epic") for s in spec if s.get("epic")) or {default.get("epic"): None}
            add += [("epic", e) for e in epics if e]
        features = _allure_values(item, "feature")
        add += [("feature", s) for s in suites if s not in features]
        if not _allure_values(item, "story"):
            add.append(("story", _story(item)))
        for label_type, value in add:
            item.add_marker(pytest.mark.allure_label(value, label_type=label_type))


# -- per test ----------------------------------------------------------------------------------------


def _now(state: Reporting, record: TestRecord | None = None) -> float | None:
    clock = record.clock if record is not None and record.clock is not None else state.clock
    try:
        return clock.now() if clock is not None else None
    except Exception:
        return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    state = item.config.stash[_STATE]
    record = item.stash[_TEST] = TestRecord(start=_now(state), clock=state.clock)
    outcome = yield
    funcargs = getattr(item, "funcargs", None) or {}
    rig = funcargs.get("rig")
    if rig is not None:
        _rig_seen(state, item, rig, ready=outcome.excinfo is None)
        record.clock = state.clock


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    state = item.config.stash[_STATE]
    record = item.stash.get(_TEST, None)
    psu = _parts(state, item).get("psu") if state.sample_s > 0 and state.session is not None else None
    if record is not None and psu is not None:
        from hil.report.sampler import SupplySampler

        record.sampler = SupplySampler(psu, state.clock, state.sample_s).start()
    try:
        yield
    finally:
        if record is not None and record.sampler is not None:
            record.sampler.stop()
            record.sampler = None


def _rig_seen(state: Reporting, item: pytest.Item, rig: Any, ready: bool) -> None:
    """A test has the live rig: rig parameters on its Allure result; once per session (when the
    test's fixtures are ready), the DUT's identity and the JUnit properties."""
    state.session = rig
    try:
        r = state.rig = rig.rig
        state.clock = rig.clock
    except Exception:  # the rig did not come up
        return
    state.flashed = dict(getattr(rig, "firmware_info", None) or {})  # what --firmware flashed at session start
    if state.allure_dir is not None:
        import allure

        allure.dynamic.parameter("rig", _Plain(r.name), excluded=True)  # the same test's history across rigs
        allure.dynamic.tag("virtual rig" if r.is_virtual else "bench")
        if r.dut.lorawan is not None:
            allure.dynamic.parameter("LoRaWAN", _Plain(r.dut.lorawan.version))
            allure.dynamic.parameter("class", _Plain(r.dut.lorawan.device_class))
        allure.dynamic.parameter("dialect", _Plain(r.dut.console.dialect))
    wanted = state.allure_dir is not None or _junit_path(state.config) is not None
    if ready and wanted and state.identity is None and state.identify and "dut" in item.funcargs:
        state.identity = _identify(item.funcargs["dut"], rig.clock)
    if ready and state.junit_record is None:
        state.junit_record = _junit_recorder(state.config)  # (junitxml is configured after this plugin)
    if ready and state.junit_record is not None:
        props = {"rig": r.name, "rig_kind": "virtual" if r.is_virtual else "real bench"}
        if r.dut.lorawan is not None:
            props.update(dut_dev_eui=str(r.dut.lorawan.dev_eui), lorawan_version=r.dut.lorawan.version)
        if state.identity:
            props["firmware"] = state.identity.get("version", "unknown")
        elif state.flashed.get("firmware_version"):
            props["firmware"] = state.flashed["firmware_version"]
        if state.flashed.get("firmware_sha256"):
            props["firmware_sha256"] = state.flashed["firmware_sha256"]
        from hil.rigfile.redaction import redact

        for key, value in props.items():
            if key not in state.junit_done:  # each once; the firmware when a test first had the DUT
                state.junit_done.add(key)
                state.junit_record(key, redact(str(value)))


class _Plain:
    """A parameter value Allure shows as it is (it quotes the repr of a str)."""

    def __init__(self, text: str) -> None:
        self.text = str(text)

    def __repr__(self) -> str:
        return self.text


def _identify(console: Any, clock: Any) -> dict[str, str]:
    """The DUT's identity from its console (version, serial...); what went wrong instead if it would not say."""
    from hil.clock import Deadline

    try:
        return dict(console.identity(Deadline.after(clock, IDENTIFY_TIMEOUT_S)))
    except Exception as exc:  # reporting must not fail a test: say why the version is unknown
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]
        return {"version": f"unknown ({type(exc).__name__}: {first})"}


def _status(call: pytest.CallInfo[Any], report: pytest.TestReport) -> str:
    if report.skipped:
        return "skipped"
    if report.passed:
        return "passed"
    exc = call.excinfo  # as Allure decides: an assertion (or pytest.fail) failed, anything else broke
    if exc is None or exc.errisinstance(AssertionError) or exc.errisinstance(pytest.fail.Exception):
        return "failed"
    return "broken"


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    redact_report(report)
    state = item.config.stash[_STATE]
    record = item.stash.setdefault(_TEST, TestRecord())
    status = _status(call, report)
    report.hil_status = status  # type: ignore[attr-defined]  # the per-suite summary reads it (survives xdist)
    message = ""
    if call.excinfo is not None and status in ("failed", "broken"):
        from hil.rigfile.redaction import redact

        message = redact(call.excinfo.exconly())
        if call.excinfo.errisinstance(RigFault):
            state.seen_rig_faults.add(cats.exception_name(call.excinfo.type))
    record.phases.append(Phase(report.when, status, message, _now(state, record)))
    if report.when == "teardown" and state.allure_dir is not None:
        _attach_evidence(state, item, record)


def _final(record: TestRecord) -> Phase | None:
    """The phase that decides the test's outcome: the first that failed or broke, else the call."""
    bad = [p for p in record.phases if p.status in ("failed", "broken")]
    if bad:
        return bad[0]
    return next((p for p in record.phases if p.when == "call"), None)


def _parts(state: Reporting, item: pytest.Item) -> dict[str, Any]:
    """The rig parts open now: those the session opened, and those the test asked for by fixture."""
    parts: dict[str, Any] = {}
    opened = getattr(state.session, "_parts", None)  # RigSession keeps what it opened (no public accessor)
    if isinstance(opened, dict):
        parts.update(dict(opened))
    funcargs = getattr(item, "funcargs", None) or {}
    for fixture, role in (("dut", "console"), ("psu", "psu"), ("power", "psu"), ("network", "network"),
                          ("meter", "meter"), ("relay", "relay")):
        if fixture in funcargs and funcargs[fixture] is not None:
            parts[role] = funcargs[fixture]
    return parts


def _attach_evidence(state: Reporting, item: pytest.Item, record: TestRecord) -> None:
    final = _final(record)
    if final is None or final.status == "skipped":
        return
    if final.status == "passed" and state.evidence != "all":
        return
    if state.session is None:
        return  # no rig was ever up: nothing to show but the error itself
    try:
        _attach(state, item, record, final)
    except Exception:  # the evidence must not hide the test's own outcome
        log.exception("hil: attaching evidence to %s failed", item.nodeid)


def _attach(state: Reporting, item: pytest.Item, record: TestRecord, final: Phase) -> None:
    import allure

    from hil.report import tables
    from hil.report.evidence import collect, transcript_text
    from hil.report.timeline import render_timeline
    from hil.rigfile.redaction import redact

    parts = _parts(state, item)
    end = _now(state, record)
    if end is None:
        return
    failure = (final.time if final.time is not None else end, final.message) if final.status != "passed" else None
    evidence = collect(record.start, end, console=parts.get("console"), network=parts.get("network"),
                       psu=parts.get("psu"), meter=parts.get("meter"), relay=parts.get("relay"), failure=failure)
    category = cats.classify(final.status, final.message, _rules(state))
    outcome = final.status + (f" ({category})" if category else "")
    text = allure.attachment_type.TEXT
    if parts.get("console") is not None:
        allure.attach(redact(transcript_text(evidence)), "DUT console transcript", text)
    if parts.get("network") is not None:
        allure.attach(tables.frames_html(evidence.frames, f"Radio frames: {item.nodeid}"), "radio frames",
                      allure.attachment_type.HTML)
        allure.attach(tables.frames_csv(evidence.frames), "radio frames (CSV)", allure.attachment_type.CSV)
    if parts.get("psu") is not None:
        allure.attach(redact(tables.supply_csv(evidence.power)), "supply V-I record (CSV)", allure.attachment_type.CSV)
    if evidence.relay or evidence.readings:
        allure.attach(tables.relay_csv(evidence.relay, evidence.readings), "relay packets and meter readings (CSV)",
                      allure.attachment_type.CSV)
    allure.attach(render_timeline(evidence, item.nodeid, outcome), "timeline", allure.attachment_type.PNG)


def _rules(state: Reporting) -> list[dict[str, Any]]:
    state.rules = cats.load_rules(extra={"rig_fault": sorted(state.seen_rig_faults)})
    return state.rules


# -- summary and session end ---------------------------------------------------------------------------


class _Tally:
    """Counts each test once, by its worst phase, per suite (registered per session; on the xdist
    controller it sees the workers' reports)."""

    def __init__(self, state: Reporting) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call", "teardown"):
            return
        status = getattr(report, "hil_status", None)
        if status is None:
            status = "skipped" if report.skipped else "passed" if report.passed else "failed"
        # by marker, not report.keywords: those also hold folder names (tests/unit/provision/...)
        for suite in self.state.suites_of.get(report.nodeid) or [NO_SUITE]:
            counts = self.state.per_suite.setdefault(suite, {})
            previous = counts.get(report.nodeid)
            if previous is None or _worse(status, previous):
                counts[report.nodeid] = status


def _worse(new: str, old: str) -> bool:
    order = {"passed": 0, "skipped": 1, "failed": 2, "broken": 3}
    if old == "skipped" and new == "passed":
        return False  # a skip in setup is the test's outcome
    return order.get(new, 0) > order.get(old, 0)


@pytest.hookimpl(trylast=True)  # after the rig plugin's "rig faults" section
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not any(s != NO_SUITE for s in state.per_suite):
        return
    terminalreporter.section("results per suite")
    columns = ("passed", "failed", "broken", "skipped")
    order = [s for s in SUITES if s in state.per_suite] + ([NO_SUITE] if NO_SUITE in state.per_suite else [])
    width = max(len(s) for s in order + ["suite"])
    terminalreporter.line(f"{'suite':<{width}}  " + "  ".join(f"{c:>7}" for c in columns))
    for suite in order:
        tally = {c: 0 for c in columns}
        for status in state.per_suite[suite].values():
            tally[status] = tally.get(status, 0) + 1
        terminalreporter.line(f"{suite:<{width}}  " + "  ".join(f"{tally[c]:>7}" for c in columns))
    terminalreporter.line("broken = an error outside the DUT's assertions; rig faults among them are listed above")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or state.allure_dir is None:
        return
    from hil.report.environment import environment, write_executor, write_properties

    _import_rule_types()
    try:
        values = environment(state.rig, identity=state.identity, flashed=state.flashed)
        write_properties(state.allure_dir / "environment.properties", values)
        write_executor(state.allure_dir)
        cats.write_categories(state.allure_dir, _rules(state))
    except OSError as exc:
        session.config.get_terminal_writer().line(f"hil: could not write the report's environment files: {exc}", red=True)


def _import_rule_types() -> None:
    """Load the modules whose exception types the category rules name (with their subclasses)."""
    for module in ("drivers.console", "drivers.instruments.visa", "hil.relay.controller", "hil.plugin.rig_lock"):
        try:
            __import__(module)
        except ImportError:
            log.debug("category rules: %s not importable", module)
