"""The Seeed LoRa-E5 console dialect over a real pty, against the fake firmware."""

from __future__ import annotations

import logging

import pytest
import serial

from hil.lorawan.types import EUI64, DevAddr
from hil.sim.dut.console import Console, open_console
from hil.sim.dut.console.lora_e5 import net_id_of
from hil.sim.dut.interfaces import DownlinkReceived, Joined, JoinFailed, TxDone
from hil.sim.scheduler import Scheduler
from tests.unit.sim.fake_firmware import FakeFirmware, command, open_serial, read_until

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"


@pytest.fixture
def console(fw: FakeFirmware, scheduler: Scheduler):
    con = open_console("lora-e5", fw, scheduler)
    yield con
    con.close()


@pytest.fixture
def ser(console: Console):
    with open_serial(console.path) as port:
        yield port


def line(ser: serial.Serial, text: str) -> bytes:
    """Send one command and read its one-line reply."""
    return command(ser, text, b"\r\n")


# -- basics and identity ------------------------------------------------------------------------


def test_at(ser: serial.Serial) -> None:
    assert line(ser, "AT") == b"+AT: OK\r\n"
    assert line(ser, "at") == b"+AT: OK\r\n"


@pytest.mark.parametrize("form", ["AT+VER", "AT+VER?", "AT+VER=?", "at+ver"])
def test_version_query_forms(ser: serial.Serial, form: str) -> None:
    assert line(ser, form) == b"+VER: 4.0.6\r\n"


def test_id_lists_three_lines(ser: serial.Serial) -> None:
    assert command(ser, "AT+ID", b"AppEui, 00:00:00:00:00:00:00:00\r\n") == (
        b"+ID: DevAddr, 00:00:00:00\r\n"
        b"+ID: DevEui, 70:B3:D5:7E:D0:00:00:01\r\n"
        b"+ID: AppEui, 00:00:00:00:00:00:00:00\r\n"
    )


