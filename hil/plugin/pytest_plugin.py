"""The pytest plugin: ``--rig``, fixtures for the rig's parts, safe state, rig faults as errors.

Loaded from the top-level ``conftest.py``. A test asks for the parts it uses::

    @pytest.mark.join
    def test_join(dut, network): ...

``rig`` (session scope) brings the rig file up once, locked for this session; ``dut`` powers the
DUT and waits for its console before each test; after each test the rig is left safe (relay
commanded off, supply off; the relay's mains feed is switched off only when the session ends, and
is back on at the start of every test that uses the relay). A part the rig file lacks skips the
test with the part's name. With pytest-xdist, ``-n 2 --rig bench-07 --rig bench-08`` gives each
worker its own rig (gw0 the first). A
:class:`~hil.faults.RigFault` (instrument unreachable, instrument error, lost port, rig busy) is
reported as an error, never as a failure of the DUT; the terminal summary lists rig faults apart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from hil.faults import RigFault
from hil.plugin.session import MissingPart, RigSession
from hil.rigfile import RigFileError, install_log_redaction
from hil.rigfile.redaction import install_record_redaction, uninstall_record_redaction

DEFAULT_RIG = "rigs/sim.yaml"
_SESSION_KEY = pytest.StashKey[RigSession]()
_RIG_FAULTS = pytest.StashKey[list]()
_SAFE_LOG = pytest.StashKey[list]()
_DIAGNOSTICS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--rig", action="append", default=None, metavar="PATH|NAME",
                    help=f"rig file, or a name under rigs/ (default: the hil_rig ini value, {DEFAULT_RIG}); "
                         "give it once per pytest-xdist worker to run on several rigs at once")
    group.addoption("--rig-wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for a rig another session holds (default: fail at once)")
    group.addoption("--rig-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a rig-file value for this run, e.g. --rig-set sim.dut.defects=[rx1_late] "
                         "(the value is YAML; repeat for several)")
    group.addoption("--firmware", default=None, metavar="PATH",
                    help="flash this image (.bin/.hex/.elf) through the SWD probe at session start, unless the DUT "
                         "already holds it (default: the rig file's dut.swd.firmware, if any)")
    parser.addini("hil_rig", "default rig file", default=DEFAULT_RIG)
    suites = parser.getgroup("hil-suites", "mission-suite sizes")
    suites.addoption("--devnonce-joins", type=int, default=5, metavar="N",
                     help="joins (each after a restart of another kind) in the DevNonce suite (default 5)")
    suites.addoption("--power-fail-cycles", type=int, default=50, metavar="M",
                     help="supply cuts around the join-request in the DevNonce power-fail campaign (default 50)")
    suites.addoption("--power-fail-seed", type=int, default=1, metavar="SEED",
                     help="random seed of the power-fail campaign's cut instants (default 1)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RIG_FAULTS] = []
    config.stash[_SAFE_LOG] = []
    install_log_redaction()
    install_record_redaction()  # also reaches pytest's own capture handlers, added per test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests (long campaigns) run only when the -m expression names them."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
        config.hook.pytest_deselected(items=slow)


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall_record_redaction()


def choose_rig(rigs: list[str], worker: str | None) -> str:
    """The rig this process uses: the only one, or the xdist worker's own (gw0 takes the first)."""
    if len(rigs) == 1 or worker is None:
        return rigs[0]
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if index >= len(rigs):
        raise pytest.UsageError(f"pytest-xdist worker {worker} has no rig: {len(rigs)} --rig options for "
                                f"more workers; run with -n {len(rigs)}")
    return rigs[index]


def _rig_ref(config: pytest.Config) -> str:
    rigs = config.getoption("--rig") or [config.getini("hil_rig") or DEFAULT_RIG]
    ref = choose_rig(rigs, os.environ.get("PYTEST_XDIST_WORKER"))
    path = Path(ref)
    if not path.is_absolute() and (config.rootpath / path).exists():
        return str(config.rootpath / path)
    return ref


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[RigSession]:
    """The live rig for this session (brought up once, locked, left safe at the end)."""
    config = request.config
    try:
        session = RigSession(_rig_ref(config), wait_s=config.getoption("--rig-wait"),
                             reports_dir=config.rootpath / "reports",
                             overrides=config.getoption("--rig-set")).start()
    except RigFileError as exc:
        raise RigFault(f"bad rig file: {exc}") from None
    config.stash[_SESSION_KEY] = session
    try:
        _flash_at_start(session, config.getoption("--firmware"))
        yield session
    finally:
        del config.stash[_SESSION_KEY]
        session.close()
        config.stash[_SAFE_LOG] = list(session.safe.history)
        config.stash[_DIAGNOSTICS] = list(session.diagnostics)


