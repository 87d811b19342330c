"""Relay command protocol v1: the vectors of relay-protocol.md and the receive checks in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.relay.protocol import (
    Command,
    RelayKey,
    RelayMessage,
    RelayPacketError,
    decode,
    encode,
    response_arg,
)

KEY = RelayKey("01234567")


def test_vectors_from_the_protocol_page() -> None:
    set_on = RelayMessage(Command.SET_OUTPUT, 7, 0, bytes([1, 0, 0, 0, 0, 0]))
    assert set_on.data().hex() == "010700000000010000000000"  # cmd | fcnt LE | status | arg
    assert encode(set_on, KEY).hex() == "551a07e6e5b9df0042111d09a507ca62cc3797b9"
    sync = RelayMessage(0x83, 42, 0, bytes(6))
    assert encode(sync, KEY).hex() == "d07387e669100d8747d93bafd619d7ff667f4119"
    back = decode(bytes.fromhex("d07387e669100d8747d93bafd619d7ff667f4119"), KEY)
    assert back.is_response and back.command == Command.SYNC and back.fcnt == 42


def test_key_is_sha256_of_the_passphrase_and_never_shown() -> None:
    assert repr(KEY) == "RelayKey(****)" and "924592b9" not in repr(KEY)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (bytes(19), "length"),
        (bytes.fromhex("551a07e6e5b9df0042111d09a507ca62cc3797b8"), "outer_crc"),
    ],
)
def test_receive_checks(wire: bytes, reason: str) -> None:
    with pytest.raises(RelayPacketError) as info:
        decode(wire, KEY)
    assert info.value.reason == reason


def test_other_key_fails_inner_crc() -> None:
    wire = encode(RelayMessage(Command.NOP, 1), RelayKey("another"))
    with pytest.raises(RelayPacketError) as info:
        decode(wire, KEY)
    assert info.value.reason == "inner_crc"


def test_response_fields() -> None:
    msg = RelayMessage(0x81, 3, 0x02, response_arg(True, False, 0))
    assert msg.relay_state and not msg.mains_sensed and msg.output_voltage == 0
    assert RelayMessage(0x82, 3, 0, response_arg(False, False, None)).output_voltage is None


@given(st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 255), st.binary(min_size=6, max_size=6))
def test_round_trip(cmd: int, fcnt: int, status: int, arg: bytes) -> None:
    msg = RelayMessage(cmd, fcnt, status, arg)
    assert decode(encode(msg, KEY), KEY) == msg


def test_controller_ignores_a_late_sync_for_an_earlier_retry() -> None:
    """A retry the relay had already executed gets a SYNC carrying the counter the controller has
    since used; that SYNC must not be taken as the answer to the next command."""
    from hil.clock import ManualClock
    from hil.relay.controller import RelayController

    clock = ManualClock()
    sent: list[RelayMessage] = []
    controller = RelayController(KEY, lambda p: sent.append(decode(p, KEY)), clock, counter=5)

    def relay_answers(payload: bytes) -> None:  # the relay: expected is 6 now (5 was executed)
        msg = decode(payload, KEY)
        sent.append(msg)
        controller.deliver(encode(RelayMessage(0x83, 6), KEY))  # late SYNC for the earlier retry of 5
        if msg.fcnt == 6:
            controller.deliver(encode(RelayMessage(0x82, 6, 0, response_arg(True, True, 230)), KEY))

    controller._send = relay_answers  # type: ignore[method-assign]
    controller.counter = 6
    answer = controller.get_output()
    assert answer.cmd == 0x82 and answer.fcnt == 6 and controller.counter == 7
    assert [m.fcnt for m in sent] == [6]  # no resend caused by the stale SYNC
