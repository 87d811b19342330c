"""Seeed LoRa-E5 (Wio-E5): the RisingHF-family AT dialect. Replies are ``+CMD: ...`` lines.

An uplink is a transaction printed in one piece: ``+MSGHEX: Start`` at once, then (once the
firmware reports :class:`TxDone`) ``Wait ACK``/``ACK Received`` for a confirmed one, any downlink
(``PORT: p; RX: "HEX"`` and ``RXWIN``) and ``Done``. The firmware emits ``TxDone`` when the
receive windows are over, as LoRaMac's MCPS-Confirm; a downlink it emits before that or in the
same scheduler callback is printed inside the transaction, before ``Done``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from pydantic import BaseModel, ConfigDict

from hil.lorawan.crypto import AESKey
from hil.lorawan.region import RegionError
from hil.lorawan.types import EUI64, DevAddr
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

_NAME = re.compile(r"[A-Z0-9_]{1,16}")
# NwkID width per NetID type (LoRaWAN Backend Interfaces 1.1 §13), to show the NetID of a DevAddr
_NWK_ID_BITS = (6, 6, 9, 11, 12, 13, 15, 17)


class _Errors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    param: int
    unknown: int
    format: int
    mode: int
    too_long: int
    internal: int


class _Join(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str
    normal: str
    joined: str
    net_id: str
    failed: str
    done: str
    already: str
    busy: str


class _Send(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str
    wait_ack: str
    ack: str
    rx: str
    rxwin: str
    done: str
    not_joined: str
    busy: str
    too_long: str
    duty_cycle: str


class LoraE5Data(DialectData):
    """``lora_e5.yaml``."""

    default_port: int
    errors: _Errors
    version: str
    ok: str
    id: str
    key: str
    mode: str
    device_class: str
    dr: str
    dr_detail: str
    dr_scheme: str
    adr: str
    port: str
    uldl: str
    reset: str
    fdefault: str
    dr_schemes: tuple[str, ...]
    join: _Join
    send: _Send
    rx_windows: dict[str, int]


@dataclass
class _Uplink:
    """An ``AT+(C)MSGHEX`` in progress: what to print once the firmware is done with it."""

    prefix: str
    confirmed: bool
    acked: bool | None = None
    finished: bool = False
    downlinks: list[DownlinkReceived] = field(default_factory=list)


@dataclass(frozen=True)
class _Param:
    value: str
    quoted: bool


def colon_bytes(data: bytes) -> str:
    """``26:01:5F:66``: how the module shows EUIs and addresses."""
    return ":".join(f"{b:02X}" for b in data)


def net_id_of(dev_addr: DevAddr) -> str:
    """The NetID a DevAddr belongs to, as far as its prefix and NwkID tell (exact for types 0-1)."""
    value = int(dev_addr)
    net_type = 0
    while net_type < 7 and value & (1 << (31 - net_type)):
        net_type += 1
    bits = _NWK_ID_BITS[net_type]
    nwk_id = (value >> (32 - (net_type + 1) - bits)) & ((1 << bits) - 1)
    return f"{(net_type << 21) | nwk_id:06X}"


def split_params(text: str) -> list[_Param] | None:
    """Comma-separated parameters; double quotes protect commas and spaces. None if a quote is open."""
    params: list[_Param] = []
    current: list[str] = []
    quoted = in_quote = False
    for ch in text:
        if ch == '"':
            in_quote = not in_quote
            quoted = True
        elif ch == "," and not in_quote:
            params.append(_Param("".join(current).strip(), quoted))
            current, quoted = [], False
        else:
            current.append(ch)
    if in_quote:
        return None
    params.append(_Param("".join(current).strip(), quoted))
    return params


@register
class LoraE5Dialect(Dialect):
    """Seeed LoRa-E5 AT commands against the firmware."""

    name = "lora-e5"
    aliases = ("wio-e5", "seeed-lora-e5", "e5")

    def __init__(self, firmware: FirmwareApi, scheduler: Scheduler, post: Callable[[Callable[[], str]], None]) -> None:
        super().__init__(firmware, scheduler, post)
        self.data = load_data("lora_e5.yaml", LoraE5Data)
        self._port = self.data.default_port
        self._uplink: _Uplink | None = None
        self._last_prefix = "MSGHEX"
        self._handlers = {
            "VER": self._ver,
            "ID": self._id,
            "KEY": self._key,
            "MODE": self._mode,
            "CLASS": self._class,
            "DR": self._dr,
            "ADR": self._adr,
            "PORT": self._port_cmd,
            "JOIN": self._join,
            "MSGHEX": lambda args: self._msghex("MSGHEX", args),
            "CMSGHEX": lambda args: self._msghex("CMSGHEX", args),
            "LW": self._lw,
            "RESET": self._reset,
            "FDEFAULT": self._fdefault,
        }

    # -- framing -------------------------------------------------------------------------------

    @property
    def max_line(self) -> int:
        return self.data.max_line

    def _error(self, name: str, code: int) -> str:
        return f"+{name}: ERROR({code})" + CRLF

    def overlong(self) -> str:
        return self._error("AT", self.data.errors.too_long)

    def internal_error(self) -> str:
        return self._error("AT", self.data.errors.internal)

    def handle_other(self, line: str) -> str:
        return self._error("AT", self.data.errors.unknown)

    # -- commands ------------------------------------------------------------------------------

    def handle_at(self, line: str) -> str:
        text = line.strip()
        body = text[2:]
        if body in ("", "?"):
            return self.data.ok + CRLF
        if not body.startswith("+"):
            return self._error("AT", self.data.errors.unknown)
        raw_name, eq, rest = body[1:].partition("=")
        name = raw_name.strip().upper()
        query = not eq or rest.strip() == "?"
        if name.endswith("?"):
            name, query = name[:-1], True
        if not _NAME.fullmatch(name):
            return self._error("AT", self.data.errors.format)
        handler = self._handlers.get(name)
        if handler is None:
            return self._error(name, self.data.errors.unknown)
        if query:
            return handler(None)
        params = split_params(rest)
        if params is None:
            return self._error(name, self.data.errors.format)
        return handler(params)

    def _ver(self, args: list[_Param] | None) -> str:
        return self.data.version.format(version=self.firmware.firmware_version) + CRLF

    def _id_line(self, field_name: str) -> str:
        fw = self.firmware
        if field_name == "DevAddr":
            addr = fw.dev_addr or getattr(fw, "abp_dev_addr", None)
            value = colon_bytes(addr.display) if addr is not None else "00:00:00:00"
        elif field_name == "DevEui":
            value = colon_bytes(fw.dev_eui.display)
        else:
            value = colon_bytes(fw.join_eui.display)
        return self.data.id.format(field=field_name, value=value) + CRLF

    def _id(self, args: list[_Param] | None) -> str:
        fields = {"DEVADDR": "DevAddr", "DEVEUI": "DevEui", "APPEUI": "AppEui"}
        if args is None:
            return "".join(self._id_line(f) for f in fields.values())
        field_name = fields.get(args[0].value.upper())
        if field_name is None or len(args) > 2:
            return self._error("ID", self.data.errors.param)
        if len(args) == 1:
            return self._id_line(field_name)
        if field_name == "DevAddr":
            return self._error("ID", self.data.errors.param)  # ABP DevAddr is not modelled
        if parse_hex(_hex_digits(args[1].value), 8) is None:
            return self._error("ID", self.data.errors.param)
        eui = EUI64.parse(_hex_digits(args[1].value))
        if field_name == "DevEui":
            self.firmware.dev_eui = eui
        else:
            self.firmware.join_eui = eui
        return self._id_line(field_name)

    def _key(self, args: list[_Param] | None) -> str:
        if args is None or len(args) != 2 or args[0].value.upper() != "APPKEY":
            return self._error("KEY", self.data.errors.param)  # NWKSKEY/APPSKEY (ABP) are not modelled
        raw = parse_hex(_hex_digits(args[1].value), 16)
        if raw is None:
            return self._error("KEY", self.data.errors.param)
        key = AESKey(raw, name="AppKey")
        self.firmware.set_app_key(key)
        self.remember_key("app_key", key)
        # The module confirms with the key itself; the driver's transcript must redact it.
        return self.data.key.format(hex=raw.hex().upper()) + CRLF

    def _mode(self, args: list[_Param] | None) -> str:
        modes = {"LWOTAA": "otaa", "LWABP": "abp"}
        if args is not None:
            wanted = args[0].value.upper()
            if len(args) != 1 or wanted not in modes:
                return self._error("MODE", self.data.errors.param)  # TEST mode is not modelled
            self.firmware.activation = modes[wanted]  # type: ignore[assignment]
        mode = "LWOTAA" if self.firmware.activation == "otaa" else "LWABP"
        return self.data.mode.format(mode=mode) + CRLF

    def _class(self, args: list[_Param] | None) -> str:
        if args is not None:
            wanted = args[0].value.upper()
            if len(args) != 1 or wanted not in ("A", "C"):
                return self._error("CLASS", self.data.errors.param)
            self.firmware.device_class = wanted  # type: ignore[assignment]
        return self.data.device_class.format(cls=self.firmware.device_class) + CRLF

    def _dr(self, args: list[_Param] | None) -> str:
        region = firmware_region(self.firmware)
        if args is None:
            dr = self.firmware.data_rate
            try:
                rate = region.data_rate(dr)
                detail = self.data.dr_detail.format(
                    region=region.name.upper(), dr=dr, sf=rate.spreading_factor, bw=(rate.bandwidth_hz or 0) // 1000
                )
            except RegionError:
                detail = ""
            return self.data.dr.format(dr=dr) + CRLF + (detail + CRLF if detail else "")
        wanted = args[0].value.upper()
        if len(args) != 1:
            return self._error("DR", self.data.errors.param)
        if wanted in self.data.dr_schemes:
            if wanted != region.name.upper():
                return self._error("DR", self.data.errors.param)  # the firmware's region is fixed
            return self.data.dr_scheme.format(region=wanted) + CRLF
        dr = parse_int(wanted[2:] if wanted.startswith("DR") else wanted, 0, 15)
        try:
            usable = dr is not None and region.data_rate(dr).uplink
        except RegionError:
            usable = False
        if not usable:
            return self._error("DR", self.data.errors.param)
        self.firmware.data_rate = dr  # type: ignore[assignment]
        return self.data.dr.format(dr=dr) + CRLF

    def _adr(self, args: list[_Param] | None) -> str:
        if args is not None:
            wanted = args[0].value.upper()
            if len(args) != 1 or wanted not in ("ON", "OFF"):
                return self._error("ADR", self.data.errors.param)
            self.firmware.adr = wanted == "ON"
        return self.data.adr.format(state="ON" if self.firmware.adr else "OFF") + CRLF

    def _port_cmd(self, args: list[_Param] | None) -> str:
        if args is not None:
            port = parse_int(args[0].value, 1, 223) if len(args) == 1 else None
            if port is None:
                return self._error("PORT", self.data.errors.param)
            self._port = port
        return self.data.port.format(port=self._port) + CRLF

    def _lw(self, args: list[_Param] | None) -> str:
        if args is None or len(args) != 1 or args[0].value.upper() != "ULDL":
            return self._error("LW", self.data.errors.param)  # only the counters are modelled
        return self.data.uldl.format(up=self.firmware.fcnt_up, down=self.firmware.fcnt_down) + CRLF

    def _reset(self, args: list[_Param] | None) -> str:
        self.firmware.reset()
        return self.data.reset + CRLF

    def _fdefault(self, args: list[_Param] | None) -> str:
        self.firmware.factory_reset()
        return self.data.fdefault + CRLF

    # -- join ----------------------------------------------------------------------------------

    def _join(self, args: list[_Param] | None) -> str:
        j = self.data.join
        force = False
        if args is not None:
            if len(args) != 1 or args[0].value.upper() != "FORCE":
                return self._error("JOIN", self.data.errors.param)
            force = True
        if self.firmware.joined and not force:
            return j.already + CRLF
        error = self.firmware.join()
        if error == "busy":
            return j.busy + CRLF
        if error is not None:
            return self._error("JOIN", self.data.errors.param)
        return j.start + CRLF + j.normal + CRLF

    # -- uplink --------------------------------------------------------------------------------

    def _msghex(self, prefix: str, args: list[_Param] | None) -> str:
        s = self.data.send
        if args is None:
            payload = b""
        else:
            if len(args) != 1 or (not args[0].quoted and " " in args[0].value):
                return self._error(prefix, self.data.errors.param)
            parsed = parse_hex(args[0].value.replace(" ", ""))
            if parsed is None:
                return self._error(prefix, self.data.errors.param)
            payload = parsed
        if self._uplink is not None:
            return s.busy.format(p=prefix) + CRLF
        confirmed = prefix == "CMSGHEX"
        error = self.firmware.send(self._port, payload, confirmed=confirmed)
        if error is not None:
            template = {
                "not_joined": s.not_joined,
                "busy": s.busy,
                "too_long": s.too_long,
                "duty_cycle": s.duty_cycle,
            }.get(error)
            if template is None:
                return self._error(prefix, self.data.errors.param)
            return template.format(p=prefix) + CRLF
        self._last_prefix = prefix
        self._uplink = _Uplink(prefix, confirmed)
        return s.start.format(p=prefix) + CRLF

    def _finish_uplink(self) -> str:
        uplink, self._uplink = self._uplink, None
        if uplink is None:
            return ""
        s, p = self.data.send, uplink.prefix
        lines = []
        if uplink.confirmed:
            lines.append(s.wait_ack.format(p=p))
            if uplink.acked:
                lines.append(s.ack.format(p=p))
        for downlink in uplink.downlinks:
            lines += self._downlink_lines(p, downlink)
        lines.append(s.done.format(p=p))
        return "".join(line + CRLF for line in lines)

    def _downlink_lines(self, prefix: str, event: DownlinkReceived) -> list[str]:
        s = self.data.send
        window = self.data.rx_windows.get(event.slot, 1)
        return [
            s.rx.format(p=prefix, port=event.fport, hex=event.payload.hex().upper()),
            s.rxwin.format(p=prefix, win=window, rssi=round(event.rssi), snr=float(event.snr)),
        ]

    # -- events --------------------------------------------------------------------------------

    def on_boot(self, event: Booted) -> str:
        super().on_boot(event)
        self._uplink = None
        if event.reason == "factory_reset":
            self._port = self.data.default_port
        return self.banner(self.data.banner)

    def on_event(self, event: DutEvent) -> str:
        j = self.data.join
        if isinstance(event, Joined):
            net_id = getattr(self.firmware, "net_id", None)
            net_id_text = f"{int(net_id):06X}" if net_id is not None else net_id_of(event.dev_addr)
            lines = [j.joined, j.net_id.format(net_id=net_id_text, dev_addr=colon_bytes(event.dev_addr.display)), j.done]
            return "".join(line + CRLF for line in lines)
        if isinstance(event, JoinFailed):
            return j.failed + CRLF + j.done + CRLF
        if isinstance(event, TxDone):
            uplink = self._uplink
            if uplink is None or uplink.finished:
                return ""  # an uplink the application sent by itself: the modem prints nothing
            uplink.acked = event.acked
            uplink.finished = True
            self.after_current_callback(self._finish_uplink)
            return ""
        if isinstance(event, DownlinkReceived):
            if self._uplink is not None:
                self._uplink.downlinks.append(event)
                return ""
            return "".join(line + CRLF for line in self._downlink_lines(self._last_prefix, event))
        return ""


def _hex_digits(text: str) -> str:
    """Hex with the separators people type (spaces, colons, dashes) removed."""
    return re.sub(r"[\s:\-]", "", text)
