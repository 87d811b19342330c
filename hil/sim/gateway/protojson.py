"""The protobuf JSON mapping, as Go ``protojson`` writes it and ChirpStack reads it.

ChirpStack Gateway Bridge v4 with ``marshaler = "json"`` serialises ``gw.proto`` messages with
``protojson`` (EmitUnpopulated=false): lowerCamelCase names, ``bytes`` as standard base64 with
padding, enums by name, ``google.protobuf.Duration`` as ``"1s"`` / ``"1.500s"``,
``google.protobuf.Timestamp`` as RFC 3339 with ``Z``, and fields holding their default value
omitted (a message that is set stays, even when empty: ``{"immediately":{}}``).

Readers here are as lenient as protojson's: integers may come as JSON numbers or decimal
strings, base64 may be standard or URL-safe, padded or not. Anything else raises
:class:`ProtoJsonError` naming the field, what was expected and what came.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
from typing import Any

_UINT32_MAX = 0xFFFFFFFF
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_NANOS = 1_000_000_000
_DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)
_CODE_RATE_RE = re.compile(r"^CR_(LI_)?(\d)_(\d)$")
_PLAIN_CODE_RATE_RE = re.compile(r"^(\d)/(\d)(LI)?$")


class ProtoJsonError(ValueError):
    """A JSON value does not fit the protobuf field it is read into."""


def _where(field: str) -> str:
    return f"field {field!r}" if field else "value"


# -- bytes ----------------------------------------------------------------------------------------


def encode_bytes(data: bytes) -> str:
    """A ``bytes`` field: standard base64 with padding."""
    return base64.b64encode(bytes(data)).decode("ascii")


def decode_bytes(value: Any, field: str = "") -> bytes:
    """Read a ``bytes`` field (standard or URL-safe base64, padding optional)."""
    if not isinstance(value, str):
        raise ProtoJsonError(f"{_where(field)}: expected a base64 string, got {type(value).__name__} {value!r:.40}")
    text = value.strip()
    alphabet = text.replace("-", "+").replace("_", "/").rstrip("=")
    padded = alphabet + "=" * (-len(alphabet) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ProtoJsonError(f"{_where(field)}: expected base64, got {value!r:.40}") from None


# -- scalars ---------------------------------------------------------------------------------------


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise ProtoJsonError(f"{_where(field)}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise ProtoJsonError(f"{_where(field)}: expected an integer, got {type(value).__name__} {value!r:.40}")


def parse_uint32(value: Any, field: str = "") -> int:
    """Read a ``uint32`` field (a JSON number or a decimal string)."""
    number = _integer(value, field)
    if not 0 <= number <= _UINT32_MAX:
        raise ProtoJsonError(f"{_where(field)}: expected a uint32 (0..{_UINT32_MAX}), got {number}")
    return number


def parse_int32(value: Any, field: str = "") -> int:
    """Read an ``int32`` field (a JSON number or a decimal string)."""
    number = _integer(value, field)
    if not _INT32_MIN <= number <= _INT32_MAX:
        raise ProtoJsonError(f"{_where(field)}: expected an int32, got {number}")
    return number


def parse_float(value: Any, field: str = "") -> float:
    """Read a ``float``/``double`` field (a JSON number or a numeric string)."""
    if isinstance(value, bool):
        raise ProtoJsonError(f"{_where(field)}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ProtoJsonError(f"{_where(field)}: expected a number, got {type(value).__name__} {value!r:.40}")


def parse_bool(value: Any, field: str = "") -> bool:
    """Read a ``bool`` field."""
    if not isinstance(value, bool):
        raise ProtoJsonError(f"{_where(field)}: expected true or false, got {value!r:.40}")
    return value


def parse_message(value: Any, field: str = "") -> dict[str, Any]:
    """Read a message field: a JSON object."""
    if not isinstance(value, dict):
        raise ProtoJsonError(f"{_where(field)}: expected a JSON object, got {type(value).__name__} {value!r:.40}")
    return value


def parse_string(value: Any, field: str = "") -> str:
    """Read a ``string`` field."""
    if not isinstance(value, str):
        raise ProtoJsonError(f"{_where(field)}: expected a string, got {type(value).__name__} {value!r:.40}")
    return value


# -- google.protobuf.Duration -------------------------------------------------------------------


def _fraction(nanos: int) -> str:
    """protojson writes 0, 3, 6 or 9 fractional digits."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def format_duration(nanoseconds: int) -> str:
    """A Duration from integer nanoseconds: ``1_000_000_000`` -> ``"1s"``, ``1_500_000_000`` -> ``"1.500s"``."""
    sign = "-" if nanoseconds < 0 else ""
    whole, nanos = divmod(abs(int(nanoseconds)), _NANOS)
    return f"{sign}{whole}{_fraction(nanos)}s"


