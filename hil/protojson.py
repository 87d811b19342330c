"""The protobuf JSON mapping (Go ``protojson``) for ChirpStack's ``gw.proto`` messages, by hand.

ChirpStack Gateway Bridge v4 with ``marshaler = "json"`` writes and reads ``gw.proto`` messages
with ``protojson`` (EmitUnpopulated=false): field names in lowerCamelCase (the proto names are
accepted too), ``bytes`` as standard base64 with padding, enums by name (numbers accepted),
``google.protobuf.Duration`` as ``"1s"`` / ``"1.500s"``, ``google.protobuf.Timestamp`` as RFC 3339
with ``Z``, 64-bit integers as strings, and fields holding their default value (0, "", false,
empty bytes, the enum's zero) left out; a message that is set stays, even when empty
(``{"immediately":{}}``).

Both sides of the rig use this module: the network-server drivers (``drivers.gateway``) and the
virtual gateway (``hil.sim.gateway``). Readers are as lenient as protojson's: integers may come
as JSON numbers or decimal strings, base64 may be standard or URL-safe (never both mixed),
padded or not. Anything else raises :class:`ProtoJsonError` naming the field (its dotted path),
what was expected and what came.

Two ways to read a message: :class:`ProtoReader` wraps one object and reads fields by proto
name, an omitted field being its default; the ``parse_*`` functions read one JSON value already
taken out of a dict. Two ways to write one: :func:`message` from snake_case keyword fields, and
:func:`without_defaults` for a camelCase dict built by hand (recursively).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import re
from typing import Any, Mapping, Sequence

__all__ = [
    "CODE_RATES",
    "ProtoJsonError",
    "ProtoReader",
    "camel",
    "code_rate_from_enum",
    "code_rate_to_enum",
    "decode_bytes",
    "decode_duration",
    "dumps",
    "encode_bytes",
    "encode_duration",
    "format_timestamp",
    "format_timestamp_ns",
    "message",
    "parse_bool",
    "parse_float",
    "parse_int32",
    "parse_integer",
    "parse_message",
    "parse_string",
    "parse_timestamp",
    "parse_uint32",
    "without_defaults",
]

# gw.proto CodeRate, in enum-number order (CR_UNDEFINED = 0).
CODE_RATES: tuple[str, ...] = (
    "CR_UNDEFINED", "CR_4_5", "CR_4_6", "CR_4_7", "CR_4_8", "CR_3_8", "CR_2_6", "CR_1_4", "CR_1_6", "CR_5_6",
    "CR_LI_4_5", "CR_LI_4_6", "CR_LI_4_8",
)

_UINT32_MAX = 2**32 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_NANOS = 1_000_000_000
_MAX_DURATION_S = 315_576_000_000  # protobuf Duration range: +-10 000 years
_DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


class ProtoJsonError(ValueError):
    """A protobuf-JSON value is missing, of the wrong type or malformed; the message names the field."""


def camel(name: str) -> str:
    """A proto field name in protojson's lowerCamelCase: ``phy_payload`` -> ``phyPayload``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _show(value: object, limit: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- bytes ---------------------------------------------------------------------------------------


def encode_bytes(data: bytes) -> str:
    """``bytes`` as protojson writes them: standard base64 with padding."""
    return base64.b64encode(bytes(data)).decode("ascii")


def decode_bytes(value: object, where: str = "bytes") -> bytes:
    """A protojson ``bytes`` value: standard or URL-safe base64 (never both mixed), padding optional."""
    if not isinstance(value, str):
        raise ProtoJsonError(f"{where}: expected base64 text, got {_show(value)}")
    text = value.strip()
    url_safe = "-" in text or "_" in text  # Go protojson: either alphabet, never both
    if url_safe and ("+" in text or "/" in text):
        raise ProtoJsonError(f"{where}: expected base64, got {_show(value)} (it mixes the standard and URL-safe "
                             "alphabets)")
    alphabet = "-_" if url_safe else "+/"
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, altchars=alphabet.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise ProtoJsonError(f"{where}: expected base64, got {_show(value)}") from None


