"""The DUT console, high level: identity, keys, join, uplinks, downlinks and resets, by profile.

::

    dut = DutConsole(rig.dut.console.port, "rak3172", clock, transcript_path=report_dir / "console.log")
    dut.open(Deadline.after(clock, 10))
    dut.wait_ready(Deadline.after(clock, 10))
    dut.set_app_key(key)                               # the transcript shows AT+APPKEY=****
    assert dut.join(Deadline.after(clock, 120)).joined
    result = dut.send_uplink(2, b"\\x01", confirmed=True, deadline=Deadline.after(clock, 30))

Everything the module says is in its profile (:mod:`drivers.console.dialect`); this class only
knows the order of things. Asynchronous downlink reports are parsed on the reader thread
whenever they come and kept (:meth:`DutConsole.downlinks`).

Keys never reach the transcript, its file or an error message: every line is masked by the
profile's ``secrets`` patterns, by every key and relay passphrase this console has sent, and
finally by the ``redact`` function given (the rig's redactor).

One command at a time (a lock); one reader thread, joined by :meth:`DutConsole.close`.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from drivers.console import ConsoleCommandError, ConsoleTimeout, ConsoleUnsupported
from drivers.console.dialect import Profile, Setting, Step, load_profile, render
from drivers.console.expect import ExpectEngine, Hit, Pattern, Redactor, RxLine, Transcript, compile_pattern
from drivers.console.transport import SerialTransport
from hil.clock import Clock, Deadline
from hil.lorawan.crypto import AESKey
from hil.lorawan.types import EUI64
from hil.report.steps import rig_step_method

log = logging.getLogger(__name__)

MASK = "****"
RELAY_QUIET_S = 0.2  # rig seconds of silence that end a relay command's reply
DEFAULT_REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports" / "console"
_SEQ = itertools.count(1)
_NOT_HEX = re.compile(r"[^0-9A-Fa-f]")


@dataclass(frozen=True, slots=True)
class Downlink:
    """A downlink the module reported: FPort, payload, receive slot (``1``, ``2``, ``C``...),
    RSSI (dBm) and SNR (dB) where the module prints them, rig time of the report."""

    port: int
    payload: bytes
    slot: str | None
    rssi: float | None
    snr: float | None
    time: float


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The module's join report: joined or failed, the line it printed, when, and a reason if any."""

    joined: bool
    line: str
    time: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """How an uplink ended. ``status``: ``sent`` (unconfirmed, done), ``acked``, ``not_acked``
    (confirmed), ``failed`` (the module reported a failed transmission). ``downlinks``: those
    reported while it was going on."""

    port: int
    confirmed: bool
    status: Literal["sent", "acked", "not_acked", "failed"]
    line: str | None
    time: float
    downlinks: tuple[Downlink, ...] = ()

    @property
    def acked(self) -> bool | None:
        """For a confirmed uplink, whether the network acknowledged it; None for unconfirmed."""
        return self.status == "acked" if self.confirmed else None


@dataclass(frozen=True, slots=True)
class FrameCounters:
    up: int
    down: int


def default_transcript_path(dialect: str, clock: Clock) -> Path:
    """``reports/console/<dialect>-<date>-<time>-<pid>-<n>.log`` (unique per console)."""
    stamp = datetime.datetime.fromtimestamp(clock.unix_time()).strftime("%Y%m%d-%H%M%S")
    return DEFAULT_REPORTS_DIR / f"{dialect}-{stamp}-{os.getpid()}-{next(_SEQ)}.log"


def _secret_pattern(raw: bytes) -> re.Pattern[str]:
    """Matches ``raw`` written in hex in any case, with or without separators between bytes."""
    return re.compile(r"[\s:\-]?".join(f"{b:02x}" for b in raw), re.IGNORECASE)


def _mask_group(pattern: re.Pattern[str], text: str) -> str:
    out, pos = [], 0
    for match in pattern.finditer(text):
        start, end = match.span("secret")
        if start < 0 or start < pos:
            continue
        out += [text[pos:start], MASK]
        pos = end
    return "".join(out) + text[pos:] if out else text


def _format_bytes(raw: bytes, style: str) -> str:
    if style == "colon":
        return ":".join(f"{b:02X}" for b in raw)
    return raw.hex().upper()


