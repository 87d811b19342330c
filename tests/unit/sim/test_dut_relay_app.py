"""The relay application (relay protocol v1) inside the virtual DUT, on a fake MAC."""

from __future__ import annotations

import zlib

import pytest

from hil.relay.protocol import Command, RelayKey, RelayMessage, Status, decode, encode
from hil.sim.dut.interfaces import RelayChanged
from hil.sim.dut.relay_app import relay_key_k
from tests.unit.sim.fake_mac import RELAY_PASSPHRASE, DutBench

KEY = RelayKey(RELAY_PASSPHRASE)
W = 0.0035
SET_ON_FCNT7 = bytes.fromhex("551a07e6e5b9df0042111d09a507ca62cc3797b9")
SYNC_EXPECTED_42 = bytes.fromhex("d07387e669100d8747d93bafd619d7ff667f4119")


def command(cmd: int, fcnt: int, arg: bytes = bytes(6), key: RelayKey = KEY) -> bytes:
    return encode(RelayMessage(cmd, fcnt, Status.OK, arg), key)


def on(state: bool) -> bytes:
    return bytes([int(state)]) + bytes(5)


def ready(expected: int = 0, **kw: object) -> DutBench:
    """A booted, joined relay whose counter is ``expected``; the join's announcement already sent."""
    bench = DutBench(power_on=False, **kw)  # type: ignore[arg-type]
    bench.supply.set_output(True)
    bench.boot()
    if expected:
        bench.fw.view.poke(relay_expected=expected)
        bench.fw.reset()
        bench.run(0.001)
        bench.boot()
    bench.join()
    bench.run(0.5)
    bench.mac.sent.clear()
    return bench


def responses(bench: DutBench) -> list[tuple[float, RelayMessage]]:
    return [(u.at, decode(u.payload, KEY)) for u in bench.mac.sent if u.fport == 10]


# --- vectors --------------------------------------------------------------------------------------


def test_stored_key_is_k_and_matches_the_passphrase_key() -> None:
    k = relay_key_k(RELAY_PASSPHRASE)
    assert k.hex() == "924592b9b103f14f833faafb67f480691f01988aa457c0061769f58cd47311bc"
    stored = RelayKey.from_k(k)
    assert encode(RelayMessage(Command.SET_OUTPUT, 7, Status.OK, on(True)), stored) == SET_ON_FCNT7
    assert "924592" not in repr(stored)


def test_protocol_vector_set_output_fcnt_7_is_executed() -> None:
    bench = ready(expected=7)
    t0 = bench.now
    bench.mac.inject_downlink(SET_ON_FCNT7)
    bench.run(2.0)
    [(at, msg)] = responses(bench)
    assert at == pytest.approx(t0 + W + 1.0)
    assert (msg.cmd, msg.fcnt, msg.status) == (0x81, 7, Status.OK)
    assert msg.relay_state and msg.mains_sensed and msg.output_voltage == 230
    assert bench.fw.view.get("relay_expected") == 8


def test_protocol_vector_sync_response_expected_42() -> None:
    bench = ready(expected=42)
    t0 = bench.now
    bench.mac.inject_downlink(command(Command.NOP, 3))
    bench.run(1.0)
    [u] = bench.mac.sent
    assert u.payload == SYNC_EXPECTED_42
    assert u.at == pytest.approx(t0 + 0.100)


# --- receiving ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame,reason",
    [
        (SET_ON_FCNT7[:19], "length"),
        (SET_ON_FCNT7 + b"\x00", "length"),
        (SET_ON_FCNT7[:5] + bytes([SET_ON_FCNT7[5] ^ 1]) + SET_ON_FCNT7[6:], "outer_crc"),
        (command(Command.SET_OUTPUT, 7, on(True), RelayKey("wrong key")), "inner_crc"),
    ],
)
def test_discarded_frames_get_no_answer(frame: bytes, reason: str) -> None:
    bench = ready(expected=7)
    bench.mac.inject_downlink(frame)
    bench.run(2.0)
    assert bench.mac.sent == [] and bench.fw.relay.discarded == [reason]
    assert bench.fw.view.get("relay_expected") == 7 and not bench.contact.coil_energised


def test_a_block_with_a_valid_outer_crc_but_another_key_is_inner_crc() -> None:
    block = bytes(16)
    bench = ready()
    bench.mac.inject_downlink(block + zlib.crc32(block).to_bytes(4, "little"))
    bench.run(0.5)
    assert bench.fw.relay.discarded == ["inner_crc"] and bench.mac.sent == []


def test_other_fports_are_not_the_relays() -> None:
    bench = ready()
    bench.mac.inject_downlink(command(Command.NOP, 0), fport=11)
    bench.run(0.5)
    assert bench.mac.sent == [] and bench.fw.relay.expected == 0


