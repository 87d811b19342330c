"""``python -m hil rig list`` and ``python -m hil rig check``: which rigs there are, and is one ready.

``rig list`` prints every rig file of a folder (default ``rigs/``, not its ``profiles/``) with its
parts; a file that does not load is listed with its first problem instead.

``rig check`` is a preflight: it brings the rig up through :class:`~hil.plugin.session.RigSession`
(load, lock, providers) and tries each part present, printing one row per part as it completes::

    part         | status | detail
    rig file     | OK     | rigs/sim.yaml (sim, virtual)
    psu          | OK     | Keysight Technologies,E36313A,...; output off; ...

Rows, in order: rig file, lock, bring-up (providers such as the virtual rig), psu (``*IDN?`` and
output state), dut.console (powered through the psu first, then its probe answered and its
identity), gateway (transport started, broker reached, the gateway seen), feedback (one AC
reading), dut.swd (the probe opened without halting the DUT, the target type, its core and state,
the MCU's unique ID), and safe state (what closing the session did). A part the rig lacks is shown
as ``-`` (not in the rig file), the console and the probe as ``SKIP`` when the psu failed; the
exit code is 1 if any row is ``FAIL``. Every wait is in rig time with a
deadline, a rig fault or a bad rig file is a FAIL row with its message (never a traceback), and
the rig is left safe (supply off) at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from hil.clock import Clock, Deadline
from hil.faults import RigBusy
from hil.rigfile import Rig, RigFileError, load_rig, redact, resolve_rig_path
from hil.rigfile.loader import REPO_ROOT, RIGS_DIR

__all__ = [
    "CONSOLE_READY_S",
    "DEFAULT_RIG",
    "GATEWAY_ONLINE_S",
    "UDP_KEEPALIVE_S",
    "Row",
    "check_rig",
    "describe_parts",
    "list_rigs",
    "log_to_stderr",
    "one_line",
    "register",
    "rig_ref",
    "safe_state_failures",
    "sigterm_as_interrupt",
]

DEFAULT_RIG = "rigs/sim.yaml"
CONSOLE_READY_S = 30.0  # rig seconds for the powered DUT to answer its probe (as the plugin's dut fixture)
GATEWAY_ONLINE_S = 10.0  # rig seconds for a ChirpStack bridge's state/conn ONLINE (it is retained: at once)
UDP_KEEPALIVE_S = 10.0  # the Semtech packet forwarder's default keepalive_interval: a PULL_DATA this often
UDP_MARGIN_S = 5.0
POLL_S = 0.25  # rig seconds between looks at a transport's gateway table (it has no notification)

OK, FAIL, SKIP, ABSENT = "OK", "FAIL", "SKIP", "-"
NOT_IN_RIG = "not in the rig file"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("rig", help="list the rig files, or check that a rig is ready")
    sub = p.add_subparsers(dest="rig_command", required=True, parser_class=type(p))
    ls = sub.add_parser("list", help="every rig file with its parts")
    ls.add_argument("--dir", type=Path, default=None, help=f"folder of rig files (default {RIGS_DIR})")
    ls.set_defaults(run=run_list)
    ck = sub.add_parser("check", help="preflight of every part of a rig; exit 1 on any FAIL")
    ck.add_argument("--rig", default=DEFAULT_RIG, help=f"rig file or name (default {DEFAULT_RIG})")
    ck.add_argument("--rig-wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for a rig another session holds (default: fail at once)")
    ck.add_argument("--reports-dir", type=Path, default=Path("reports"),
                    help="where the console transcript goes (default ./reports)")
    ck.set_defaults(run=run_check)


# -- shared with the console command ---------------------------------------------------------------

def rig_ref(text: str) -> str:
    """A rig name or path as given on the command line; a relative path that is not in the working
    directory but is in the repository (``rigs/sim.yaml`` from elsewhere) is taken from there."""
    path = resolve_rig_path(text)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return str(REPO_ROOT / path)
    return text


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the command like Ctrl-C (KeyboardInterrupt), so the rig is closed and left safe
    and a virtual rig's processes are stopped rather than orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line(exc: BaseException) -> str:
    """An error as one line, secrets masked: its first line, and how many more problems it has."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    more = f" (+{len(lines) - 1} more)" if isinstance(exc, RigFileError) and len(lines) > 1 else ""
    first = lines[0] if isinstance(exc, (RigFileError, AssertionError)) else "; ".join(lines)
    evidence = getattr(exc, "log_path", None)  # a console error's full transcript
    if evidence and str(evidence) not in first:
        more += f" (transcript {evidence})"
    return redact(first + more)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- rig list ----------------------------------------------------------------------------------------