class DutConsole:
    """A LoRaWAN module's console, driven through its AT dialect profile.

    ``port_url``: anything pyserial opens (device path, ``/dev/serial/by-id/...``, ``socket://``,
    ``rfc2217://``). ``dialect_name``: a profile in ``profiles_dir`` (default ``rigs/profiles/at``).
    ``baud``: default the profile's. ``transcript_path``: default under ``reports/console/``.
    ``redact``: applied to every transcript line after the console's own key masking.
    """

    def __init__(
        self,
        port_url: str,
        dialect_name: str,
        clock: Clock,
        *,
        baud: int | None = None,
        transcript_path: str | Path | None = None,
        redact: Redactor | None = None,
        profiles_dir: str | Path | None = None,
    ) -> None:
        self.profile: Profile = load_profile(dialect_name, profiles_dir)
        self.port_url = port_url
        self.clock = clock
        self.baud = baud or self.profile.baud
        self._user_redact = redact
        self._secret_groups = [re.compile(p) for p in (*self.profile.secrets, self.profile.relay.secret)]
        self._secret_values: list[re.Pattern[str]] = []
        path = Path(transcript_path) if transcript_path is not None else default_transcript_path(self.profile.name, clock)
        self.transcript = Transcript(path, self._redact)
        self.transport = SerialTransport(port_url, self.baud, clock)
        self.engine = ExpectEngine(
            self.transport, clock, self.transcript, line_ending=self.profile.line_ending,
            name=f"{self.profile.name} console {port_url}",
        )
        self.engine.add_listener(self._on_line)
        self._ok = re.compile(self.profile.ok)
        self._errors = [re.compile(p) for p in self.profile.error]
        self._lock = threading.RLock()
        self._downlinks: list[tuple[int, Downlink]] = []  # (line index of the report, downlink)
        self._downlinks_lock = threading.Lock()
        self._last_report_line = -2
        self._activation = "otaa"

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def is_open(self) -> bool:
        return self.transport.is_open and self.engine.running

    def open(self, deadline: Deadline | None = None) -> None:
        """Open the port (waiting for it until ``deadline`` if given) and start reading.

        ConsolePortError (a rig fault) if it cannot be opened in time.
        """
        with self._lock:
            if self.is_open:
                return
            self.transport.open(deadline)
            self.transcript.note(self.clock.now(), f"opened {self.port_url} at {self.baud} baud "
                                                   f"({self.profile.name} dialect, {self.transport.attempts} attempt(s))")
            self.engine.start()

    def close(self) -> None:
        """Stop the reader thread, close the port and the transcript file. Idempotent."""
        with self._lock:
            was_open = self.transport.is_open
            self.engine.stop()
            self.transport.close()
            if was_open:
                self.transcript.note(self.clock.now(), f"closed {self.port_url}")
            self.transcript.close()

    def reopen(self, deadline: Deadline) -> None:
        """Close and open again, waiting for the port (after a power cycle re-enumerated it)."""
        with self._lock:
            self.engine.stop()
            self.transport.close()
            self.open(deadline)

    def __enter__(self) -> "DutConsole":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DutConsole({self.port_url!r}, {self.profile.name!r}, {'open' if self.is_open else 'closed'})"

    # -- readiness, identity, settings --------------------------------------------------------

    def wait_ready(self, deadline: Deadline) -> None:
        """Send the dialect's probe (``AT``) every ``probe_interval_s`` until it is answered."""
        probe = self.profile.probe
        probes = 0
        last: AssertionError | None = None
        while True:
            probes += 1
            attempt = Deadline(self.clock, min(deadline.at, self.clock.now() + self.profile.probe_interval_s))
            try:
                self._run(probe, {}, attempt)
                return
            except ConsoleTimeout as exc:  # dead or booting: ask again
                last = exc
            except ConsoleCommandError as exc:  # busy: ask again, one probe per interval
                last = exc
                self.clock.sleep(attempt.remaining)
            if deadline.expired:
                break
        awaited = probe.reply or self.profile.ok
        raise self.engine.timeout_error(f"/{awaited}/ in reply to the probe {probe.send!r} ({probes} probe(s), "
                                        f"last error: {str(last).splitlines()[0] if last else 'none'})",
                                        patterns=(awaited,))

    def identity(self, deadline: Deadline | None = None) -> dict[str, str]:
        """Every identity field the profile lists (version, dev_eui, ...); EUIs as 16 lower-case hex digits."""
        out: dict[str, str] = {}
        for field, query in self.profile.identity.items():
            hits = self._run(query, {}, deadline)
            value = next(h.match.group("value") for h in hits if "value" in h.match.re.groupindex)
            if query.format != "text":
                value = _NOT_HEX.sub("", value).lower()
            out[field] = value.strip()
        return out

    def set_dev_eui(self, eui: EUI64 | int | str, deadline: Deadline | None = None) -> None:
        self._set_eui("dev_eui", eui, deadline)

    def set_join_eui(self, eui: EUI64 | int | str, deadline: Deadline | None = None) -> None:
        self._set_eui("join_eui", eui, deadline)

    def set_app_key(self, key: AESKey | bytes | str, deadline: Deadline | None = None) -> None:
        """Send the AppKey; the transcript shows ``****`` in its place."""
        self._set_key("app_key", key, deadline)

    def set_nwk_key(self, key: AESKey | bytes | str, deadline: Deadline | None = None) -> None:
        """Send the NwkKey (LoRaWAN 1.1); the transcript shows ``****`` in its place."""
        self._set_key("nwk_key", key, deadline)

    def set_activation(self, mode: Literal["otaa", "abp"], deadline: Deadline | None = None) -> None:
        """OTAA or ABP: sent at once, or used by the next :meth:`join` on modules that take it there."""
        setting = self._require(self.profile.activation, "activation", "activation mode setting")
        value = self._mapped(setting, "activation", mode)
        if setting.send is not None:
            self._run(setting.step(), {"value": value}, deadline)
        self._activation = mode

    def set_class(self, device_class: Literal["A", "B", "C"], deadline: Deadline | None = None) -> None:
        setting = self._require(self.profile.device_class, "device_class", "device class setting")
        self._run(setting.step(), {"value": self._mapped(setting, "device_class", device_class.upper())}, deadline)

    # -- LoRaWAN -------------------------------------------------------------------------------

    @rig_step_method("dut: join", "deadline")
    def join(self, deadline: Deadline) -> JoinResult:
        """Start a join and wait for the module's report: joined, or failed (after its attempts)."""
        spec = self._require(self.profile.join, "join", "join command")
        joined, failed = re.compile(spec.joined), re.compile(spec.failed)
        activation = self._activation
        if self.profile.activation is not None and self.profile.activation.values:
            activation = self.profile.activation.values.get(activation, activation)
        with self._lock:
            command = render(spec.command.send, {"activation": activation})
            hits = self._run(spec.command, {"activation": activation}, self._command_deadline(deadline))
            # a module may answer the command with the result itself (E5: "Joined already")
            hit = self._match_line([joined, failed], hits[-1].line) if hits else None
            if hit is None:
                hit = self._expect([joined, failed], deadline, command=command,
                                   what=f"the join result /{spec.joined}/ or /{spec.failed}/")
        reason = hit.match.groupdict().get("reason")
        return JoinResult(hit.index == 0, hit.line.text, hit.line.time, reason)

    def join_status(self, deadline: Deadline | None = None) -> bool:
        """Whether the module says it has joined (modules with a status query only)."""
        spec = self._require(self.profile.join_status, "join_status", "join status query")
        hits = self._run(spec.command, {}, deadline)
        value = next(h.match.group("value") for h in hits if "value" in h.match.re.groupindex)
        return re.fullmatch(spec.joined, value.strip()) is not None

    @rig_step_method("dut: uplink on port {port}", "payload", "confirmed", "deadline")
    def send_uplink(self, port: int, payload: bytes, confirmed: bool, deadline: Deadline) -> SendResult:
        """Send ``payload`` on ``port`` and wait until the module reports the uplink over."""
        spec = self._require(self.profile.send, "send", "uplink command")
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        values = {"port": int(port), "hex": bytes(payload).hex().upper(), "confirmed": int(bool(confirmed)),
                  "length": len(payload)}
        outcomes: list[tuple[str, str]] = []
        if confirmed:
            outcomes.append((spec.confirmed_ok, "acked"))
            if spec.confirmed_failed is not None:
                outcomes.append((spec.confirmed_failed, "not_acked"))
        else:
            if spec.tx_done is not None:
                outcomes.append((spec.tx_done, "sent"))
            if spec.tx_failed is not None:
                outcomes.append((spec.tx_failed, "failed"))
        patterns = [re.compile(p) for p, _ in outcomes]
        with self._lock:
            first_line = self.engine.mark()
            hits: list[Hit] = []
            command = ""
            for step in spec.confirmed if confirmed else spec.unconfirmed:
                command = render(step.send, values)
                hits = self._run(step, values, self._command_deadline(deadline))
            last = hits[-1] if hits else None
            status: str = "sent"
            line: RxLine | None = last.line if last is not None else None
            if patterns:
                hit = self._match_line(patterns, last.line) if last is not None else None
                if hit is None:
                    try:
                        hit = self._expect(patterns, deadline, command=command,
                                           what="the end of the uplink: " + " or ".join(f"/{p}/" for p, _ in outcomes))
                    except ConsoleTimeout:
                        if not (confirmed and spec.confirmed_failed is None):
                            raise
                        hit = None  # the module prints nothing without an ack
                status = outcomes[hit.index][1] if hit is not None else "not_acked"
                line = hit.line if hit is not None else None
            if spec.end is not None and line is not None and not re.search(spec.end, line.text):
                # downlinks are reported inside the transaction: wait for its last line
                self._expect([re.compile(spec.end)], deadline, command=command,
                             what=f"the end of the uplink transaction /{spec.end}/")
        with self._downlinks_lock:
            during = tuple(d for index, d in self._downlinks if index >= first_line)
        return SendResult(int(port), bool(confirmed), status, line.text if line else None,  # type: ignore[arg-type]
                          line.time if line else self.clock.now(), during)

    def downlinks(self) -> list[Downlink]:
        """Every downlink the module has reported since the console opened (oldest first)."""
        with self._downlinks_lock:
            return [d for _, d in self._downlinks]

    def clear_downlinks(self) -> None:
        with self._downlinks_lock:
            self._downlinks.clear()

    def read_downlink(self, deadline: Deadline | None = None) -> tuple[int, bytes] | None:
        """The module's last received downlink as (port, payload) from its query; None if none."""
        step = self._require(self.profile.read_downlink, "read_downlink", "query for the last downlink")
        hits = self._run(step, {}, deadline)
        match = next(h.match for h in hits if "port" in h.match.re.groupindex)
        port = int(match.group("port"))
        return None if port == 0 else (port, bytes.fromhex(_NOT_HEX.sub("", match.group("payload"))))

    def frame_counters(self, deadline: Deadline | None = None) -> FrameCounters:
        """Uplink and downlink frame counters (modules that have a query for them)."""
        steps = self._require(self.profile.frame_counters, "frame_counters", "frame counter query")
        found: dict[str, int] = {}
        for step in steps:
            for hit in self._run(step, {}, deadline):
                found.update({k: int(v) for k, v in hit.match.groupdict().items() if k in ("up", "down") and v})
        return FrameCounters(found["up"], found["down"])

    # -- resets --------------------------------------------------------------------------------

    @rig_step_method("dut: reset", "deadline")
    def reset(self, deadline: Deadline) -> None:
        """Reboot the module (``ATZ``...) and wait until it answers the probe again."""
        self._reboot(self._require(self.profile.reset, "reset", "reset command"), deadline)

    def factory_reset(self, deadline: Deadline) -> None:
        """Restore the module's factory settings and wait until it answers again."""
        self._reboot(self._require(self.profile.factory_reset, "factory_reset", "factory reset command"), deadline)

    def save(self, deadline: Deadline | None = None) -> None:
        """Persist the settings (modules that need it, e.g. RN2483 ``mac save``)."""
        self._run(self._require(self.profile.save, "save", "save command"), {}, deadline)

    # -- raw -----------------------------------------------------------------------------------

    def command(self, text: str, expect: Pattern | None = None, deadline: Deadline | None = None) -> re.Match[str]:
        """Send ``text``; wait for ``expect`` (default: the profile's ok line) or an error reply."""
        pattern = compile_pattern(expect) if expect is not None else self._ok
        with self._lock:
            self.engine.flush()
            self.engine.send_line(text)
            what = f"/{pattern.pattern}/ in reply to {self.transcript.redact(text)!r}"
            return self._expect([pattern], self._command_deadline(deadline), command=text, what=what).match

    def send_line(self, text: str) -> None:
        """Send one line and wait for nothing (see :meth:`expect`)."""
        with self._lock:
            self.engine.send_line(text)

    def expect(self, pattern: Pattern, deadline: Deadline) -> re.Match[str]:
        """Wait for a line matching ``pattern`` (see :meth:`ExpectEngine.expect`)."""
        return self.engine.expect(pattern, deadline)

    def relay_command(self, line: str, deadline: Deadline | None = None) -> list[str]:
        """Send a relay application console line (seed 004: ``help``, ``set key <passphrase>``,
        ``set datarate SF9``, ``get txpower``...) and return its reply lines. The passphrase of
        ``set key`` is masked in the transcript; an ``error: ...`` reply raises ConsoleCommandError."""
        relay = self.profile.relay
        match = re.search(relay.secret, line.strip())
        if match is not None and match.group("secret"):
            self._add_secret_text(match.group("secret"))
        relay_error = re.compile(relay.error)
        with self._lock:
            self.engine.flush()
            since = self.engine.mark()
            self.engine.send_line(line)
            got = self.engine.collect(since, self._command_deadline(deadline), RELAY_QUIET_S)
        if not got:
            raise self.engine.timeout_error(f"a reply to the relay command {self.transcript.redact(line)!r}")
        for rx in got:
            for pattern in (relay_error, *self._errors):
                found = pattern.search(rx.text)
                if found is not None:
                    self._raise_command_error(line, rx.text, found)
        return [rx.text for rx in got]

    # -- internals -----------------------------------------------------------------------------

    def _require(self, spec: Any, key: str, what: str) -> Any:
        if spec is None:
            raise ConsoleUnsupported(f"{self.profile.name}: the dialect has no {what} "
                                     f"(no '{key}' in {self.profile.path})")
        return spec

    def _mapped(self, setting: Setting, key: str, word: str) -> str:
        if setting.values is None:
            return word
        if word not in setting.values:
            raise ConsoleUnsupported(f"{self.profile.name}: {key} {word!r} is not available "
                                     f"(the profile knows {', '.join(setting.values)})")
        return setting.values[word]

    def _set_eui(self, key: str, eui: EUI64 | int | str, deadline: Deadline | None) -> None:
        setting = self._require(getattr(self.profile, key), key, f"{key} setting")
        value = _format_bytes(EUI64(eui).display, setting.format)
        self._run(setting.step(), {"value": value}, deadline)

    def _set_key(self, key: str, value: AESKey | bytes | str, deadline: Deadline | None) -> None:
        setting = self._require(getattr(self.profile, key), key, f"{key} setting")
        aes = value if isinstance(value, AESKey) else AESKey(value, name=key)
        raw = aes.reveal()
        if setting.secret:
            self._add_secret_bytes(raw)
        self._run(setting.step(), {"value": _format_bytes(raw, setting.format)}, deadline)

    def _add_secret_bytes(self, raw: bytes) -> None:
        pattern = _secret_pattern(raw)
        if pattern.pattern not in {p.pattern for p in self._secret_values}:
            self._secret_values.append(pattern)

    def _add_secret_text(self, text: str) -> None:
        pattern = re.compile(re.escape(text))
        if pattern.pattern not in {p.pattern for p in self._secret_values}:
            self._secret_values.append(pattern)

    def _redact(self, text: str) -> str:
        for pattern in self._secret_groups:
            text = _mask_group(pattern, text)
        for pattern in self._secret_values:
            text = pattern.sub(MASK, text)
        return self._user_redact(text) if self._user_redact is not None else text

    def _command_deadline(self, deadline: Deadline | None) -> Deadline:
        limit = self.clock.now() + self.profile.command_timeout_s
        return Deadline(self.clock, limit if deadline is None else min(limit, deadline.at))

    def _run(self, step: Step, values: Mapping[str, object], deadline: Deadline | None) -> list[Hit]:
        """Send one step's command and wait for its reply and/or ok; returns the lines matched."""
        text = render(step.send, values)
        deadline = self._command_deadline(deadline)
        hits: list[Hit] = []
        with self._lock:
            self.engine.flush()
            self.engine.send_line(text)
            shown = self.transcript.redact(text)
            if step.reply is not None:
                hits.append(self._expect([re.compile(step.reply)], deadline, command=text,
                                         what=f"/{step.reply}/ in reply to {shown!r}"))
            if step.ok:
                hits.append(self._expect([self._ok], deadline, command=text,
                                         what=f"/{self.profile.ok}/ in reply to {shown!r}"))
        return hits

    def _expect(self, patterns: Sequence[re.Pattern[str]], deadline: Deadline, *, command: str, what: str) -> Hit:
        """The first line matching one of ``patterns`` (``Hit.index`` into them); a line matching
        an error pattern raises ConsoleCommandError. A line that is the command itself (an echo)
        is skipped."""
        errors = len(self._errors)
        while True:
            # error patterns first: "+CLASS: ERROR(-1)" is an error even if a loose reply pattern matches it
            hit = self.engine.expect_any([*self._errors, *patterns], deadline, what=what)
            if hit.line.text.strip() == command.strip():
                continue
            if hit.index < errors:
                self._raise_command_error(command, hit.line.text, hit.match)
            return Hit(hit.index - errors, hit.match, hit.line)

    def _match_line(self, patterns: Sequence[re.Pattern[str]], line: RxLine) -> Hit | None:
        for i, pattern in enumerate(patterns):
            match = pattern.search(line.text)
            if match is not None:
                return Hit(i, match, line)
        return None

    def _raise_command_error(self, command: str, reply: str, match: re.Match[str]) -> None:
        code = match.groupdict().get("code")
        shown, reply_shown = self.transcript.redact(command), self.transcript.redact(reply)
        raise ConsoleCommandError(
            f"{self.name}: {shown!r} was answered {reply_shown!r} (error code {code}); "
            f"transcript: {self.transcript.path}",
            command=shown, reply=reply_shown, code=code, log_path=str(self.transcript.path),
        )

    def _reboot(self, step: Step, deadline: Deadline) -> None:
        with self._lock:
            hits = self._run(step, {}, deadline)
            banner = self.profile.boot_banner_end
            if step.reboots:
                if banner is not None:
                    if not (hits and re.search(banner, hits[-1].line.text)):
                        self.engine.expect_any([banner], deadline, what=f"the end of the boot banner /{banner}/")
                elif self.profile.boot_time_s:
                    self.clock.sleep(min(self.profile.boot_time_s, deadline.remaining))
            self.wait_ready(deadline)

    def _on_line(self, line: RxLine) -> None:
        """Reader thread: record downlink reports (and the radio data line that follows one)."""
        spec = self.profile.downlink
        if spec is None:
            return
        match = re.search(spec.report, line.text)
        if match is not None:
            downlink = self._downlink(match, line.time)
            if downlink is not None:
                with self._downlinks_lock:
                    self._downlinks.append((line.index, downlink))
                self._last_report_line = line.index
            return
        if spec.meta is not None and line.index == self._last_report_line + 1:
            meta = re.search(spec.meta, line.text)
            if meta is not None:
                with self._downlinks_lock:
                    if self._downlinks and self._downlinks[-1][0] == self._last_report_line:
                        index, old = self._downlinks[-1]
                        self._downlinks[-1] = (index, self._with_meta(old, meta))

    def _downlink(self, match: re.Match[str], time: float) -> Downlink | None:
        fields = match.groupdict()
        try:
            payload = bytes.fromhex(re.sub(r"\s", "", fields["payload"] or ""))
            port = int(fields["port"])
        except ValueError:
            log.warning("%s: a downlink report with an unreadable port or payload", self.name)
            return None
        return Downlink(port, payload, fields.get("slot"), _number(fields.get("rssi")), _number(fields.get("snr")), time)

    @staticmethod
    def _with_meta(old: Downlink, meta: re.Match[str]) -> Downlink:
        fields = meta.groupdict()
        return Downlink(
            old.port, old.payload, fields.get("slot") or old.slot,
            _number(fields.get("rssi")) if fields.get("rssi") is not None else old.rssi,
            _number(fields.get("snr")) if fields.get("snr") is not None else old.snr, old.time,
        )


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


__all__ = ["Downlink", "DutConsole", "FrameCounters", "JoinResult", "SendResult", "default_transcript_path"]
