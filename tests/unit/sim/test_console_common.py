"""What every console dialect shares: the factory, the dead UART of an unpowered DUT, line
endings, malformed and overlong input, rig bugs, and clean shutdown."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from hil.lorawan.types import DevAddr
from hil.sim.dut.console import LineAssembler, UnknownDialectError, known_dialects, open_console
from hil.sim.dut.console.lora_e5 import LoraE5Dialect
from hil.sim.dut.console.rak3172 import Rak3172Dialect
from hil.sim.dut.interfaces import Joined
from hil.sim.scheduler import Scheduler
from tests.unit.sim.fake_firmware import FakeFirmware, command, open_serial, read_until

SYNC = {"rak3172": b"\r\nOK\r\n", "lora-e5": b"+AT: OK\r\n"}
OVERLONG = {"rak3172": b"\r\nAT_ERROR\r\n", "lora-e5": b"+AT: ERROR(-21)\r\n"}
INTERNAL = {"rak3172": b"\r\nAT_ERROR\r\n", "lora-e5": b"+AT: ERROR(-1)\r\n"}
RAK_BANNER_END = b"LoRaWAN.\r\n"


@pytest.fixture(params=["rak3172", "lora-e5"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


# -- factory ------------------------------------------------------------------------------------


def test_known_dialects() -> None:
    assert known_dialects() == ("lora-e5", "rak3172")


def test_unknown_dialect_lists_the_known_ones(fw: FakeFirmware, scheduler: Scheduler) -> None:
    with pytest.raises(UnknownDialectError, match=r"'rn2483'.*known: lora-e5, rak3172"):
        open_console("rn2483", fw, scheduler)
    assert fw.listener_count == 0


@pytest.mark.parametrize(("name", "cls"), [("RAK3172", Rak3172Dialect), ("rui3", Rak3172Dialect), ("lora_e5", LoraE5Dialect), ("Wio-E5", LoraE5Dialect)])
def test_dialect_names_and_aliases(fw: FakeFirmware, scheduler: Scheduler, name: str, cls: type) -> None:
    with open_console(name, fw, scheduler) as con:
        assert isinstance(con.dialect, cls)


# -- dead UART while not running ----------------------------------------------------------------


def test_unpowered_dut_is_silent(fw: FakeFirmware, scheduler: Scheduler, dialect: str) -> None:
    fw.power_off()
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        sent = b"AT\r\nhelp\r\nAT+VER=?\r\nset datarate SF9\r\n"
        ser.write(sent)
        assert con.wait_received(len(sent), timeout=2.0)
        fw.emit(Joined(DevAddr("26015F66")))  # an event of a dead DUT prints nothing either
        assert fw.relay_spreading_factor == 7
        fw.power_on()
        if dialect == "rak3172":  # the banner is the first thing that comes
            assert read_until(ser, RAK_BANNER_END).startswith(b"RAKwireless rak3172 Example\r\n")
        assert command(ser, "AT", SYNC[dialect]) == SYNC[dialect]


def test_partial_line_is_lost_with_power(fw: FakeFirmware, scheduler: Scheduler) -> None:
    with open_console("rak3172", fw, scheduler) as con, open_serial(con.path) as ser:
        ser.write(b"AT+VE")
        assert con.wait_received(5, timeout=2.0)
        fw.power_off()
        fw.power_on()
        read_until(ser, RAK_BANNER_END)
        # "R=?" alone is not an AT line: the half line typed before the power cut is gone
        assert command(ser, "R=?", b"ERROR\r\n") == b"\r\nAT_ERROR\r\n"


def test_commands_after_a_reset_in_the_same_chunk_are_lost(fw: FakeFirmware, scheduler: Scheduler) -> None:
    class SlowBootFirmware(FakeFirmware):
        def reset(self) -> None:  # stays down until the test boots it
            self.resets.append("reset")
            self._running = False

    slow = SlowBootFirmware()
    with open_console("rak3172", slow, scheduler) as con, open_serial(con.path) as ser:
        sent = b"ATZ\r\nAT+CFM=1\r\n"
        ser.write(sent)
        assert con.wait_received(len(sent), timeout=2.0)
        slow.power_on()
        read_until(ser, RAK_BANNER_END)
        assert command(ser, "AT+CFM=?", SYNC["rak3172"]) == b"AT+CFM=0\r\n" + SYNC["rak3172"]


# -- line endings and malformed input -----------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"])
def test_line_endings(fw: FakeFirmware, scheduler: Scheduler, dialect: str, eol: bytes) -> None:
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        assert command(ser, "AT", SYNC[dialect], eol=eol) == SYNC[dialect]


def test_several_lines_in_one_write_and_one_line_in_pieces(fw: FakeFirmware, scheduler: Scheduler, dialect: str) -> None:
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        burst = b"AT\rAT\nAT\r\n\r\n\n"
        ser.write(burst)
        assert b"".join(read_until(ser, SYNC[dialect]) for _ in range(3)) == SYNC[dialect] * 3
        ser.write(b"A")
        assert con.wait_received(len(burst) + 1, timeout=2.0)
        assert command(ser, "T", SYNC[dialect]) == SYNC[dialect]


def test_overlong_line(fw: FakeFirmware, scheduler: Scheduler, dialect: str) -> None:
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        ser.write(b"AT+" + b"A" * 600 + b"\r\n")
        assert read_until(ser, OVERLONG[dialect][-6:]) == OVERLONG[dialect]
        assert command(ser, "AT", SYNC[dialect]) == SYNC[dialect]  # exactly one error, then normal


def test_a_flood_of_garbage_without_line_end(fw: FakeFirmware, scheduler: Scheduler, dialect: str) -> None:
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        flood = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") * 200  # ~50 KB, no line end
        ser.write(flood)
        assert con.wait_received(len(flood), timeout=5.0)
        ser.write(b"\r\n")
        assert read_until(ser, OVERLONG[dialect][-6:]) == OVERLONG[dialect]
        assert command(ser, "AT", SYNC[dialect]) == SYNC[dialect]


def test_line_assembler_limits() -> None:
    lines = LineAssembler(max_line=5)
    assert lines.feed(b"12345\r") == ["12345"]
    items = lines.feed(b"123456\r\n1")
    assert [repr(i) for i in items] == ["OVERLONG"]
    assert lines.feed(b"2\n") == ["12"]


def test_a_rig_bug_gets_the_dialect_error_and_is_logged_without_arguments(
    fw: FakeFirmware, scheduler: Scheduler, dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    class BuggyFirmware(FakeFirmware):
        def set_app_key(self, key: object) -> None:
            raise RuntimeError(f"NVM write failed for {key!r}")

    buggy = BuggyFirmware()
    key = "2B7E151628AED2A6ABF7158809CF4F3C"
    text = f"AT+APPKEY={key}" if dialect == "rak3172" else f"AT+KEY=APPKEY,{key}"
    with open_console(dialect, buggy, scheduler) as con, open_serial(con.path) as ser:
        assert command(ser, text, INTERNAL[dialect][-6:]) == INTERNAL[dialect]
        assert command(ser, "AT", SYNC[dialect]) == SYNC[dialect]
    assert "RuntimeError" in caplog.text
    assert key.lower() not in caplog.text.lower()


# -- shutdown -----------------------------------------------------------------------------------


def test_close_leaves_no_thread_fd_or_listener(fw: FakeFirmware, scheduler: Scheduler, dialect: str) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    threads_before = set(threading.enumerate())
    con = open_console(dialect, fw, scheduler)
    with open_serial(con.path) as ser:
        assert command(ser, "AT", SYNC[dialect]) == SYNC[dialect]
    assert fw.listener_count == 1
    con.close()
    con.close()
    assert fw.listener_count == 0
    assert set(threading.enumerate()) == threads_before
    assert set(os.listdir("/proc/self/fd")) == fds_before
    fw.emit(Joined(DevAddr("26015F66")))  # after close: nobody listens, nothing breaks


def test_close_cancels_scheduled_work(fw: FakeFirmware, scheduler: Scheduler) -> None:
    con = open_console("rak3172", fw, scheduler)
    with open_serial(con.path) as ser:
        command(ser, "AT+JOIN=1:0:100:3", SYNC["rak3172"])
        from hil.sim.dut.interfaces import JoinFailed

        fw.emit(JoinFailed("rx_timeout"))
        read_until(ser, b"TIMEOUT\r\n")
    assert scheduler.pending() == 1
    con.close()
    assert scheduler.pending() == 0


def test_no_log_noise_for_normal_use(fw: FakeFirmware, scheduler: Scheduler, dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hil.sim.dut.console")
    with open_console(dialect, fw, scheduler) as con, open_serial(con.path) as ser:
        command(ser, "AT", SYNC[dialect])
    assert caplog.records == []
