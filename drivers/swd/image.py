"""Firmware images: .bin (at an address), Intel .hex, ELF; their bytes by address, hash and version.

The segments are read the way ``pyocd load`` reads them (intelhex for .hex, the PT_LOAD program
headers at their physical addresses for ELF), so what :class:`~drivers.swd.SwdProbe` compares,
programs and verifies is exactly the image's content. The hash is the SHA-256 of the file (what
``sha256sum`` prints); the version is the first ``<major>.<minor>.<patch>`` in a printable string of
the image (e.g. ``"relay fw 1.4.2"``), or None.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("bin", "hex", "elf", "axf")
_VERSION = re.compile(rb"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,4}(?:[-+][0-9A-Za-z.]{1,20})?)(?![\d.])")


class ImageError(ValueError):
    """A firmware image that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Segment:
    """Bytes the image puts at ``address``."""

    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware image read from disk."""

    path: Path
    format: str
    sha256: str
    segments: tuple[Segment, ...]
    version: str | None

    @property
    def size(self) -> int:
        """Bytes the image puts into memory (all segments)."""
        return sum(len(s.data) for s in self.segments)

    def describe(self) -> str:
        spans = ", ".join(f"0x{s.address:08X}..0x{s.end - 1:08X}" for s in self.segments)
        return f"{self.path.name} ({self.format}, {self.size} bytes at {spans}, sha256 {self.sha256[:12]}...)"


def load_image(path: str | Path, *, base_address: int | None = None, default_base: int | None = None) -> FirmwareImage:
    """Read ``path`` (format from its extension). A .bin goes at ``base_address``, else at
    ``default_base`` (the target's boot memory); ImageError naming the file on any problem."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ImageError(f"{path}: unknown firmware image format {path.suffix or '(no extension)'!r} "
                         f"(expected .bin, .hex or .elf)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the firmware image ({exc.strerror or type(exc).__name__})") from None
    if fmt != "bin" and base_address is not None:
        raise ImageError(f"{path}: base_address is for .bin images; a .{fmt} image carries its own addresses")
    if fmt == "bin":
        address = base_address if base_address is not None else default_base
        if address is None:
            raise ImageError(f"{path}: a .bin image needs a base address (the target has no boot memory)")
        segments = [Segment(address, raw)] if raw else []
    elif fmt == "hex":
        segments = _hex_segments(path, raw)
    else:
        segments = _elf_segments(path, raw)
    segments = _merged(path, segments)
    if not segments:
        raise ImageError(f"{path}: the image holds no data to program")
    content = b"".join(s.data for s in segments)
    return FirmwareImage(path=path, format="elf" if fmt == "axf" else fmt, sha256=hashlib.sha256(raw).hexdigest(),
                         segments=tuple(segments), version=image_version(content))


def image_version(content: bytes) -> str | None:
    """The first ``x.y.z`` version inside a printable run of ``content``, or None."""
    for run in re.finditer(rb"[\x20-\x7e]{5,}", content):
        match = _VERSION.search(run.group())
        if match:
            return match.group(1).decode("ascii")
    return None


def _hex_segments(path: Path, raw: bytes) -> list[Segment]:
    from intelhex import IntelHex, IntelHexError

    ih = IntelHex()
    try:
        ih.loadhex(io.StringIO(raw.decode("ascii")))
    except (IntelHexError, UnicodeDecodeError, ValueError) as exc:
        raise ImageError(f"{path}: not a valid Intel HEX file: {exc}") from None
    return [Segment(start, ih.tobinstr(start=start, end=end - 1)) for start, end in ih.segments()]


def _elf_segments(path: Path, raw: bytes) -> list[Segment]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(raw))
        return [Segment(seg["p_paddr"], seg.data()[: seg["p_filesz"]]) for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
    except (ELFError, ValueError, KeyError) as exc:  # pyelftools raises these on malformed files
        raise ImageError(f"{path}: not a valid ELF file: {exc}") from None


def _merged(path: Path, segments: list[Segment]) -> list[Segment]:
    """Sorted by address, adjacent segments joined; overlapping ones are an ImageError."""
    out: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.address):
        if out and out[-1].end == seg.address:
            out[-1] = Segment(out[-1].address, out[-1].data + seg.data)
        elif out and seg.address < out[-1].end:
            raise ImageError(f"{path}: two segments overlap at 0x{seg.address:08X}")
        else:
            out.append(seg)
    return out
