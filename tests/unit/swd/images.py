"""Firmware images for the SWD tests, built in Python (no ARM toolchain): .bin, Intel .hex, ELF."""

from __future__ import annotations

import struct
from pathlib import Path

from intelhex import IntelHex

FLASH = 0x08000000
SRAM = 0x20000000
VERSION = "relay fw 2.3.4"


def firmware(size: int = 4096, seed: int = 1) -> bytes:
    """A Cortex-M image: initial SP, reset vector, a version string, then deterministic "code"."""
    head = struct.pack("<II", SRAM + 0x4000, FLASH + 0x101) + VERSION.encode() + b"\x00"
    body = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size - len(head)))
    return head + body


def write_bin(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_hex(path: Path, chunks: list[tuple[int, bytes]]) -> Path:
    ih = IntelHex()
    for address, data in chunks:
        ih.puts(address, data)
    with path.open("w") as f:
        ih.write_hex_file(f)
    return path


def write_elf(path: Path, segments: list[tuple[int, int, bytes, int]]) -> Path:
    """A minimal ELF32 ARM executable: one PT_LOAD per (paddr, vaddr, data, memsz), no sections."""
    phoff, phentsize = 52, 32
    offset = phoff + phentsize * len(segments)
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)  # 32-bit, little-endian, version 1
    header = struct.pack("<16sHHIIIIIHHHHHH", ident, 2, 40, 1, FLASH + 0x101, phoff, 0, 0x05000000,
                         52, phentsize, len(segments), 40, 0, 0)
    phdrs, blobs = b"", b""
    for paddr, vaddr, data, memsz in segments:
        phdrs += struct.pack("<IIIIIIII", 1, offset + len(blobs), vaddr, paddr, len(data), memsz, 5, 4)
        blobs += data
    path.write_bytes(header + phdrs + blobs)
    return path
