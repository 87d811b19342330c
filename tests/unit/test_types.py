"""Identifiers: display form big-endian, wire form little-endian, in one place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64, DevAddr, NetID


def test_display_and_wire() -> None:
    eui = EUI64.parse("70-B3-D5-7E-D0-00-00-01")
    assert str(eui) == "70b3d57ed0000001"
    assert eui.wire == bytes.fromhex("010000d07ed5b370")
    assert EUI64.from_wire(eui.wire) == eui
    assert DevAddr.parse("26011BDA").wire.hex() == "da1b0126"
    assert NetID.parse("000013").wire.hex() == "130000"
    assert repr(DevAddr(1)) == "DevAddr('00000001')"


@pytest.mark.parametrize("text", ["", "123", "zz00000000000000", "70b3d57ed000000101"])
def test_bad_display_forms(text: str) -> None:
    with pytest.raises(FrameError, match="16 hex digits"):
        EUI64.parse(text)


def test_out_of_range() -> None:
    with pytest.raises(FrameError, match="does not fit"):
        DevAddr(1 << 32)
    with pytest.raises(FrameError, match="needs 3 bytes"):
        NetID.from_wire(b"\x00\x01")


@given(st.integers(0, 2**64 - 1))
def test_round_trips(value: int) -> None:
    eui = EUI64(value)
    assert EUI64.parse(str(eui)) == eui == EUI64.from_wire(eui.wire)
    assert eui.display == eui.wire[::-1]
