"""A fake of :class:`~hil.sim.dut.interfaces.FirmwareApi` for the console tests, and the serial
helpers those tests share. No test lives here.

The fake keeps settings in plain attributes, records what the console asked for, answers
``join()``/``send()`` with programmable results, and emits events only when a test says so
(:meth:`FakeFirmware.emit`), so every asynchronous report is under the test's control.
"""

from __future__ import annotations

import threading
from typing import Callable, Literal

import serial

from hil.lorawan.crypto import AESKey
from hil.lorawan.types import EUI64, DevAddr
from hil.sim.dut.interfaces import Booted, DownlinkReceived, DutEvent, Joined, Listener

DEV_EUI = EUI64("70B3D57ED0000001")
JOIN_EUI = EUI64("0000000000000000")
READ_TIMEOUT_S = 2.0  # real seconds: the bound of every serial read in these tests


class FakeFirmware:
    """Implements FirmwareApi. ``running`` starts as given; events come from :meth:`emit`."""

    def __init__(self, running: bool = True) -> None:
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._running = running
        self.dev_eui = DEV_EUI
        self.join_eui = JOIN_EUI
        self.activation: Literal["otaa", "abp"] = "otaa"
        self.device_class: Literal["A", "C"] = "A"
        self.data_rate = 0
        self.tx_power = 0
        self.adr = True
        self.lorawan_version = "1.0.4"
        self.relay_spreading_factor = 7
        self.relay_tx_power_dbm = 14
        self._joined = False
        self._dev_addr: DevAddr | None = None
        self._fcnt_up = 0
        self._fcnt_down = 0
        self._last_downlink: DownlinkReceived | None = None
        self._app_key: AESKey | None = None
        self._nwk_key: AESKey | None = None
        self._passphrase: str | None = None
        # programmable answers
        self.join_result: str | None = None
        self.send_result: str | None = None
        # what the console did
        self.join_calls = 0
        self._join_cond = threading.Condition()
        self.sent: list[tuple[int, bytes, bool]] = []
        self.resets: list[str] = []

    # -- state the protocol reads ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def dev_addr(self) -> DevAddr | None:
        return self._dev_addr

    @property
    def fcnt_up(self) -> int:
        return self._fcnt_up

    @property
    def fcnt_down(self) -> int:
        return self._fcnt_down

    @property
    def last_downlink(self) -> DownlinkReceived | None:
        return self._last_downlink

    @property
    def firmware_version(self) -> str:
        return "4.0.6"

    @property
    def hardware_model(self) -> str:
        return "rak3172"

    @property
    def serial_number(self) -> str:
        return "HILSIM000001"

    # -- keys (held privately, like NVM; the tests look with the helpers below) ------------------

    def set_app_key(self, key: AESKey) -> None:
        self._app_key = key

    def set_nwk_key(self, key: AESKey) -> None:
        self._nwk_key = key

    def has_keys(self) -> bool:
        return self._app_key is not None

    def app_key_hex(self) -> str | None:
        return self._app_key.reveal_hex() if self._app_key else None

    def nwk_key_hex(self) -> str | None:
        return self._nwk_key.reveal_hex() if self._nwk_key else None

    def set_relay_passphrase(self, passphrase: str) -> None:
        if len(passphrase) > 64:
            raise ValueError(f"passphrase too long: {passphrase}")  # a careless message: must not reach the console
        self._passphrase = passphrase

    @property
    def relay_passphrase(self) -> str | None:
        return self._passphrase

    # -- actions ---------------------------------------------------------------------------------

    def join(self) -> str | None:
        if not self._running:
            return "not_running"
        with self._join_cond:
            self.join_calls += 1
            self._join_cond.notify_all()
        return self.join_result

    def send(self, fport: int, payload: bytes, confirmed: bool) -> str | None:
        if not self._running:
            return "not_running"
        if self.send_result is not None:
            return self.send_result
        if not self._joined:
            return "not_joined"
        self.sent.append((fport, payload, confirmed))
        self._fcnt_up += 1
        return None

    def reset(self) -> None:
        self.resets.append("reset")
        self._reboot("reset")

    def factory_reset(self) -> None:
        self.resets.append("factory_reset")
        self._app_key = self._nwk_key = None
        self._passphrase = None
        self.join_eui = JOIN_EUI
        self.relay_spreading_factor = 7
        self.relay_tx_power_dbm = 14
        self._reboot("factory_reset")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- test controls ---------------------------------------------------------------------------

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def wait_join_calls(self, count: int, timeout: float = READ_TIMEOUT_S) -> bool:
        """Wait (real seconds, bounded) until join() has been called ``count`` times."""
        with self._join_cond:
            return self._join_cond.wait_for(lambda: self.join_calls >= count, timeout)

    def power_on(self) -> None:
        self._running = True
        self.emit(Booted("power_on"))

    def power_off(self) -> None:
        self._running = False
        self._joined = False
        self._dev_addr = None

    def emit(self, event: DutEvent) -> None:
        """Update the state an event implies, then tell every listener (as the scheduler would)."""
        if isinstance(event, Joined):
            self._joined, self._dev_addr = True, event.dev_addr
        elif isinstance(event, DownlinkReceived):
            self._last_downlink, self._fcnt_down = event, event.fcnt
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _reboot(self, reason: Literal["reset", "factory_reset"]) -> None:
        self._running = False
        self._joined = False
        self._dev_addr = None
        self._running = True
        self.emit(Booted(reason))


# -- serial helpers --------------------------------------------------------------------------------


def open_serial(path: str) -> serial.Serial:
    """The client end, as a driver opens a USB UART."""
    return serial.Serial(path, 115200, timeout=READ_TIMEOUT_S)


def read_until(ser: serial.Serial, terminator: bytes) -> bytes:
    """Read up to and including ``terminator``; fails with what came if it does not come in time."""
    data = ser.read_until(terminator)
    assert data.endswith(terminator), f"waited {READ_TIMEOUT_S} s for {terminator!r}; got {data!r}"
    return data


def command(ser: serial.Serial, line: str | bytes, until: bytes, eol: bytes = b"\r\n") -> bytes:
    """Send one line and read its reply up to ``until``."""
    ser.write((line.encode() if isinstance(line, str) else line) + eol)
    return read_until(ser, until)
