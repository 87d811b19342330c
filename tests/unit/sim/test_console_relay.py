"""The relay application's console commands (seed 004), in both AT dialects."""

from __future__ import annotations

import logging

import pytest
import serial

from hil.sim.dut.console import open_console
from hil.sim.scheduler import Scheduler
from tests.unit.sim.fake_firmware import FakeFirmware, command, open_serial, read_until

PASSPHRASE = "zebra-quartz-7731"
AT_SYNC = {"rak3172": b"\r\nOK\r\n", "lora-e5": b"+AT: OK\r\n"}


@pytest.fixture(params=["rak3172", "lora-e5"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ser(fw: FakeFirmware, scheduler: Scheduler, dialect: str):
    con = open_console(dialect, fw, scheduler)
    with open_serial(con.path) as port:
        yield port
    con.close()


def relay(ser: serial.Serial, text: str) -> bytes:
    """Send a relay command the way the seed's terminal does (newline only); read one line."""
    return command(ser, text, b"\r\n", eol=b"\n")


def test_help_lists_the_commands(ser: serial.Serial) -> None:
    listing = command(ser, "help", b"get txpower\r\n", eol=b"\n")
    for text in (b"help", b"set key <passphrase>", b"set datarate SF7..SF12", b"get datarate", b"set txpower 2..15"):
        assert text in listing


def test_set_key_never_echoes_the_passphrase(ser: serial.Serial, fw: FakeFirmware, dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ser.write(f"set key {PASSPHRASE}\n".encode())
    ser.write(b"get key\n")
    ser.write(f"set kye {PASSPHRASE}\n".encode())  # a typo must not print it either
    ser.write(b"AT\r\n")
    everything = read_until(ser, AT_SYNC[dialect])
    assert everything == (
        b"key set\r\n"
        b"error: the key cannot be read back\r\n"
        b"error: unknown setting, use datarate, txpower or key\r\n" + AT_SYNC[dialect]
    )
    assert fw.relay_passphrase == PASSPHRASE
    assert PASSPHRASE not in caplog.text


def test_passphrase_may_have_spaces(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert relay(ser, "set key correct horse  battery staple ") == b"key set\r\n"
    assert fw.relay_passphrase == "correct horse  battery staple"


def test_set_key_errors(ser: serial.Serial, fw: FakeFirmware, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert relay(ser, "set key") == b"error: set key needs a passphrase\r\n"
    long_secret = "s3cr3t" * 11  # the fake rejects it with a message that quotes it
    reply = relay(ser, f"set key {long_secret}")
    assert reply == b"error: passphrase rejected\r\n"
    assert long_secret not in caplog.text
    assert fw.relay_passphrase is None


def test_datarate(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert relay(ser, "get datarate") == b"SF7\r\n"
    assert relay(ser, "set datarate SF9") == b"datarate set to SF9\r\n"
    assert fw.relay_spreading_factor == 9
    assert relay(ser, "SET DATARATE sf12") == b"datarate set to SF12\r\n"
    assert relay(ser, "get datarate") == b"SF12\r\n"


@pytest.mark.parametrize("value", ["SF6", "SF13", "9", "SF", "", "SF7.5", "fast"])
def test_datarate_out_of_range(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    assert relay(ser, f"set datarate {value}") == b"error: datarate must be SF7..SF12\r\n"
    assert fw.relay_spreading_factor == 7


def test_txpower(ser: serial.Serial, fw: FakeFirmware) -> None:
    assert relay(ser, "get txpower") == b"14 dBm\r\n"
    assert relay(ser, "set txpower 2") == b"txpower set to 2 dBm\r\n"
    assert fw.relay_tx_power_dbm == 2
    assert relay(ser, "get txpower") == b"2 dBm\r\n"


@pytest.mark.parametrize("value", ["1", "16", "-3", "abc", "", "2.5"])
def test_txpower_out_of_range(ser: serial.Serial, fw: FakeFirmware, value: str) -> None:
    assert relay(ser, f"set txpower {value}") == b"error: txpower must be 2..15 dBm\r\n"
    assert fw.relay_tx_power_dbm == 14


@pytest.mark.parametrize("text", ["set", "get", "get voltage", "set output on"])
def test_unknown_settings(ser: serial.Serial, text: str) -> None:
    assert relay(ser, text) == b"error: unknown setting, use datarate, txpower or key\r\n"


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_any_line_ending(ser: serial.Serial, eol: bytes) -> None:
    assert command(ser, "get datarate", b"\r\n", eol=eol) == b"SF7\r\n"