def test_set_ids(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert line(ser, 'AT+ID=DevEui,"0102030405060708"') == b"+ID: DevEui, 01:02:03:04:05:06:07:08\r\n"
    assert fw.dev_eui == EUI64("0102030405060708")
    assert line(ser, "AT+ID=AppEui, 80:00:00:00:00:00:00:06") == b"+ID: AppEui, 80:00:00:00:00:00:00:06\r\n"
    assert fw.join_eui == EUI64("8000000000000006")
    assert line(ser, "AT+ID=DevEui") == b"+ID: DevEui, 01:02:03:04:05:06:07:08\r\n"


@pytest.mark.parametrize(
    "text", ['AT+ID=DevEui,"01020304050607"', 'AT+ID=DevEui,"01020304050607GG"', "AT+ID=Foo", 'AT+ID=DevAddr,"01020304"']
)
def test_bad_ids(ser: serial.Serial, fw: FakeFirmware, text: str) -> None:
    assert line(ser, text) == b"+ID: ERROR(-1)\r\n"
    assert fw.dev_eui == EUI64("70B3D57ED0000001")


def test_app_key(ser: serial.Serial, fw: FakeFirmware, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert line(ser, f'AT+KEY=APPKEY,"{APP_KEY.lower()}"') == f"+KEY: APPKEY {APP_KEY}\r\n".encode()
    assert fw.app_key_hex() == APP_KEY.lower()
    assert line(ser, f"AT+KEY=APPKEY,{APP_KEY}") == f"+KEY: APPKEY {APP_KEY}\r\n".encode()
    assert APP_KEY.lower() not in caplog.text.lower()


@pytest.mark.parametrize("text", [f"AT+KEY=APPKEY,{APP_KEY[:-2]}", "AT+KEY=APPKEY", f"AT+KEY=NWKSKEY,{APP_KEY}", "AT+KEY"])
def test_bad_keys(ser: serial.Serial, fw: FakeFirmware, text: str) -> None:
    assert line(ser, text) == b"+KEY: ERROR(-1)\r\n"
    assert fw.app_key_hex() is None


# -- settings -----------------------------------------------------------------------------------


def test_mode(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert line(ser, "AT+MODE") == b"+MODE: LWOTAA\r\n"
    assert line(ser, "AT+MODE=LWABP") == b"+MODE: LWABP\r\n" and fw.activation == "abp"
    assert line(ser, "AT+MODE=TEST") == b"+MODE: ERROR(-1)\r\n"


def test_class(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert line(ser, "AT+CLASS=C") == b"+CLASS: C\r\n" and fw.device_class == "C"
    assert line(ser, "AT+CLASS") == b"+CLASS: C\r\n"
    assert line(ser, "AT+CLASS=B") == b"+CLASS: ERROR(-1)\r\n"


def test_data_rate(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, "AT+DR", b"K \r\n") == b"+DR: DR0\r\n+DR: EU868 DR0  SF12 BW125K \r\n"
    assert line(ser, "AT+DR=DR5") == b"+DR: DR5\r\n" and fw.data_rate == 5
    assert line(ser, "AT+DR=3") == b"+DR: DR3\r\n" and fw.data_rate == 3
    assert line(ser, "AT+DR=EU868") == b"+DR: EU868\r\n"
    assert line(ser, "AT+DR=US915") == b"+DR: ERROR(-1)\r\n"
    assert line(ser, "AT+DR=DR15") == b"+DR: ERROR(-1)\r\n"


def test_adr_and_port(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert line(ser, "AT+ADR=OFF") == b"+ADR: OFF\r\n" and fw.adr is False
    assert line(ser, "AT+ADR") == b"+ADR: OFF\r\n"
    assert line(ser, "AT+ADR=MAYBE") == b"+ADR: ERROR(-1)\r\n"
    assert line(ser, "AT+PORT") == b"+PORT: 8\r\n"
    assert line(ser, "AT+PORT=42") == b"+PORT: 42\r\n"
    assert line(ser, "AT+PORT=0") == b"+PORT: ERROR(-1)\r\n"


def test_frame_counters(ser: serial.Serial, fw: FakeFirmware) -> None:
    fw._fcnt_up, fw._fcnt_down = 17, 4
    assert line(ser, "AT+LW=ULDL") == b"+LW: ULDL, 17, 4\r\n"
    assert line(ser, "AT+LW=VER") == b"+LW: ERROR(-1)\r\n"


# -- join ---------------------------------------------------------------------------------------


def test_join_success(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert command(ser, "AT+JOIN", b"NORMAL\r\n") == b"+JOIN: Start\r\n+JOIN: NORMAL\r\n"
    assert fw.join_calls == 1
    fw.emit(Joined(DevAddr("26015F66")))
    assert read_until(ser, b"Done\r\n") == (
        b"+JOIN: Network joined\r\n+JOIN: NetID 000013 DevAddr 26:01:5F:66\r\n+JOIN: Done\r\n"
    )
    assert line(ser, "AT+JOIN") == b"+JOIN: Joined already\r\n"
    assert fw.join_calls == 1
    assert command(ser, "AT+JOIN=FORCE", b"NORMAL\r\n") == b"+JOIN: Start\r\n+JOIN: NORMAL\r\n"
    assert fw.join_calls == 2


def test_join_failure(ser: serial.Serial, fw: FakeFirmware) -> None:
    command(ser, "AT+JOIN", b"NORMAL\r\n")
    fw.emit(JoinFailed("rx_timeout"))
    assert read_until(ser, b"Done\r\n") == b"+JOIN: Join failed\r\n+JOIN: Done\r\n"


def test_join_busy(ser: serial.Serial, fw: FakeFirmware) -> None:
    fw.join_result = "busy"
    assert line(ser, "AT+JOIN") == b"+JOIN: LoRaWAN modem is busy\r\n"


@pytest.mark.parametrize(
    ("addr", "net_id"), [("26015F66", "000013"), ("FC00AC0B", "C0002B"), ("00000001", "000000"), ("E0123456", "600009")]
)
def test_net_id_of_a_dev_addr(addr: str, net_id: str) -> None:
    assert net_id_of(DevAddr(addr)) == net_id


# -- uplinks ------------------------------------------------------------------------------------


def _join(ser: serial.Serial, fw: FakeFirmware) -> None:
    command(ser, "AT+JOIN", b"NORMAL\r\n")
    fw.emit(Joined(DevAddr("26015F66")))
    read_until(ser, b"+JOIN: Done\r\n")


def test_send_needs_a_network(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert line(ser, 'AT+MSGHEX="0102"') == b"+MSGHEX: Please join network first\r\n"
    assert line(ser, 'AT+CMSGHEX="0102"') == b"+CMSGHEX: Please join network first\r\n"


def test_unconfirmed_uplink(ser: serial.Serial, fw: FakeFirmware) -> None:
    _join(ser, fw)
    command(ser, "AT+PORT=3", b"\r\n")
    assert line(ser, 'AT+MSGHEX="AA BB cc"') == b"+MSGHEX: Start\r\n"
    assert fw.sent == [(3, b"\xaa\xbb\xcc", False)]
    fw.emit(TxDone(fcnt=0, confirmed=False))
    assert read_until(ser, b"\r\n") == b"+MSGHEX: Done\r\n"


def _confirmed_with_downlink(scheduler: Scheduler, fw: FakeFirmware, tx_first: bool) -> None:
    tx = TxDone(fcnt=0, confirmed=True, acked=True)
    rx = DownlinkReceived(fport=3, payload=b"\xab\xcd", rssi=-70.2, snr=8.5, slot="1", fcnt=1)

    def in_one_callback() -> None:  # as the MAC reports at the end of the receive windows
        for event in (tx, rx) if tx_first else (rx, tx):
            fw.emit(event)

    scheduler.call_soon(in_one_callback)


@pytest.mark.parametrize("tx_first", [True, False])
def test_confirmed_uplink_with_ack_and_downlink(ser: serial.Serial, fw: FakeFirmware, scheduler: Scheduler, tx_first: bool) -> None:
    _join(ser, fw)
    assert line(ser, "AT+CMSGHEX=0102") == b"+CMSGHEX: Start\r\n"
    assert fw.sent == [(8, b"\x01\x02", True)]
    _confirmed_with_downlink(scheduler, fw, tx_first)
    assert read_until(ser, b"Done\r\n") == (
        b"+CMSGHEX: Wait ACK\r\n"
        b"+CMSGHEX: ACK Received\r\n"
        b'+CMSGHEX: PORT: 3; RX: "ABCD"\r\n'
        b"+CMSGHEX: RXWIN1, RSSI -70, SNR 8.5\r\n"
        b"+CMSGHEX: Done\r\n"
    )


def test_confirmed_uplink_without_ack(ser: serial.Serial, fw: FakeFirmware) -> None:
    _join(ser, fw)
    line(ser, 'AT+CMSGHEX="00"')
    fw.emit(TxDone(fcnt=0, confirmed=True, acked=False))
    assert read_until(ser, b"Done\r\n") == b"+CMSGHEX: Wait ACK\r\n+CMSGHEX: Done\r\n"


def test_uplink_busy_while_one_is_in_progress(ser: serial.Serial, fw: FakeFirmware) -> None:
    _join(ser, fw)
    line(ser, 'AT+MSGHEX="01"')
    assert line(ser, 'AT+MSGHEX="02"') == b"+MSGHEX: LoRaWAN modem is busy\r\n"
    assert len(fw.sent) == 1


@pytest.mark.parametrize(
    ("result", "reply"),
    [("busy", b"+MSGHEX: LoRaWAN modem is busy\r\n"), ("too_long", b"+MSGHEX: Length error\r\n"), ("bad_port", b"+MSGHEX: ERROR(-1)\r\n")],
)
def test_uplink_refused_by_the_firmware(ser: serial.Serial, fw: FakeFirmware, result: str, reply: bytes) -> None:
    fw.send_result = result
    assert line(ser, 'AT+MSGHEX="01"') == reply


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("AT+MSGHEX=AA BB", b"+MSGHEX: ERROR(-1)\r\n"),  # spaces need quotes
        ('AT+MSGHEX="ABC"', b"+MSGHEX: ERROR(-1)\r\n"),
        ('AT+MSGHEX="ZZ"', b"+MSGHEX: ERROR(-1)\r\n"),
        ('AT+MSGHEX="01","02"', b"+MSGHEX: ERROR(-1)\r\n"),
        ('AT+MSGHEX="01', b"+MSGHEX: ERROR(-11)\r\n"),
    ],
)
def test_bad_uplink_payloads(ser: serial.Serial, fw: FakeFirmware, text: str, reply: bytes) -> None:
    _join(ser, fw)
    assert line(ser, text) == reply
    assert fw.sent == []


def test_class_c_downlink_outside_an_uplink(ser: serial.Serial, fw: FakeFirmware) -> None:
    fw.emit(DownlinkReceived(fport=10, payload=b"\x01\x02", rssi=-90.0, snr=-3.25, slot="C", fcnt=5))
    assert read_until(ser, b"SNR -3.2\r\n") == b'+MSGHEX: PORT: 10; RX: "0102"\r\n+MSGHEX: RXWIN2, RSSI -90, SNR -3.2\r\n'


def test_uplinks_the_application_sent_itself_print_nothing(ser: serial.Serial, fw: FakeFirmware) -> None:
    fw.emit(TxDone(fcnt=0, confirmed=False))
    assert line(ser, "AT") == b"+AT: OK\r\n"


# -- reset, errors ------------------------------------------------------------------------------


def test_reset_and_factory_reset(ser: serial.Serial, fw: FakeFirmware) -> None:
    line(ser, "AT+PORT=42")
    assert line(ser, "AT+RESET") == b"+RESET: OK\r\n"
    assert fw.resets == ["reset"]
    assert line(ser, "AT+PORT") == b"+PORT: 42\r\n"
    assert line(ser, "AT+FDEFAULT") == b"+FDEFAULT: OK\r\n"
    assert line(ser, "AT+FDEFAULT=RISINGHF") == b"+FDEFAULT: OK\r\n"
    assert fw.resets == ["reset", "factory_reset", "factory_reset"]
    assert line(ser, "AT+PORT") == b"+PORT: 8\r\n"


def test_reset_drops_an_uplink_in_progress(ser: serial.Serial, fw: FakeFirmware) -> None:
    _join(ser, fw)
    line(ser, 'AT+MSGHEX="01"')
    line(ser, "AT+RESET")
    fw.emit(TxDone(fcnt=0, confirmed=False))  # late: the transaction died with the reboot
    assert line(ser, "AT") == b"+AT: OK\r\n"


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("AT+FOO", b"+FOO: ERROR(-10)\r\n"),
        ("AT+FOO=secret", b"+FOO: ERROR(-10)\r\n"),
        ("AT+!!", b"+AT: ERROR(-11)\r\n"),
        ("ATZZ", b"+AT: ERROR(-10)\r\n"),
        ("garbage", b"+AT: ERROR(-10)\r\n"),
        ("\x00\xff", b"+AT: ERROR(-10)\r\n"),
    ],
)
def test_malformed_lines(ser: serial.Serial, text: str, reply: bytes) -> None:
    assert line(ser, text) == reply
    assert line(ser, "AT") == b"+AT: OK\r\n"