def duration_from_seconds(seconds: float) -> str:
    """A Duration from seconds, rounded to the microsecond (the gateway counter's resolution)."""
    return format_duration(round(seconds * 1_000_000) * 1_000)


def parse_duration(value: Any, field: str = "") -> int:
    """Read a Duration (``"5s"``, ``"0.250s"``, ``"-1.5s"``) as integer nanoseconds."""
    text = parse_string(value, field)
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ProtoJsonError(f"{_where(field)}: expected a duration like \"1s\" or \"1.500s\", got {text!r:.40}")
    sign, whole, frac = match.groups()
    nanos = int(whole) * _NANOS + (int(frac.ljust(9, "0")) if frac else 0)
    return -nanos if sign else nanos


# -- google.protobuf.Timestamp ------------------------------------------------------------------


def format_timestamp_ns(unix_ns: int) -> str:
    """A Timestamp from integer Unix nanoseconds: ``"2022-08-03T14:37:43.383634Z"``."""
    seconds, nanos = divmod(int(unix_ns), _NANOS)
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(nanos) + "Z"


def format_timestamp(unix_seconds: float) -> str:
    """A Timestamp from Unix seconds, rounded to the microsecond."""
    return format_timestamp_ns(round(unix_seconds * 1_000_000) * 1_000)


def parse_timestamp(value: Any, field: str = "") -> int:
    """Read an RFC 3339 Timestamp as integer Unix nanoseconds."""
    text = parse_string(value, field)
    match = _TIMESTAMP_RE.match(text.strip())
    if match is None:
        raise ProtoJsonError(f"{_where(field)}: expected an RFC 3339 timestamp, got {text!r:.40}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        tz = _dt.timezone.utc
        if zone not in ("Z", "z"):
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            offset = _dt.timedelta(hours=hours, minutes=minutes)
            tz = _dt.timezone(offset if zone[0] == "+" else -offset)
        moment = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise ProtoJsonError(f"{_where(field)}: impossible timestamp {text!r:.40} ({exc})") from None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return int(moment.timestamp()) * _NANOS + nanos


# -- enums -----------------------------------------------------------------------------------------


def code_rate_to_proto(code_rate: str) -> str:
    """``"4/5"`` -> ``"CR_4_5"`` (``"4/5LI"`` -> ``"CR_LI_4_5"``); ProtoJsonError for anything else."""
    match = _PLAIN_CODE_RATE_RE.match(code_rate.strip()) if isinstance(code_rate, str) else None
    if match is None:
        raise ProtoJsonError(f"code rate: expected \"4/5\" .. \"4/8\", got {code_rate!r}")
    num, den, li = match.groups()
    return f"CR_{'LI_' if li else ''}{num}_{den}"


def code_rate_from_proto(value: Any, field: str = "codeRate") -> str:
    """``"CR_4_5"`` -> ``"4/5"``; ProtoJsonError for CR_UNDEFINED, a number or an unknown name."""
    text = parse_string(value, field)
    match = _CODE_RATE_RE.match(text)
    if match is None:
        raise ProtoJsonError(f"{_where(field)}: expected a CodeRate name like \"CR_4_5\", got {text!r:.40}")
    li, num, den = match.groups()
    return f"{num}/{den}{'LI' if li else ''}"


# -- default omission ------------------------------------------------------------------------------


def _is_default(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | bytes | list | tuple):
        return len(value) == 0
    return False  # messages (dicts) are present once set, even when empty


def without_defaults(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without default-valued scalars and empty lists, recursively (EmitUnpopulated=false).

    Nested messages stay, even empty (a set oneof such as ``{"immediately":{}}``); list items stay
    (a DownlinkTxAckItem with status IGNORED is ``{}``).
    """
    out: dict[str, Any] = {}
    for key, value in message.items():
        if isinstance(value, dict):
            out[key] = without_defaults(value)
        elif isinstance(value, list | tuple):
            if value:
                out[key] = [without_defaults(v) if isinstance(v, dict) else v for v in value]
        elif not _is_default(value):
            out[key] = value
    return out