def describe_parts(rig: Rig) -> list[str]:
    """The parts a rig has, each with what tells it apart (dialect, transport, kind...)."""
    d = rig.dut
    parts = [f"dut.console ({d.console.dialect})"]
    if d.swd is not None:
        parts.append(f"dut.swd ({d.swd.target})")
    if d.lorawan is not None:
        lw = d.lorawan
        parts.append(f"dut.lorawan ({lw.version} {lw.region} {lw.activation.upper()} class {lw.device_class})")
    if d.relay is not None:
        parts.append(f"dut.relay (fport {d.relay.fport})")
    if rig.gateway is not None:
        parts.append(f"gateway ({rig.gateway.transport})")
    if rig.psu is not None:
        parts.append(f"psu ({rig.psu.dialect})")
    if rig.feedback is not None:
        f = rig.feedback
        parts.append(f"feedback ({f.kind} {f.dialect})" if f.kind == "dmm" else f"feedback ({f.kind})")
    if rig.mains is not None:
        parts.append(f"mains ({rig.mains.dialect} {rig.mains.voltage:g} V)")
    return parts


def list_rigs(folder: Path) -> list[tuple[str, str, str, str]]:
    """(name, file, ``virtual``/``real``/``ERROR``, parts or the error) for each rig file in ``folder``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    rows = []
    for path in files:
        try:
            rig = load_rig(path)
        except RigFileError as exc:
            rows.append((path.stem, _shown(path), "ERROR", one_line(exc)))
        except Exception as exc:  # a loader bug must not hide the other rigs
            rows.append((path.stem, _shown(path), "ERROR", f"{type(exc).__name__}: {one_line(exc)}"))
        else:
            rows.append((rig.name, _shown(path), "virtual" if rig.is_virtual else "real", ", ".join(describe_parts(rig))))
    return rows


def run_list(args: argparse.Namespace) -> int:
    from hil.cli import UsageError

    folder = args.dir if args.dir is not None else RIGS_DIR
    if not folder.is_dir():
        raise UsageError(f"rig list: {folder} is not a folder")
    rows = list_rigs(folder)
    if not rows:
        print(f"no rig files (*.yaml) in {folder}")
        return 0
    header = ("name", "file", "kind", "parts")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    return 0


# -- rig check ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of the preflight table."""

    part: str
    status: str  # OK, FAIL, SKIP, or "-" (the rig has no such part)
    detail: str

    def __str__(self) -> str:
        return f"{self.part:<12} | {self.status:<6} | {redact(self.detail)}"