def test_counter_is_persisted_before_the_command_acts() -> None:
    bench = ready(expected=5)
    t0 = bench.now
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 5, on(True)))
    assert not bench.contact.coil_energised  # not before the counter's word is committed
    assert bench.fw.view.get_committed("relay_expected") == 5
    bench.run(W * 1.01)
    assert bench.fw.view.get_committed("relay_expected") == 6
    assert bench.contact.coil_energised
    assert bench.of(RelayChanged)[-1] == RelayChanged(True)
    assert bench.events[-1][0] == pytest.approx(t0 + W)


def test_a_power_cut_before_the_counter_commit_cancels_the_command() -> None:
    bench = ready(expected=5)
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 5, on(True)))
    bench.run(W / 2)
    bench.supply.set_output(False)
    bench.run(0.1)
    assert not bench.contact.coil_energised and bench.fw.view.get_committed("relay_expected") == 5
    bench.supply.set_output(True)
    bench.boot()
    assert bench.fw.relay.expected == 5 and not bench.contact.coil_energised and not bench.contact.closed
    bench.run(2.0)
    assert bench.mac.sent == [] or all(decode(u.payload, KEY).cmd == 0x83 for u in bench.mac.sent)


@pytest.mark.parametrize("fcnt", [4, 6, 1000])
def test_a_wrong_counter_gets_a_sync_response_after_100_ms(fcnt: int) -> None:
    bench = ready(expected=5)
    t0 = bench.now
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, fcnt, on(True)))
    bench.run(2.0)
    [(at, msg)] = responses(bench)
    assert at == pytest.approx(t0 + 0.100)
    assert (msg.cmd, msg.fcnt, msg.status) == (0x83, 5, Status.OK)
    assert not bench.contact.coil_energised and bench.fw.view.get("relay_expected") == 5


@pytest.mark.parametrize("cmd,answer", [(Command.NOP, 0x80), (Command.GET_OUTPUT, 0x82), (Command.SYNC, 0x83)])
def test_nop_get_sync_are_answered_100_ms_after_acting(cmd: int, answer: int) -> None:
    bench = ready(expected=9)
    t0 = bench.now
    bench.mac.inject_downlink(command(cmd, 9))
    bench.run(1.0)
    [(at, msg)] = responses(bench)
    assert at == pytest.approx(t0 + W + 0.100)
    assert msg.cmd == answer and msg.status == Status.OK
    assert msg.fcnt == (10 if cmd == Command.SYNC else 9)  # SYNC answers with the expected counter
    assert (msg.relay_state, msg.mains_sensed, msg.output_voltage) == (False, False, 0)


def test_unknown_command_is_answered_with_status_1() -> None:
    bench = ready()
    bench.mac.inject_downlink(command(0x05, 0))
    bench.run(1.0)
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.fcnt, msg.status) == (0x85, 0, Status.UNKNOWN_COMMAND)
    assert bench.fw.relay.expected == 1


# --- switching and sensing ------------------------------------------------------------------------


def test_set_drives_coil_then_contact_then_answers_with_sensed_volts() -> None:
    bench = ready()
    t0 = bench.now
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(0.5)
    assert bench.contact.coil_energised and bench.contact.closed
    assert bench.contact.transitions[0][0] == pytest.approx(t0 + W + 0.010)  # operate time after the coil
    assert bench.mac.sent == []
    bench.run(1.0)
    [(at, msg)] = responses(bench)
    assert at == pytest.approx(t0 + W + 1.0)
    assert (msg.cmd, msg.status, msg.relay_state, msg.mains_sensed, msg.output_voltage) == (
        0x81, Status.OK, True, True, 230)
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 1, on(False)))
    bench.run(1.5)
    msg = responses(bench)[-1][1]
    assert (msg.relay_state, msg.mains_sensed, msg.output_voltage, msg.status) == (False, False, 0, Status.OK)
    assert not bench.contact.closed


def test_set_without_mains_reports_an_output_fault() -> None:
    bench = ready()
    bench.contact.mains_present = False
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(1.5)
    msg = responses(bench)[-1][1]
    assert (msg.status, msg.relay_state, msg.mains_sensed, msg.output_voltage) == (
        Status.OUTPUT_FAULT, True, False, 0)
    bench.mac.inject_downlink(command(Command.GET_OUTPUT, 1))
    bench.run(0.5)
    assert responses(bench)[-1][1].status == Status.OUTPUT_FAULT


def test_after_a_power_cycle_the_relay_comes_up_off_and_announces_it() -> None:
    bench = ready()
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(1.5)
    assert bench.fw.view.get_committed("relay_state") is True  # SET persists the commanded state
    bench.power_cycle()
    bench.run(0.02)
    assert not bench.contact.coil_energised  # off while unpowered and booting
    bench.boot()
    bench.run(0.05)
    assert not bench.contact.coil_energised and not bench.contact.closed  # the documented safe state
    assert not bench.fw.relay.state and bench.fw.relay.expected == 1  # the counter survives
    assert bench.fw.view.get_committed("relay_state") is False  # NVM says off too
    bench.mac.accept_join()  # it rejoins by itself after boot, then announces
    bench.run(0.2)
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.fcnt, msg.relay_state, msg.mains_sensed, msg.output_voltage) == (0x83, 1, False, False, 0)