# -- scalars -------------------------------------------------------------------------------------


def parse_integer(value: object, where: str = "value", lo: int = _INT32_MIN, hi: int = _INT32_MAX) -> int:
    """An integer field (a JSON number with no fraction, or a decimal string) in ``lo..hi``."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        number = int(value.strip())
    if number is None or not lo <= number <= hi:
        raise ProtoJsonError(f"{where}: expected an integer in {lo}..{hi}, got {_show(value)}")
    return number


def parse_uint32(value: object, where: str = "value") -> int:
    """A ``uint32`` field (a JSON number or a decimal string)."""
    return parse_integer(value, where, 0, _UINT32_MAX)


def parse_int32(value: object, where: str = "value") -> int:
    """An ``int32`` field (a JSON number or a decimal string)."""
    return parse_integer(value, where, _INT32_MIN, _INT32_MAX)


def parse_float(value: object, where: str = "value") -> float:
    """A ``float``/``double`` field (a number, a numeric string, ``"NaN"``, ``"Infinity"``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ProtoJsonError(f"{where}: expected a number, got {_show(value)}")


def parse_bool(value: object, where: str = "value") -> bool:
    """A ``bool`` field."""
    if not isinstance(value, bool):
        raise ProtoJsonError(f"{where}: expected true or false, got {_show(value)}")
    return value


def parse_string(value: object, where: str = "value") -> str:
    """A ``string`` field."""
    if not isinstance(value, str):
        raise ProtoJsonError(f"{where}: expected a string, got {_show(value)}")
    return value


def parse_message(value: object, where: str = "value") -> dict[str, Any]:
    """A message field: a JSON object."""
    if not isinstance(value, dict):
        raise ProtoJsonError(f"{where}: expected an object, got {_show(value)}")
    return value


# -- google.protobuf.Duration --------------------------------------------------------------------


def _fraction(nanos: int) -> str:
    """protojson writes 0, 3, 6 or 9 fractional digits."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def encode_duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` as protojson writes it: ``"1s"``, ``"1.500s"``, ``"-0.000001s"``.

    Rounded to the nanosecond; ProtoJsonError if not finite or beyond the protobuf range.
    """
    if not math.isfinite(seconds):
        raise ProtoJsonError(f"duration: expected a finite number of seconds, got {seconds!r}")
    nanos_total = round(abs(seconds) * _NANOS)
    whole, nanos = divmod(nanos_total, _NANOS)
    if whole > _MAX_DURATION_S:
        raise ProtoJsonError(f"duration: {seconds!r} s is beyond the protobuf range of +-{_MAX_DURATION_S} s")
    sign = "-" if seconds < 0 and nanos_total else ""
    return f"{sign}{whole}{_fraction(nanos)}s"


def decode_duration(value: object, where: str = "duration") -> float:
    """A protojson Duration (``"5s"``, ``"1.5s"``, ``"-0.25s"``) in seconds."""
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ProtoJsonError(f"{where}: expected a duration like \"1s\" or \"1.500s\", got {_show(value)}")
    sign, whole, frac = match.groups()
    if int(whole) > _MAX_DURATION_S:
        raise ProtoJsonError(f"{where}: {value} is beyond the protobuf range of +-{_MAX_DURATION_S} s")
    seconds = int(whole) + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    return -seconds if sign else seconds


# -- google.protobuf.Timestamp -------------------------------------------------------------------


def format_timestamp_ns(unix_ns: int) -> str:
    """A Timestamp from integer Unix nanoseconds: ``"2022-08-03T14:37:43.383634108Z"``."""
    seconds, nanos = divmod(int(unix_ns), _NANOS)
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(nanos) + "Z"


def format_timestamp(unix_seconds: float) -> str:
    """A Timestamp from Unix seconds, rounded to the microsecond: ``"2022-08-03T14:37:43.383634Z"``."""
    return format_timestamp_ns(round(unix_seconds * 1_000_000) * 1_000)


def parse_timestamp(value: object, where: str = "timestamp") -> int:
    """An RFC 3339 Timestamp as integer Unix nanoseconds."""
    text = parse_string(value, where)
    match = _TIMESTAMP_RE.match(text.strip())
    if match is None:
        raise ProtoJsonError(f"{where}: expected an RFC 3339 timestamp, got {_show(value)}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        tz = _dt.timezone.utc
        if zone not in ("Z", "z"):
            offset = _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            tz = _dt.timezone(offset if zone[0] == "+" else -offset)
        moment = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise ProtoJsonError(f"{where}: impossible timestamp {_show(value)} ({exc})") from None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return int(moment.timestamp()) * _NANOS + nanos


# -- enums ---------------------------------------------------------------------------------------


def _enum_name(value: object, names: Sequence[str], where: str) -> str:
    if value is None:
        return names[0]
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    raise ProtoJsonError(f"{where}: expected one of {', '.join(names)}, got {_show(value)}")


def code_rate_to_enum(code_rate: str) -> str:
    """``"4/5"`` -> ``"CR_4_5"`` (``"4/5LI"`` -> ``"CR_LI_4_5"``); ProtoJsonError for an unknown rate."""
    text = code_rate.strip().upper() if isinstance(code_rate, str) else ""
    li = text.endswith("LI")
    core = text[:-2] if li else text
    name = f"CR_{'LI_' if li else ''}{core.replace('/', '_')}"
    if "/" not in core or name not in CODE_RATES[1:]:
        raise ProtoJsonError(f"code rate: expected one of 4/5, 4/6, 4/7, 4/8, ... , got {code_rate!r}")
    return name


def code_rate_from_enum(value: object, where: str = "codeRate") -> str | None:
    """``"CR_4_5"`` (or its number 1) -> ``"4/5"``; None for CR_UNDEFINED / omitted (None)."""
    name = _enum_name(value, CODE_RATES, where)
    if name == "CR_UNDEFINED":
        return None
    parts = name.split("_")[1:]
    if parts[0] == "LI":
        return f"{parts[1]}/{parts[2]}LI"
    return f"{parts[0]}/{parts[1]}"


# -- writing messages ----------------------------------------------------------------------------


def _is_default(value: Any) -> bool:
    """True for a scalar at its proto default (None, 0, 0.0, "", False, b"", an empty list)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value is False
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (str, bytes, bytearray, list, tuple)):
        return len(value) == 0
    return False  # messages (dicts) are present once set, even when empty


def message(**fields: Any) -> dict[str, Any]:
    """A protojson object from snake_case fields, leaving out default scalars like protojson does.

    Scalars equal to their proto default (None, 0, 0.0, "", False, b"", []) are omitted; a
    sub-message (a dict) is kept even when empty, because a set message is not a default
    (``{"immediately": {}}``, a DownlinkTxAckItem ``{}``). Bytes are base64-encoded.
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if not isinstance(value, dict) and _is_default(value):
            continue
        if isinstance(value, (bytes, bytearray)):
            value = encode_bytes(value)
        out[camel(name)] = value
    return out


def without_defaults(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` (camelCase keys) without default-valued scalars and empty lists, recursively.

    Nested messages stay, even empty (a set oneof such as ``{"immediately":{}}``); list items stay
    (a DownlinkTxAckItem with status IGNORED is ``{}``).
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out[key] = without_defaults(value)
        elif isinstance(value, (list, tuple)):
            if value:
                out[key] = [without_defaults(v) if isinstance(v, dict) else v for v in value]
        elif not _is_default(value):
            out[key] = value
    return out


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the bridge publishes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- reading messages ----------------------------------------------------------------------------


class ProtoReader:
    """Reads one protojson object tolerantly: an omitted (or null) field is its proto default.

    Field names are given in proto snake_case and looked up as lowerCamelCase first, then as
    written. Every error names the path of the field (``rxInfo.rssi``).
    """

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path

    @classmethod
    def loads(cls, payload: bytes | str, what: str = "message") -> "ProtoReader":
        """Parse a JSON object; ProtoJsonError if it is not UTF-8 JSON or not an object."""
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
            data = json.loads(text)
        except UnicodeDecodeError:
            raise ProtoJsonError(f"{what}: not UTF-8 text (a protobuf-marshalled payload? the bridge must use "
                                 "marshaler \"json\")") from None
        except json.JSONDecodeError as exc:
            raise ProtoJsonError(f"{what}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ProtoJsonError(f"{what}: expected a JSON object, got {type(data).__name__}")
        return cls(data)

    def where(self, name: str) -> str:
        """The dotted path of field ``name`` in this message."""
        return f"{self._path}.{camel(name)}" if self._path else camel(name)

    def raw(self, name: str) -> Any:
        """The field's JSON value as written, or None if omitted."""
        key = camel(name)
        if key in self._data:
            return self._data[key]
        return self._data.get(name)

    def has(self, name: str) -> bool:
        """True if the field is present and not null."""
        return self.raw(name) is not None

    def message(self, name: str) -> "ProtoReader":
        """A sub-message; an omitted one reads as empty."""
        value = self.raw(name)
        data = {} if value is None else parse_message(value, self.where(name))
        return ProtoReader(data, self.where(name))

    def messages(self, name: str) -> list["ProtoReader"]:
        """A repeated message field; an omitted one reads as empty."""
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ProtoJsonError(f"{self.where(name)}: expected a list, got {_show(value)}")
        out = []
        for i, item in enumerate(value):
            where = f"{self.where(name)}[{i}]"
            out.append(ProtoReader({} if item is None else parse_message(item, where), where))
        return out

    def integer(self, name: str, lo: int = _INT32_MIN, hi: int = _INT32_MAX) -> int:
        """An integer field (a JSON number with no fraction, or a decimal string); 0 if omitted."""
        value = self.raw(name)
        return 0 if value is None else parse_integer(value, self.where(name), lo, hi)

    def uint32(self, name: str) -> int:
        """A uint32 field; 0 if omitted."""
        return self.integer(name, 0, _UINT32_MAX)

    def int32(self, name: str) -> int:
        """An int32 field; 0 if omitted."""
        return self.integer(name)

    def double(self, name: str) -> float:
        """A float/double field (a number, a numeric string, "NaN", "Infinity"); 0.0 if omitted."""
        value = self.raw(name)
        return 0.0 if value is None else parse_float(value, self.where(name))

    def string(self, name: str) -> str:
        """A string field; "" if omitted."""
        value = self.raw(name)
        return "" if value is None else parse_string(value, self.where(name))

    def boolean(self, name: str) -> bool:
        """A bool field; False if omitted."""
        value = self.raw(name)
        return False if value is None else parse_bool(value, self.where(name))

    def bytes(self, name: str) -> bytes:
        """A bytes field (base64); b"" if omitted."""
        value = self.raw(name)
        return b"" if value is None else decode_bytes(value, self.where(name))

    def enum(self, name: str, names: Sequence[str]) -> str:
        """An enum field by name (numbers accepted); ``names[0]`` if omitted."""
        return _enum_name(self.raw(name), names, self.where(name))

    def duration(self, name: str) -> float | None:
        """A Duration field in seconds; None if omitted."""
        value = self.raw(name)
        return None if value is None else decode_duration(value, self.where(name))

    def __repr__(self) -> str:
        return f"ProtoReader({self._path or '<root>'}: {sorted(self._data)})"