class _Check:
    """The preflight of one rig; each step appends (and prints) its row."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.rows: list[Row] = []

    def row(self, part: str, status: str, detail: str) -> Row:
        row = Row(part, status, detail)
        self.rows.append(row)
        print(row, file=self.out, flush=True)
        return row

    def attempt(self, part: str, action: Callable[[], str], where: str = "") -> bool:
        """Run ``action`` (it returns the OK detail); any error is a FAIL row naming ``where``."""
        try:
            detail = action()
        except Exception as exc:
            message = one_line(exc)
            prefix = f"{where}: " if where and where not in message else ""
            self.row(part, FAIL, prefix + message)
            return False
        self.row(part, OK, detail)
        return True


def check_rig(ref: str, *, wait_s: float = 0.0, reports_dir: Path = Path("reports"),
              out: TextIO | None = None) -> list[Row]:
    """Preflight of every part of the rig ``ref``; prints the table to ``out`` (default stdout) and
    returns its rows."""
    from hil.plugin.session import RigSession

    out = out if out is not None else sys.stdout

    check = _Check(out)
    print(f"{'part':<12} | {'status':<6} | detail", file=out, flush=True)
    try:
        session = RigSession(ref, wait_s=wait_s, reports_dir=reports_dir)
    except RigFileError as exc:
        check.row("rig file", FAIL, one_line(exc))
        return check.rows
    except Exception as exc:  # e.g. the lock folder cannot be created
        check.row("rig session", FAIL, f"{type(exc).__name__}: {one_line(exc)}")
        return check.rows
    rig_file = session.rig_file
    check.row("rig file", OK, f"{_shown(rig_file.path) if rig_file.path else ref} "
                              f"({rig_file.name}, {'virtual' if rig_file.is_virtual else 'real'})")
    try:
        session.start()
    except RigBusy as exc:
        check.row("lock", FAIL, one_line(exc))
        return check.rows
    except Exception as exc:  # lock taken (start frees it again), bring-up failed
        check.row("lock", OK, f"taken ({session.lock.lock_path})")
        check.row("bring-up", FAIL, one_line(exc))
        return check.rows
    try:
        stale = session.lock.took_over
        check.row("lock", OK, f"taken ({session.lock.lock_path})"
                              + (f"; took over a stale lock of {stale.describe()}" if stale else ""))
        up = session.up
        started = ", ".join(up.providers) if up is not None and up.providers else ""
        check.row("bring-up", OK, f"{started} started, time scale {session.rig.time_scale:g}" if started
                  else "nothing to start (a real bench)")
        _check_parts(session, check)
    finally:
        session.close()  # safe state first (supply off), then parts and providers, lock freed
    failures = safe_state_failures(session)
    check.row("safe state", FAIL if failures else OK,
              "; ".join(failures) if failures else
              "supply output off" if rig_file.psu is not None else "nothing to switch off (no psu)")
    return check.rows


def safe_state_failures(session: Any) -> list[str]:
    """What failed when :meth:`RigSession.close` made the rig safe (its safe-state history)."""
    return [text for reason, text in session.safe.history if reason == "session end" and " failed: " in text]


def _check_parts(session: Any, check: _Check) -> None:
    rig: Rig = session.rig
    clock: Clock = session.clock
    psu_ok: bool | None = None
    if rig.psu is None:
        check.row("psu", ABSENT, NOT_IN_RIG)
    else:
        psu_ok = check.attempt("psu", lambda: _psu(session), where=rig.psu.resource)

    if psu_ok is False:
        check.row("dut.console", SKIP, "the DUT cannot be powered (psu FAIL)")
    else:
        check.attempt("dut.console", lambda: _console(session, clock, powered=psu_ok is True), where=rig.dut.console.port)

    if rig.gateway is None:
        check.row("gateway", ABSENT, NOT_IN_RIG)
    elif rig.dut.lorawan is None:
        check.row("gateway", SKIP, "the reference network server needs the DUT's identity: no dut.lorawan")
    else:
        check.attempt("gateway", lambda: _gateway(session, clock))

    if rig.feedback is None:
        check.row("feedback", ABSENT, NOT_IN_RIG)
    else:
        f = rig.feedback
        check.attempt("feedback", lambda: _feedback(session), where=f.resource if f.kind == "dmm" else f.broker)

    if rig.mains is None:
        check.row("mains", ABSENT, NOT_IN_RIG)
    else:
        check.attempt("mains", lambda: _mains(session), where=rig.mains.resource)

    swd = rig.dut.swd
    if swd is None:
        check.row("dut.swd", ABSENT, NOT_IN_RIG)
    elif psu_ok is False:
        check.row("dut.swd", SKIP, "the DUT cannot be powered (psu FAIL)")
    else:
        check.attempt("dut.swd", lambda: _swd(session), where=f"probe {swd.probe_uid} ({swd.target})")


def _psu(session: Any) -> str:
    p = session.rig.psu
    supply = session.psu()  # opens it and sets voltage, current limit, OVP/OCP from the rig file
    idn = supply.identify()
    state = "on" if supply.output_is_on() else "off"
    return f"{idn}; output {state}; set {p.voltage:g} V, {p.current_limit:g} A limit (channel {p.channel}, {p.resource})"


def _console(session: Any, clock: Clock, *, powered: bool) -> str:
    rig: Rig = session.rig
    if powered:
        session.psu().output(True)
        power = f"DUT powered through the psu ({rig.psu.voltage:g} V)"  # type: ignore[union-attr]
    else:
        power = "no psu in the rig: the DUT is assumed powered"
    try:
        console = session.console()
        console.wait_ready(Deadline.after(clock, CONSOLE_READY_S))
        detail = f"answers {console.profile.probe.send!r} on {rig.dut.console.port}"
        if console.profile.identity:
            identity = console.identity(Deadline.after(clock, CONSOLE_READY_S))
            shown = [f"{k} {identity[k]}" for k in ("version", "dev_eui") if k in identity]
            detail += "".join(f", {item}" for item in shown)
            lw = rig.dut.lorawan
            if lw is not None and "dev_eui" in identity and identity["dev_eui"] != str(lw.dev_eui):
                raise AssertionError(f"{detail}, but the rig file says dev_eui {lw.dev_eui}")
    except Exception as exc:
        raise _PartFailed(f"{power}; {one_line(exc)}") from None
    return f"{power}; {detail}"


class _PartFailed(Exception):
    """A check's failure, its message already one line."""


