"""The RAK3172 / RUI3 console dialect over a real pty, against the fake firmware."""

from __future__ import annotations

import logging

import pytest
import serial

from hil.lorawan.crypto import AESKey
from hil.lorawan.region import get_region
from hil.lorawan.types import EUI64, DevAddr
from hil.sim.dut.console import Console, open_console
from hil.sim.dut.interfaces import DownlinkReceived, Joined, JoinFailed, TxDone
from hil.sim.scheduler import Scheduler
from tests.unit.sim.fake_firmware import FakeFirmware, command, open_serial, read_until

OK = b"\r\nOK\r\n"
APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
NWK_KEY = "603DEB1015CA71BE2B73AEF0857D7781"


def status(word: str) -> bytes:
    return b"\r\n" + word.encode() + b"\r\n"


@pytest.fixture
def console(fw: FakeFirmware, scheduler: Scheduler):
    con = open_console("rak3172", fw, scheduler)
    yield con
    con.close()


@pytest.fixture
def ser(console: Console):
    with open_serial(console.path) as port:
        yield port


def query(ser: serial.Serial, name: str) -> bytes:
    return command(ser, f"AT+{name}=?", OK)


# -- basics and identity ------------------------------------------------------------------------


def test_at_is_ok(ser: serial.Serial) -> None:
    assert command(ser, "AT", OK) == OK


def test_commands_are_case_insensitive(ser: serial.Serial) -> None:
    assert command(ser, "at+ver=?", OK) == b"AT+VER=4.0.6\r\n" + OK


@pytest.mark.parametrize(
    ("name", "value"),
    [("VER", "4.0.6"), ("HWMODEL", "rak3172"), ("SN", "HILSIM000001"), ("DEVEUI", "70b3d57ed0000001")],
)
def test_identity_queries(ser: serial.Serial, name: str, value: str) -> None:
    assert query(ser, name) == f"AT+{name}={value}\r\n".encode() + OK


