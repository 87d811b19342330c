"""RAK3172 with RUI3 firmware: the AT dialect (115200 8N1, status lines framed ``\\r\\n<STATUS>\\r\\n``).

Forms: ``AT+X=?`` queries (``AT+X=<val>`` then ``OK``), ``AT+X=<v>`` sets, ``AT+X?`` is help on
X, ``AT?`` the list. Asynchronous reports are ``+EVT:...`` lines. Wording and status words are
in ``rak3172.yaml``; this module is the grammar and the calls into the firmware.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict

from hil.lorawan.crypto import AESKey
from hil.lorawan.region import RegionError
from hil.lorawan.types import EUI64
from hil.sim.dut.console.dialect import (
    CRLF,
    Dialect,
    DialectData,
    firmware_region,
    load_data,
    parse_hex,
    parse_int,
    register,
)
from hil.sim.dut.interfaces import Booted, DownlinkReceived, DutEvent, FirmwareApi, Joined, JoinFailed, TxDone
from hil.sim.scheduler import Scheduler

log = logging.getLogger(__name__)


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ok: str
    error: str
    param: str
    busy: str
    not_joined: str
    not_found: str
    unsupported_band: str
    overlong: str
    not_at: str


class _Events(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    joined: str
    join_failed: dict[str, str]
    tx_done: str
    confirmed_ok: str
    confirmed_failed: str
    downlink: str


class Rak3172Data(DialectData):
    """``rak3172.yaml``."""

    status: _Status
    firmware_errors: dict[str, str]
    bands: dict[int, str]
    events: _Events
    help: dict[str, str]


@dataclass
class _JoinParams:
    """``AT+JOIN=join:autojoin:interval:attempts`` (RUI3 keeps them in flash)."""

    join: int = 1
    auto: int = 0
    interval_s: int = 8
    attempts: int = 0  # retries after a failed attempt (RUI3's join_retry) (verify)

    def __str__(self) -> str:
        return f"{self.join}:{self.auto}:{self.interval_s}:{self.attempts}"


@dataclass(frozen=True)
class _Command:
    """One ``AT+X`` command: what ``=?`` reads, what ``=<v>`` does, what the bare form does."""

    get: Callable[[], str] | None = None
    set: Callable[[str], str] | None = None  # returns the status word (``OK``, ``AT_PARAM_ERROR``...)
    run: Callable[[], str] | None = None  # bare ``AT+X``; returns the whole reply


@register
class Rak3172Dialect(Dialect):
    """RAK3172 / RUI3 AT commands against the firmware."""

    name = "rak3172"
    aliases = ("rui3", "rak3172-rui3")

    def __init__(self, firmware: FirmwareApi, scheduler: Scheduler, post: Callable[[Callable[[], str]], None]) -> None:
        super().__init__(firmware, scheduler, post)
        self.data = load_data("rak3172.yaml", Rak3172Data)
        self._s = self.data.status
        self._cfm = 0
        self._join = _JoinParams()
        self._retries_left = 0
        self._commands: dict[str, _Command] = {
            "VER": _Command(get=lambda: self.firmware.firmware_version),
            "HWMODEL": _Command(get=lambda: self.firmware.hardware_model),
            "SN": _Command(get=lambda: self.firmware.serial_number),
            "DEVEUI": _Command(get=lambda: str(self.firmware.dev_eui), set=self._set_dev_eui),
            "APPEUI": _Command(get=lambda: str(self.firmware.join_eui), set=self._set_join_eui),
            "APPKEY": _Command(get=lambda: self._key_hex("app_key"), set=lambda v: self._set_key("app_key", v)),
            # Extension: RUI3 has no NwkKey command (it is LoRaWAN 1.0.x only); the virtual DUT
            # speaks 1.1 too, so AT+NWKKEY mirrors AT+APPKEY for the NwkKey.
            "NWKKEY": _Command(get=lambda: self._key_hex("nwk_key"), set=lambda v: self._set_key("nwk_key", v)),
            "NJM": _Command(get=lambda: "1" if self.firmware.activation == "otaa" else "0", set=self._set_njm),
            "CLASS": _Command(get=lambda: self.firmware.device_class, set=self._set_class),
            "BAND": _Command(get=lambda: str(self._band()), set=self._set_band),
            "DR": _Command(get=lambda: str(self.firmware.data_rate), set=self._set_dr),
            "TXP": _Command(get=lambda: str(self.firmware.tx_power), set=self._set_txp),
            "ADR": _Command(get=lambda: "1" if self.firmware.adr else "0", set=self._set_adr),
            "CFM": _Command(get=lambda: str(self._cfm), set=self._set_cfm),
            "NJS": _Command(get=lambda: "1" if self.firmware.joined else "0"),
            "JOIN": _Command(get=lambda: str(self._join), set=self._set_join, run=self._run_join),
            "SEND": _Command(set=self._send),
            "RECV": _Command(get=self._recv),
        }

    # -- framing -------------------------------------------------------------------------------

    @property
    def max_line(self) -> int:
        return self.data.max_line

    @staticmethod
    def _frame(word: str) -> str:
        return CRLF + word + CRLF

    def _firmware_error(self, error: str) -> str:
        """The status word for a FirmwareApi error word."""
        return self.data.firmware_errors.get(error, self._s.error)

    def overlong(self) -> str:
        return self._frame(self._s.overlong)

    def internal_error(self) -> str:
        return self._frame(self._s.error)

    def handle_other(self, line: str) -> str:
        return self._frame(self._s.not_at)

    # -- commands ------------------------------------------------------------------------------

    def handle_at(self, line: str) -> str:
        s = self._s
        text = line.strip()
        upper = text.upper()
        if upper == "AT":
            return self._frame(s.ok)
        if upper == "AT?":
            return "".join(h + CRLF for h in self.data.help.values()) + self._frame(s.ok)
        if upper == "ATZ":
            self.firmware.reset()  # no status: the boot banner follows
            return ""
        if upper == "ATR":
            self.firmware.factory_reset()  # (verify) RUI3 answers OK, then reboots
            return self._frame(s.ok)
        if not upper.startswith("AT+"):
            return self._frame(s.not_found)
        name, eq, value = text[3:].partition("=")
        name = name.upper()
        if not eq and name.endswith("?"):
            help_text = self.data.help.get("AT+" + name[:-1])
            return help_text + CRLF + self._frame(s.ok) if help_text else self._frame(s.not_found)
        command = self._commands.get(name)
        if command is None:
            return self._frame(s.not_found)
        if not eq:
            return command.run() if command.run else self._frame(s.param)
        if value == "?":
            if command.get is None:
                return self._frame(s.param)
            return f"AT+{name}={command.get()}" + CRLF + self._frame(s.ok)
        if command.set is None:
            return self._frame(s.param)
        return self._frame(command.set(value))

    def _set_dev_eui(self, value: str) -> str:
        if parse_hex(value, 8) is None:
            return self._s.param
        self.firmware.dev_eui = EUI64.parse(value)
        return self._s.ok

    def _set_join_eui(self, value: str) -> str:
        if parse_hex(value, 8) is None:
            return self._s.param
        self.firmware.join_eui = EUI64.parse(value)
        return self._s.ok

    def _set_key(self, which: str, value: str) -> str:
        raw = parse_hex(value, 16)
        if raw is None:
            return self._s.param
        key = AESKey(raw, name="AppKey" if which == "app_key" else "NwkKey")
        if which == "app_key":
            self.firmware.set_app_key(key)
        else:
            self.firmware.set_nwk_key(key)
        self.remember_key(which, key)
        return self._s.ok

    def _key_hex(self, which: str) -> str:
        # RUI3 answers the query with the key itself; the driver's transcript must redact it.
        key = self.read_key(which)
        return key.reveal_hex() if key is not None else "0" * 32

    def _set_njm(self, value: str) -> str:
        if value not in ("0", "1"):
            return self._s.param
        self.firmware.activation = "otaa" if value == "1" else "abp"
        return self._s.ok

    def _set_class(self, value: str) -> str:
        cls = value.strip().upper()
        if cls not in ("A", "C"):
            return self._s.param  # class B is not modelled
        self.firmware.device_class = cls  # type: ignore[assignment]
        return self._s.ok

    def _band(self) -> int:
        region = firmware_region(self.firmware).name.upper()
        for code, name in self.data.bands.items():
            if name == region:
                return code
        return -1

    def _set_band(self, value: str) -> str:
        code = parse_int(value, 0, 255)
        if code is None or code not in self.data.bands:
            return self._s.param
        if code != self._band():
            return self._s.unsupported_band  # the virtual module's region is fixed by its firmware
        return self._s.ok

    def _set_dr(self, value: str) -> str:
        dr = parse_int(value, 0, 15)
        if dr is None:
            return self._s.param
        try:
            if not firmware_region(self.firmware).data_rate(dr).uplink:
                return self._s.param
        except RegionError:
            return self._s.param
        self.firmware.data_rate = dr
        return self._s.ok

    def _set_txp(self, value: str) -> str:
        count = len(firmware_region(self.firmware).tx_power_offsets_db)
        txp = parse_int(value, 0, count - 1)
        if txp is None:
            return self._s.param
        self.firmware.tx_power = txp
        return self._s.ok

    def _set_adr(self, value: str) -> str:
        if value not in ("0", "1"):
            return self._s.param
        self.firmware.adr = value == "1"
        return self._s.ok

    def _set_cfm(self, value: str) -> str:
        if value not in ("0", "1"):
            return self._s.param
        self._cfm = int(value)
        return self._s.ok

    # -- join ----------------------------------------------------------------------------------

    def _run_join(self) -> str:
        self._join.join = 1
        return self._frame(self._start_join())

    def _set_join(self, value: str) -> str:
        fields = value.split(":")
        limits = ((0, 1), (0, 1), (7, 255), (0, 255))
        if len(fields) > len(limits):
            return self._s.param
        parsed = [parse_int(f, lo, hi) for f, (lo, hi) in zip(fields, limits)]
        if any(p is None for p in parsed):
            return self._s.param
        self._join = _JoinParams(*parsed)  # type: ignore[arg-type]
        if self._join.join == 0:  # stop joining
            self._retries_left = 0
            self.cancel_timers()
            return self._s.ok
        return self._start_join()

    def _start_join(self) -> str:
        error = self.firmware.join()
        if error is not None:
            return self._firmware_error(error)
        self._retries_left = self._join.attempts
        return self._s.ok

    def _retry_join(self) -> str:
        error = self.firmware.join()
        if error is not None:
            log.info("rak3172: join retry refused by the firmware (%s)", error)
        return ""

    # -- send / receive ------------------------------------------------------------------------

    def _send(self, value: str) -> str:
        port_text, colon, hex_text = value.partition(":")
        port = parse_int(port_text, 1, 223)
        payload = parse_hex(hex_text)
        if not colon or port is None or not payload:
            return self._s.param
        error = self.firmware.send(port, payload, confirmed=bool(self._cfm))
        return self._s.ok if error is None else self._firmware_error(error)

    def _recv(self) -> str:
        last = self.firmware.last_downlink
        if last is None:
            return "0:"
        return f"{last.fport}:{last.payload.hex()}"

    # -- events --------------------------------------------------------------------------------

    def on_boot(self, event: Booted) -> str:
        super().on_boot(event)
        self._retries_left = 0
        if event.reason == "factory_reset":
            self._cfm = 0
            self._join = _JoinParams()
        elif self._join.auto:
            self.call_later(0.0, self._retry_join, name="rak3172-autojoin")
        return self.banner(self.data.banner)

    def on_event(self, event: DutEvent) -> str:
        ev = self.data.events
        if isinstance(event, Joined):
            self._retries_left = 0
            return ev.joined + CRLF
        if isinstance(event, JoinFailed):
            line = ev.join_failed.get(event.reason, ev.join_failed["default"])
            if self._retries_left > 0:
                self._retries_left -= 1
                self.call_later(float(self._join.interval_s), self._retry_join, name="rak3172-join-retry")
            return line + CRLF
        if isinstance(event, TxDone):
            if not event.confirmed:
                return ev.tx_done + CRLF
            return (ev.confirmed_ok if event.acked else ev.confirmed_failed) + CRLF
        if isinstance(event, DownlinkReceived):
            line = ev.downlink.format(
                slot=event.slot,
                rssi=round(event.rssi),
                snr=round(event.snr),
                port=event.fport,
                hex=event.payload.hex(),
            )
            return line + CRLF
        return ""