def _gateway(session: Any, clock: Clock) -> str:
    g = session.rig.gateway
    transport = session.network().transport  # starts the transport: a broker that refuses us fails here
    if g.transport == "chirpstack-mqtt":
        broker = f"broker {g.host}:{g.port} connected"
        wanted = g.gateway_id.lower() if g.gateway_id else None

        def online() -> list[str]:
            states = transport.gateway_states
            return [gw for gw, state in states.items() if state == "ONLINE" and wanted in (None, gw)]

        found = _poll(clock, online, GATEWAY_ONLINE_S)
        if not found:
            seen = ", ".join(f"{gw} {state}" for gw, state in transport.gateway_states.items()) or "none"
            raise AssertionError(f"{broker}, but gateway {wanted or '(any)'} did not report state/conn ONLINE "
                                 f"within {GATEWAY_ONLINE_S:g} rig s (states seen: {seen})")
        return f"{broker}; gateway {', '.join(found)} ONLINE (topic prefix {transport.topic_prefix})"
    host, port = transport.address
    window = UDP_KEEPALIVE_S + UDP_MARGIN_S
    found = _poll(clock, lambda: sorted(transport.gateways), window)
    if not found:
        raise AssertionError(f"listening on UDP {host}:{port}, but no gateway sent PULL_DATA within {window:g} rig s "
                             "(check the packet forwarder's server_address and serv_port_up/down)")
    pulled = ", ".join(f"{eui} from {a[0]}:{a[1]}" for eui, a in sorted(transport.gateways.items()))
    return f"listening on UDP {host}:{port}; PULL_DATA from gateway {pulled}"


def _poll(clock: Clock, look: Callable[[], list[str]], within_s: float) -> list[str]:
    """``look()`` until it finds something or ``within_s`` rig seconds pass (the tables it reads
    have no change notification, so it looks every :data:`POLL_S` rig seconds)."""
    deadline = Deadline.after(clock, within_s)
    never = threading.Event()
    while True:
        found = look()
        if found or deadline.expired:
            return found
        clock.wait(never, min(POLL_S, deadline.remaining))


def _swd(session: Any) -> str:
    rig: Rig = session.rig
    if rig.psu is not None:
        session.psu().output(True)  # a probe reaches only a powered target
    probe = session.swd()  # attaches: the DUT is neither halted nor reset
    info = probe.info()
    try:
        uid = f"; MCU unique ID {probe.unique_id().hex()}"
    except ValueError:  # a target whose unique-ID location is not known: not a failure of the probe
        uid = ""
    return f"{info['probe']}; target {info['target']}, {info['core']} {info['state']}{uid}"


def _mains(session: Any) -> str:
    m = session.rig.mains
    source = session.mains()  # on at the rig file's voltage, as a relay test finds it
    idn = source.identify()
    volts = source.measure_voltage()
    return f"{idn}; output on, {volts:.1f} V RMS measured (set {m.voltage:g} V)"


def _feedback(session: Any) -> str:
    f = session.rig.feedback
    meter = session.meter()
    volts = meter.ac_voltage()
    verdict = "mains present" if volts >= f.mains_threshold_v else "no mains"
    idn = getattr(meter, "idn", None)
    source = f"{idn}; " if idn else f"smart meter {f.topic_prefix} on {f.broker}; " if f.kind != "dmm" else ""
    return f"{source}{volts:.1f} V AC at the relay output ({verdict}, threshold {f.mains_threshold_v:g} V)"


def run_check(args: argparse.Namespace) -> int:
    log_to_stderr()
    with sigterm_as_interrupt():
        try:
            rows = check_rig(rig_ref(args.rig), wait_s=args.rig_wait, reports_dir=args.reports_dir)
        except KeyboardInterrupt:
            print("rig check interrupted; the rig was left safe", file=sys.stderr)
            return 130
    failed = [r.part for r in rows if r.status == FAIL]
    print(f"FAIL: {', '.join(failed)}" if failed else "all parts OK")
    return 1 if failed else 0


def log_to_stderr() -> None:
    """Warnings and errors of the drivers on stderr, one line each, secrets masked."""
    import logging

    from hil.rigfile import install_log_redaction

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
