"""Random and mutated bytes only ever raise FrameError from the decoder (never IndexError etc.)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hil.lorawan import maccommands
from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError
from hil.lorawan.frames import EncryptedJoinAccept, JoinAccept, decode
from tests.unit import strategies as s

KEY = AESKey(bytes(range(16)))


def _decode_all_the_way(data: bytes) -> None:
    try:
        frame = decode(data)
        if isinstance(frame, EncryptedJoinAccept):
            frame.decrypt(KEY)
    except FrameError:
        pass


@settings(max_examples=3000)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _decode_all_the_way(data)


@settings(max_examples=1000)
@given(st.integers(0, 7), st.binary(max_size=64))
def test_every_mtype_with_random_body(mtype: int, body: bytes) -> None:
    _decode_all_the_way(bytes((mtype << 5,)) + body)


@settings(max_examples=1000)
@given(s.data_frames(), st.integers(0, 1000), st.binary(min_size=1, max_size=3))
def test_mutated_valid_frames(frame, where: int, junk: bytes) -> None:  # type: ignore[no-untyped-def]
    wire = bytearray(frame.to_bytes())
    i = where % len(wire)
    wire[i : i + len(junk)] = junk
    _decode_all_the_way(bytes(wire))
    _decode_all_the_way(bytes(wire[: where % (len(wire) + 1)]))  # truncated anywhere


@given(st.binary(max_size=33))
def test_join_accept_plaintext_parser(data: bytes) -> None:
    try:
        JoinAccept.from_plaintext(data)
    except FrameError:
        pass


@given(st.binary(max_size=40), st.booleans())
def test_mac_command_parser(data: bytes, uplink: bool) -> None:
    try:
        maccommands.parse(data, uplink=uplink)
    except FrameError:
        pass
