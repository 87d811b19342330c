"""The protobuf JSON mapping (Go ``protojson``) for ChirpStack's ``gw.proto`` messages, by hand.

ChirpStack Gateway Bridge with ``marshaler = "json"`` writes and reads protobuf messages as JSON:
field names in lowerCamelCase (the proto names are accepted too), ``bytes`` as standard base64,
enums by name (numbers accepted), ``google.protobuf.Duration`` as ``"1s"`` / ``"1.500s"``,
64-bit integers as strings, and fields at their default value (0, "", false, empty bytes, the
enum's zero) left out. :class:`ProtoReader` reads such a message tolerantly (an omitted field is
its default); :func:`message` builds one, omitting default scalars as protojson does.
"""

from __future__ import annotations

import base64
import binascii
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
    "message",
]

# gw.proto CodeRate, in enum-number order (CR_UNDEFINED = 0).
CODE_RATES: tuple[str, ...] = (
    "CR_UNDEFINED", "CR_4_5", "CR_4_6", "CR_4_7", "CR_4_8", "CR_3_8", "CR_2_6", "CR_1_4", "CR_1_6", "CR_5_6",
    "CR_LI_4_5", "CR_LI_4_6", "CR_LI_4_8",
)

_MAX_DURATION_S = 315_576_000_000  # protobuf Duration range: +-10 000 years
_DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
_UINT32_MAX = 2**32 - 1


class ProtoJsonError(ValueError):
    """A protobuf-JSON value is missing, of the wrong type or malformed; the message names the field."""


def camel(name: str) -> str:
    """A proto field name in protojson's lowerCamelCase: ``phy_payload`` -> ``phyPayload``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -- scalars -----------------------------------------------------------------------------------


def encode_bytes(data: bytes) -> str:
    """``bytes`` as protojson writes them: standard base64 with padding."""
    return base64.b64encode(bytes(data)).decode("ascii")


def decode_bytes(value: object, where: str = "bytes") -> bytes:
    """A protojson ``bytes`` value: standard or URL-safe base64, with or without padding."""
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


def encode_duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` as protojson writes it: ``"1s"``, ``"1.500s"``, ``"-0.000001s"``."""
    if not math.isfinite(seconds):
        raise ProtoJsonError(f"duration: expected a finite number of seconds, got {seconds!r}")
    nanos_total = round(abs(seconds) * 1_000_000_000)
    whole, nanos = divmod(nanos_total, 1_000_000_000)
    if whole > _MAX_DURATION_S:
        raise ProtoJsonError(f"duration: {seconds!r} s is beyond the protobuf range of +-{_MAX_DURATION_S} s")
    sign = "-" if seconds < 0 and nanos_total else ""
    if nanos == 0:
        return f"{sign}{whole}s"
    if nanos % 1_000_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000_000:03d}s"
    if nanos % 1_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000:06d}s"
    return f"{sign}{whole}.{nanos:09d}s"


def decode_duration(value: object, where: str = "duration") -> float:
    """A protojson Duration (``"5s"``, ``"1.5s"``, ``"-0.25s"``) in seconds."""
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ProtoJsonError(f"{where}: expected a duration like \"1s\" or \"1.500s\", got {_show(value)}")
    sign, whole, frac = match.groups()
    seconds = int(whole) + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    if int(whole) > _MAX_DURATION_S:
        raise ProtoJsonError(f"{where}: {value} is beyond the protobuf range of +-{_MAX_DURATION_S} s")
    return -seconds if sign else seconds


def code_rate_to_enum(code_rate: str) -> str:
    """``"4/5"`` -> ``"CR_4_5"`` (``"4/5LI"`` -> ``"CR_LI_4_5"``); ProtoJsonError for an unknown rate."""
    text = code_rate.strip().upper()
    li = text.endswith("LI")
    core = text[:-2] if li else text
    name = f"CR_{'LI_' if li else ''}{core.replace('/', '_')}"
    if "/" not in core or name not in CODE_RATES[1:]:
        raise ProtoJsonError(f"code rate: expected one of 4/5, 4/6, 4/7, 4/8, ... , got {code_rate!r}")
    return name


def code_rate_from_enum(value: object, where: str = "codeRate") -> str | None:
    """``"CR_4_5"`` (or its number 1) -> ``"4/5"``; None for CR_UNDEFINED / omitted."""
    name = _enum_name(value, CODE_RATES, where)
    if name == "CR_UNDEFINED":
        return None
    parts = name.split("_")[1:]
    if parts[0] == "LI":
        return f"{parts[1]}/{parts[2]}LI"
    return f"{parts[0]}/{parts[1]}"


def _enum_name(value: object, names: Sequence[str], where: str) -> str:
    if value is None:
        return names[0]
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    raise ProtoJsonError(f"{where}: expected one of {', '.join(names)}, got {_show(value)}")


def _show(value: object, limit: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- messages ----------------------------------------------------------------------------------


def message(**fields: Any) -> dict[str, Any]:
    """A protojson object from snake_case fields, leaving out default scalars like protojson does.

    Scalars equal to their proto default (None, 0, 0.0, "", False, b"", []) are omitted; a
    sub-message (a dict) is kept even when empty, because a set message is not a default
    (``{"immediately": {}}``, a DownlinkTxAckItem ``{}``). Bytes are base64-encoded.
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, dict):
            out[camel(name)] = value
            continue
        if value is None or (not isinstance(value, bool) and value in (0, "", b"")) or value is False:
            continue
        if isinstance(value, list) and not value:
            continue
        if isinstance(value, (bytes, bytearray)):
            value = encode_bytes(value)
        out[camel(name)] = value
    return out


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the bridge publishes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


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
        if value is None:
            return ProtoReader({}, self.where(name))
        if not isinstance(value, dict):
            raise ProtoJsonError(f"{self.where(name)}: expected an object, got {_show(value)}")
        return ProtoReader(value, self.where(name))

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
            if item is None:
                item = {}
            if not isinstance(item, dict):
                raise ProtoJsonError(f"{where}: expected an object, got {_show(item)}")
            out.append(ProtoReader(item, where))
        return out

    def integer(self, name: str, lo: int = -(2**31), hi: int = 2**31 - 1) -> int:
        """An integer field (a JSON number with no fraction, or a decimal string); 0 if omitted."""
        value = self.raw(name)
        if value is None:
            return 0
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            number = int(value)
        if number is None or not lo <= number <= hi:
            raise ProtoJsonError(f"{self.where(name)}: expected an integer in {lo}..{hi}, got {_show(value)}")
        return number

    def uint32(self, name: str) -> int:
        """A uint32 field; 0 if omitted."""
        return self.integer(name, 0, _UINT32_MAX)

    def int32(self, name: str) -> int:
        """An int32 field; 0 if omitted."""
        return self.integer(name)

    def double(self, name: str) -> float:
        """A float/double field (a number, a numeric string, "NaN", "Infinity"); 0.0 if omitted."""
        value = self.raw(name)
        if value is None:
            return 0.0
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ProtoJsonError(f"{self.where(name)}: expected a number, got {_show(value)}")

    def string(self, name: str) -> str:
        """A string field; "" if omitted."""
        value = self.raw(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ProtoJsonError(f"{self.where(name)}: expected a string, got {_show(value)}")
        return value

    def boolean(self, name: str) -> bool:
        """A bool field; False if omitted."""
        value = self.raw(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise ProtoJsonError(f"{self.where(name)}: expected true or false, got {_show(value)}")
        return value

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