def test_unsolicited_sync_after_boot_with_a_session_and_after_each_join() -> None:
    bench = DutBench()
    bench.boot()
    assert bench.mac.sent == []  # no session yet
    bench.join()
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.fcnt) == (0x83, 0)
    bench.fw.view.poke(relay_expected=12)
    bench.fw.reset()
    bench.run(0.1)
    bench.boot()  # auto-join
    bench.mac.accept_join()
    bench.run(0.2)
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.fcnt) == (0x83, 12)


def test_responses_wait_while_the_mac_is_busy() -> None:
    bench = ready(device_class="A")
    bench.macs.airtime_s = 0.5
    bench.mac.airtime_s = 0.5
    assert bench.fw.send(1, b"busy", False) is None
    bench.run(0.001)
    bench.mac.inject_downlink(command(Command.NOP, 0))
    bench.run(0.2)
    assert [u.fport for u in bench.mac.sent] == [1]  # the response waits for the MAC
    bench.run(1.0)
    assert [u.fport for u in bench.mac.sent] == [1, 10]
    assert bench.mac.sent[1].at >= bench.mac.sent[0].at + 0.5


def test_without_a_key_commands_are_discarded_until_one_is_set() -> None:
    bench = ready(relay_passphrase=None)
    bench.mac.inject_downlink(command(Command.NOP, 0))
    bench.run(0.5)
    assert bench.fw.relay.discarded == ["no_key"] and bench.mac.sent == []
    bench.fw.set_relay_passphrase(RELAY_PASSPHRASE)
    bench.run(0.1)
    assert bench.fw.view.get("relay_key").reveal() == relay_key_k(RELAY_PASSPHRASE)
    assert RELAY_PASSPHRASE.encode() not in bench.nvm.image()
    bench.mac.inject_downlink(command(Command.NOP, 0))
    bench.run(0.5)
    assert responses(bench)[-1][1].cmd == 0x80


# --- defects --------------------------------------------------------------------------------------


def test_defect_sync_silent() -> None:
    bench = ready(expected=5, defects=frozenset({"sync_silent"}))
    bench.mac.inject_downlink(command(Command.NOP, 4))
    bench.run(1.0)
    assert bench.mac.sent == []
    bench.mac.inject_downlink(command(Command.SYNC, 5))  # a correct counter is still answered
    bench.run(1.0)
    assert responses(bench)[-1][1].fcnt == 6


def test_defect_relay_accepts_replay() -> None:
    bench = ready(expected=5, defects=frozenset({"relay_accepts_replay"}))
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 2, on(True)))
    bench.run(1.5)
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.fcnt) == (0x81, 2) and bench.contact.coil_energised
    assert bench.fw.view.get("relay_expected") == 5  # unchanged
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 9, on(False)))  # ahead: still refused
    bench.run(1.5)
    assert responses(bench)[-1][1].cmd == 0x83 and bench.contact.coil_energised


def test_without_the_defect_a_replay_is_refused() -> None:
    bench = ready(expected=5)
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 2, on(True)))
    bench.run(1.5)
    assert responses(bench)[-1][1].cmd == 0x83 and not bench.contact.coil_energised


def test_defect_relay_feedback_lies() -> None:
    bench = ready(defects=frozenset({"relay_feedback_lies"}))
    bench.contact.mains_present = False
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(1.5)
    msg = responses(bench)[-1][1]
    assert (msg.status, msg.mains_sensed, msg.output_voltage) == (Status.OK, True, 230)
    assert bench.contact.output_voltage_rms() == 0.0


def test_defect_relay_restores_last_state() -> None:
    bench = ready(defects=frozenset({"relay_restores_last_state"}))
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(1.5)
    bench.power_cycle()
    bench.boot()
    bench.run(0.05)
    assert bench.contact.coil_energised and bench.contact.closed  # back on by itself
    assert bench.fw.relay.state and bench.fw.view.get_committed("relay_state") is True
    bench.mac.accept_join()
    bench.run(0.2)
    [(_, msg)] = responses(bench)
    assert (msg.cmd, msg.relay_state, msg.mains_sensed, msg.output_voltage) == (0x83, True, True, 230)


def test_defect_contact_welded() -> None:
    bench = ready(defects=frozenset({"contact_welded"}))
    assert bench.contact.welded
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 0, on(True)))
    bench.run(1.5)
    bench.mac.inject_downlink(command(Command.SET_OUTPUT, 1, on(False)))
    bench.run(1.5)
    msg = responses(bench)[-1][1]
    assert not bench.contact.coil_energised and bench.contact.closed
    assert (msg.status, msg.relay_state, msg.mains_sensed, msg.output_voltage) == (
        Status.OUTPUT_FAULT, False, True, 230)