def _need(call: Any) -> Any:
    try:
        return call()
    except MissingPart as exc:
        pytest.skip(str(exc))


@pytest.fixture
def psu(rig: RigSession) -> Any:
    """The bench supply feeding the DUT (drivers.psu.PowerSupply)."""
    return _need(rig.psu)


@pytest.fixture
def power(psu: Any) -> Any:
    """Power actions in rig time: ``power_cycle``, ``brown_out``, ``cut_after`` (the supply driver)."""
    return psu


@pytest.fixture
def network(rig: RigSession) -> Any:
    """The reference network server, with the DUT registered, behind the rig's gateway."""
    return _need(rig.network)


@pytest.fixture
def meter(rig: RigSession) -> Any:
    """The feedback meter on the relay output (``ac_voltage()``, ``mains_present()``)."""
    return _need(rig.meter)


@pytest.fixture
def dut(rig: RigSession, psu: Any) -> Any:
    """The DUT's console, with the DUT powered and its console answering."""
    from hil.clock import Deadline

    psu.output(True)
    console = rig.console()
    console.wait_ready(Deadline.after(rig.clock, 30.0))
    return console


@pytest.fixture
def relay(rig: RigSession) -> Any:
    """The relay controller (relay protocol v1 over the network); the relay's mains feed, when the
    rig switches it, is on at its nominal voltage."""
    controller = _need(rig.relay)
    rig.mains_on()
    return controller


@pytest.fixture
def mains(rig: RigSession) -> Iterator[Any]:
    """The relay's switchable mains feed (drivers.psu.PowerSupply on an AC source), on at the rig
    file's voltage; a test may switch it off, it is back on after the test."""
    source = _need(rig.mains)
    yield source
    rig.mains_on()


@pytest.fixture
def swd(rig: RigSession) -> Any:
    """The DUT's debug probe (drivers.swd.SwdProbe), with the DUT powered: a probe reaches only a powered target."""
    if rig.rig.dut.swd is None:
        pytest.skip("this test needs an SWD probe: the rig file has no 'dut.swd'")
    from drivers.swd import load_pyocd

    load_pyocd()  # its import stalls the interpreter: before the DUT is powered and on the air
    if rig.rig.psu is not None:
        rig.psu().output(True)
    return rig.swd()


def _flash_at_start(session: RigSession, option: str | None) -> None:
    """``--firmware PATH``, else the rig file's ``dut.swd.firmware``: flashed before the first test
    (``session.firmware_info`` records it for the report), then the rig is left safe again."""
    swd = session.rig.dut.swd
    image = Path(option) if option else (swd.firmware if swd is not None else None)
    if image is None:
        return
    if swd is None:
        raise RigFault(f"--firmware {image}: the rig file has no dut.swd (no probe to flash it through)")
    session.flash_firmware(image)
    session.make_safe("after flashing the firmware", between_tests=True)


@pytest.fixture(autouse=True)
def _leave_rig_safe(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the rig (asked for it, or a part of it): relay off, supply off
    (the relay's mains feed stays as the test's fixtures left it: on)."""
    yield
    session = request.config.stash.get(_SESSION_KEY, None)
    if session is not None and "rig" in request.fixturenames:
        failures = session.make_safe(f"after {request.node.nodeid}", between_tests=True)
        for failure in failures:
            logging.getLogger(__name__).error("rig not left safe after %s: %s", request.node.nodeid, failure)


# -- rig faults are errors, not failures ------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(RigFault):
        report.user_properties.append(("rig_fault", str(call.excinfo.value)))
        if report.when == "call":
            report.rig_fault = True  # type: ignore[attr-defined]
        item.config.stash[_RIG_FAULTS].append((item.nodeid, report.when, str(call.excinfo.value)))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if getattr(report, "rig_fault", False) and report.failed:
        return "error", "E", ("ERROR", {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    history = config.stash.get(_SAFE_LOG, [])
    if history:
        last = [action for reason, action in history if reason == history[-1][0]]
        terminalreporter.line(f"rig left safe ({history[-1][0]}): {', '.join(last)}")
    for line in config.stash.get(_DIAGNOSTICS, []):
        terminalreporter.line(line)
    faults = config.stash.get(_RIG_FAULTS, [])
    if faults:
        terminalreporter.section("rig faults (the bench, not the DUT)")
        for nodeid, when, message in faults:
            terminalreporter.line(f"{nodeid} [{when}]: {message}")