def test_read_only_commands_refuse_a_value(ser: serial.Serial) -> None:
    assert command(ser, "AT+VER=1.0", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert command(ser, "AT+NJS=1", b"ERROR\r\n") == status("AT_PARAM_ERROR")


def test_help(ser: serial.Serial) -> None:
    listing = command(ser, "AT?", OK)
    assert b"AT+DEVEUI: get or set the device EUI" in listing
    assert b"AT+SEND:" in listing and listing.endswith(OK)
    assert command(ser, "AT+APPKEY?", OK) == b"AT+APPKEY: get or set the application key (16 bytes in hex)\r\n" + OK
    assert command(ser, "AT+NOPE?", b"FOUND\r\n") == status("AT_COMMAND_NOT_FOUND")


# -- LoRaWAN identity and keys ------------------------------------------------------------------


def test_set_and_query_euis(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, "AT+DEVEUI=0102030405060708", OK) == OK
    assert fw.dev_eui == EUI64("0102030405060708")
    assert command(ser, "AT+APPEUI=A1B2C3D4E5F60718", OK) == OK
    assert fw.join_eui == EUI64("a1b2c3d4e5f60718")
    assert query(ser, "APPEUI") == b"AT+APPEUI=a1b2c3d4e5f60718\r\n" + OK


@pytest.mark.parametrize("value", ["01020304050607", "010203040506070809", "01020304050607GG", "", "01:02:03:04:05:06:07:08"])
def test_bad_eui_is_a_param_error(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    assert command(ser, f"AT+DEVEUI={value}", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert fw.dev_eui == EUI64("70B3D57ED0000001")


def test_app_key_set_and_read_back(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert query(ser, "APPKEY") == b"AT+APPKEY=" + b"0" * 32 + b"\r\n" + OK  # none set yet
    assert command(ser, f"AT+APPKEY={APP_KEY}", OK) == OK
    assert fw.app_key_hex() == APP_KEY.lower()
    assert query(ser, "APPKEY") == f"AT+APPKEY={APP_KEY.lower()}\r\n".encode() + OK


def test_nwk_key_extension(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, f"AT+NWKKEY={NWK_KEY}", OK) == OK
    assert fw.nwk_key_hex() == NWK_KEY.lower()
    assert query(ser, "NWKKEY") == f"AT+NWKKEY={NWK_KEY.lower()}\r\n".encode() + OK


def test_key_read_back_prefers_the_firmware(fw: FakeFirmware, scheduler: Scheduler) -> None:
    # a firmware that exposes its key: the console reads that, not its own copy
    fw.app_key = AESKey(APP_KEY)  # type: ignore[attr-defined]
    with open_console("rak3172", fw, scheduler) as con, open_serial(con.path) as ser:
        assert query(ser, "APPKEY") == f"AT+APPKEY={APP_KEY.lower()}\r\n".encode() + OK


@pytest.mark.parametrize("value", [APP_KEY[:-2], APP_KEY + "00", APP_KEY[:-1] + "X"])
def test_bad_key_is_a_param_error(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    assert command(ser, f"AT+APPKEY={value}", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert fw.app_key_hex() is None


def test_keys_are_never_logged(ser: serial.Serial, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    command(ser, f"AT+APPKEY={APP_KEY}", OK)
    command(ser, f"AT+APPKEY={APP_KEY[:-1]}", b"ERROR\r\n")
    assert APP_KEY.lower() not in caplog.text.lower()
    assert APP_KEY[:-1].lower() not in caplog.text.lower()


# -- LoRaWAN settings ---------------------------------------------------------------------------


def test_join_mode_class_adr_cfm(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert query(ser, "NJM") == b"AT+NJM=1\r\n" + OK
    assert command(ser, "AT+NJM=0", OK) == OK and fw.activation == "abp"
    assert command(ser, "AT+NJM=2", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert command(ser, "AT+CLASS=C", OK) == OK and fw.device_class == "C"
    assert query(ser, "CLASS") == b"AT+CLASS=C\r\n" + OK
    assert command(ser, "AT+CLASS=B", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert command(ser, "AT+ADR=0", OK) == OK and fw.adr is False
    assert query(ser, "ADR") == b"AT+ADR=0\r\n" + OK
    assert query(ser, "CFM") == b"AT+CFM=0\r\n" + OK
    assert command(ser, "AT+CFM=1", OK) == OK
    assert query(ser, "CFM") == b"AT+CFM=1\r\n" + OK


def test_band(ser: serial.Serial) -> None:
    assert query(ser, "BAND") == b"AT+BAND=4\r\n" + OK  # EU868
    assert command(ser, "AT+BAND=4", OK) == OK
    assert command(ser, "AT+BAND=5", b"BAND\r\n") == status("AT_UNSUPPORTED_BAND")
    assert command(ser, "AT+BAND=99", b"ERROR\r\n") == status("AT_PARAM_ERROR")


@pytest.mark.parametrize("region", ["US915", get_region("US915")])
def test_band_follows_the_firmware_region(fw: FakeFirmware, scheduler: Scheduler, region: object) -> None:
    fw.region = region  # type: ignore[attr-defined]  (a name or a Region: FirmwareApi declares none)
    with open_console("rak3172", fw, scheduler) as con, open_serial(con.path) as ser:
        assert query(ser, "BAND") == b"AT+BAND=5\r\n" + OK
        assert command(ser, "AT+DR=4", OK) == OK
        assert command(ser, "AT+DR=5", b"ERROR\r\n") == status("AT_PARAM_ERROR")  # US915 has no uplink DR5


def test_data_rate_and_tx_power(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, "AT+DR=5", OK) == OK and fw.data_rate == 5
    assert query(ser, "DR") == b"AT+DR=5\r\n" + OK
    assert command(ser, "AT+DR=15", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert command(ser, "AT+DR=x", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert command(ser, "AT+TXP=7", OK) == OK and fw.tx_power == 7
    assert query(ser, "TXP") == b"AT+TXP=7\r\n" + OK
    assert command(ser, "AT+TXP=8", b"ERROR\r\n") == status("AT_PARAM_ERROR")


# -- join ---------------------------------------------------------------------------------------


def test_join_then_joined_event(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert query(ser, "NJS") == b"AT+NJS=0\r\n" + OK
    assert command(ser, "AT+JOIN", OK) == OK
    assert fw.join_calls == 1
    fw.emit(Joined(DevAddr("26015F66")))
    assert read_until(ser, b"\r\n") == b"+EVT:JOINED\r\n"
    assert query(ser, "NJS") == b"AT+NJS=1\r\n" + OK


def test_join_with_parameters_and_failure(ser: serial.Serial, fw: FakeFirmware, scheduler: Scheduler) -> None:
    assert command(ser, "AT+JOIN=1:0:8:0", OK) == OK
    assert query(ser, "JOIN") == b"AT+JOIN=1:0:8:0\r\n" + OK
    fw.emit(JoinFailed("rx_timeout"))
    assert read_until(ser, b"\r\n") == b"+EVT:JOIN_FAILED_RX_TIMEOUT\r\n"
    fw.emit(JoinFailed("tx_timeout"))
    assert read_until(ser, b"\r\n") == b"+EVT:JOIN_FAILED_TX_TIMEOUT\r\n"
    assert scheduler.pending() == 0  # attempts 0: no retry


def test_join_retries_after_the_interval(ser: serial.Serial, fw: FakeFirmware, scheduler: Scheduler) -> None:
    assert command(ser, "AT+JOIN=1:0:7:2", OK) == OK
    for attempt in (2, 3):
        fw.emit(JoinFailed("rx_timeout"))
        assert read_until(ser, b"\r\n") == b"+EVT:JOIN_FAILED_RX_TIMEOUT\r\n"
        assert fw.wait_join_calls(attempt)  # 7 rig seconds later (70 ms real)
    fw.emit(JoinFailed("rx_timeout"))
    assert read_until(ser, b"\r\n") == b"+EVT:JOIN_FAILED_RX_TIMEOUT\r\n"
    assert scheduler.pending() == 0  # retries used up
    assert fw.join_calls == 3


def test_join_stop_cancels_retries(ser: serial.Serial, fw: FakeFirmware, scheduler: Scheduler) -> None:
    assert command(ser, "AT+JOIN=1:0:200:5", OK) == OK
    fw.emit(JoinFailed("rx_timeout"))
    read_until(ser, b"\r\n")
    assert scheduler.pending() == 1
    assert command(ser, "AT+JOIN=0", OK) == OK
    assert scheduler.pending() == 0


@pytest.mark.parametrize(("result", "word"), [("busy", "AT_BUSY_ERROR"), ("no_keys", "AT_ERROR")])
def test_join_refused(ser: serial.Serial, fw: FakeFirmware, result: str, word: str) -> None:
    fw.join_result = result
    assert command(ser, "AT+JOIN", b"ERROR\r\n") == status(word)


@pytest.mark.parametrize("value", ["2:0:8:0", "1:0:6:0", "1:0:8:256", "1:0:8:0:1", "1:x", ""])
def test_join_bad_parameters(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    assert command(ser, f"AT+JOIN={value}", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert fw.join_calls == 0


def test_autojoin_after_reboot(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, "AT+JOIN=1:1:8:0", OK) == OK
    assert fw.join_calls == 1
    ser.write(b"ATZ\r\n")
    read_until(ser, b"LoRaWAN.\r\n")
    assert fw.wait_join_calls(2)


# -- send / receive -----------------------------------------------------------------------------


def _join(ser: serial.Serial, fw: FakeFirmware) -> None:
    command(ser, "AT+JOIN", OK)
    fw.emit(Joined(DevAddr("26015F66")))
    read_until(ser, b"+EVT:JOINED\r\n")


def test_send_needs_a_network(ser: serial.Serial) -> None:
    assert command(ser, "AT+SEND=2:0102", b"JOINED\r\n") == status("AT_NO_NETWORK_JOINED")


def test_send_unconfirmed(ser: serial.Serial, fw: FakeFirmware) -> None:
    _join(ser, fw)
    assert command(ser, "AT+SEND=2:DEADbeef", OK) == OK
    assert fw.sent == [(2, bytes.fromhex("deadbeef"), False)]
    fw.emit(TxDone(fcnt=0, confirmed=False))
    assert read_until(ser, b"\r\n") == b"+EVT:TX_DONE\r\n"


@pytest.mark.parametrize(("acked", "line"), [(True, b"+EVT:SEND_CONFIRMED_OK\r\n"), (False, b"+EVT:SEND_CONFIRMED_FAILED(4)\r\n")])
def test_send_confirmed(ser: serial.Serial, fw: FakeFirmware, acked: bool, line: bytes) -> None:
    _join(ser, fw)
    command(ser, "AT+CFM=1", OK)
    assert command(ser, "AT+SEND=10:00", OK) == OK
    assert fw.sent == [(10, b"\x00", True)]
    fw.emit(TxDone(fcnt=0, confirmed=True, acked=acked))
    assert read_until(ser, b"\r\n") == line


@pytest.mark.parametrize("value", ["0:01", "224:01", "2:0", "2:zz", "2", "2:", ":01", "x:01"])
def test_send_bad_parameters(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    _join(ser, fw)
    assert command(ser, f"AT+SEND={value}", b"ERROR\r\n") == status("AT_PARAM_ERROR")
    assert fw.sent == []


@pytest.mark.parametrize(
    ("result", "word"),
    [("busy", "AT_BUSY_ERROR"), ("too_long", "AT_PARAM_ERROR"), ("duty_cycle", "AT_DUTYCYCLE_RESTRICTED")],
)
def test_send_refused_by_the_firmware(ser: serial.Serial, fw: FakeFirmware, result: str, word: str) -> None:
    fw.send_result = result
    assert command(ser, "AT+SEND=2:01", word.encode() + b"\r\n") == status(word)


def test_downlink_report_and_recv(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert query(ser, "RECV") == b"AT+RECV=0:\r\n" + OK
    fw.emit(DownlinkReceived(fport=5, payload=b"\xab\xcd", rssi=-70.4, snr=8.6, slot="1", fcnt=1))
    assert read_until(ser, b"\r\n") == b"+EVT:RX_1:-70:9:UNICAST:5:abcd\r\n"
    fw.emit(DownlinkReceived(fport=10, payload=b"\x01", rssi=-101.0, snr=-7.0, slot="C", fcnt=2))
    assert read_until(ser, b"\r\n") == b"+EVT:RX_C:-101:-7:UNICAST:10:01\r\n"
    assert query(ser, "RECV") == b"AT+RECV=10:01\r\n" + OK


def test_reply_comes_before_the_events_its_command_caused(fw: FakeFirmware, scheduler: Scheduler) -> None:
    class EagerFirmware(FakeFirmware):
        def join(self) -> str | None:  # reports the failure before join() even returns
            result = super().join()
            self.emit(JoinFailed("rx_timeout"))
            return result

    eager = EagerFirmware()
    with open_console("rak3172", eager, scheduler) as con, open_serial(con.path) as ser:
        ser.write(b"AT+JOIN\r\n")
        assert read_until(ser, b"TIMEOUT\r\n") == OK + b"+EVT:JOIN_FAILED_RX_TIMEOUT\r\n"


# -- reboot -------------------------------------------------------------------------------------

BANNER = (
    b"RAKwireless rak3172 Example\r\n"
    b"------------------------------------------------------\r\n"
    b"Version: 4.0.6\r\n"
    b"Current Work Mode: LoRaWAN.\r\n"
)


def test_atz_reboots_and_prints_the_banner(ser: serial.Serial, fw: FakeFirmware) -> None:
    command(ser, "AT+CFM=1", OK)
    ser.write(b"ATZ\r\n")
    assert read_until(ser, b"LoRaWAN.\r\n") == BANNER  # no status line before it
    assert fw.resets == ["reset"]
    assert query(ser, "CFM") == b"AT+CFM=1\r\n" + OK  # settings survive a reset


def test_atr_factory_resets(ser: serial.Serial, fw: FakeFirmware) -> None:
    command(ser, f"AT+APPKEY={APP_KEY}", OK)
    command(ser, "AT+CFM=1", OK)
    ser.write(b"ATR\r\n")
    assert read_until(ser, b"LoRaWAN.\r\n") == OK + BANNER
    assert fw.resets == ["factory_reset"]
    assert fw.app_key_hex() is None
    assert query(ser, "CFM") == b"AT+CFM=0\r\n" + OK
    assert query(ser, "APPKEY") == b"AT+APPKEY=" + b"0" * 32 + b"\r\n" + OK


def test_power_on_banner(fw: FakeFirmware, scheduler: Scheduler) -> None:
    fw.power_off()
    with open_console("rak3172", fw, scheduler) as con, open_serial(con.path) as ser:
        fw.power_on()
        assert read_until(ser, b"LoRaWAN.\r\n") == BANNER


# -- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("AT+FOO=1", "AT_COMMAND_NOT_FOUND"),
        ("ATX", "AT_COMMAND_NOT_FOUND"),
        ("AT+", "AT_COMMAND_NOT_FOUND"),
        ("AT+DEVEUI", "AT_PARAM_ERROR"),
        ("AT+SEND=?", "AT_PARAM_ERROR"),
        ("hello", "AT_ERROR"),
        ("\x00\x01\x7f", "AT_ERROR"),
    ],
)
def test_malformed_lines(ser: serial.Serial, line: str, word: str) -> None:
    assert command(ser, line, word.encode() + b"\r\n") == status(word)
    assert command(ser, "AT", OK) == OK
