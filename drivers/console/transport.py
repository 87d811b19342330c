"""The console's port: pyserial opened by URL, waited for if it is not there yet.

Any URL ``serial.serial_for_url`` knows: a device path (``/dev/ttyUSB0``, a
``/dev/serial/by-id/...`` link, the virtual DUT's pty), ``socket://host:port`` (a serial
server), ``rfc2217://host:port``, ``loop://``. A USB-UART powered by the DUT disappears while the
DUT is off and comes back under the same by-id link after power-up, so :meth:`SerialTransport.open`
retries until a deadline in rig time. Every failure is a :class:`~drivers.console.ConsolePortError`
naming the URL: a rig fault, not the DUT's.
"""

from __future__ import annotations

import logging

import serial

from drivers.console import ConsolePortError
from hil.clock import Clock, Deadline

log = logging.getLogger(__name__)

POLL_S = 0.05  # real seconds a read blocks at most: how soon the reader thread sees a stop request


class SerialTransport:
    """One console port. Not thread-safe by itself: one reader thread reads, one writer writes."""

    def __init__(self, url: str, baud: int, clock: Clock, *, retry_interval_s: float = 0.25) -> None:
        if not url:
            raise ConsolePortError("no console port given (an empty port URL)")
        self.url = url
        self.baud = baud
        self.clock = clock
        self.retry_interval_s = retry_interval_s
        self.attempts = 0  # open attempts of the last open() (diagnostics, tests)
        self._serial: serial.SerialBase | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self, deadline: Deadline | None = None) -> None:
        """Open the port; without a deadline try once, with one retry until it expires.

        Raises ConsolePortError naming the URL, the attempts and the last error.
        """
        if self.is_open:
            return
        self.attempts = 0
        while True:
            self.attempts += 1
            try:
                self._serial = serial.serial_for_url(self.url, baudrate=self.baud, timeout=POLL_S, write_timeout=5.0)
                log.debug("console port %s open after %d attempt(s)", self.url, self.attempts)
                return
            except ValueError as exc:  # a URL or setting pyserial rejects: no point retrying
                raise ConsolePortError(f"console port {self.url!r}: not a usable port URL or setting ({exc})") from None
            except (serial.SerialException, OSError) as exc:
                if deadline is None or deadline.expired:
                    waited = "" if deadline is None else " by the deadline"
                    raise ConsolePortError(
                        f"console port {self.url!r} could not be opened{waited} "
                        f"({self.attempts} attempt(s)); last error: {exc}"
                    ) from None
            self.clock.sleep(min(self.retry_interval_s, max(deadline.remaining, 0.0)))

    def read(self) -> bytes:
        """What has arrived, waiting up to :data:`POLL_S` real seconds for the first byte.

        ``b""`` if nothing came; ConsolePortError if the port is closed or was lost.
        """
        port = self._serial
        if port is None:
            raise ConsolePortError(f"console port {self.url!r} is not open")
        try:
            waiting = port.in_waiting
            return port.read(waiting or 1)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: pyserial's state after a concurrent close()
            raise ConsolePortError(f"console port {self.url!r} was lost: {exc}") from None

    def write(self, data: bytes) -> None:
        """Send ``data``; ConsolePortError if the port is closed, lost or stuck."""
        port = self._serial
        if port is None:
            raise ConsolePortError(f"console port {self.url!r} is not open")
        try:
            port.write(data)
        except serial.SerialTimeoutException:
            raise ConsolePortError(f"console port {self.url!r}: a write did not complete (flow control stuck?)") from None
        except (serial.SerialException, OSError) as exc:
            raise ConsolePortError(f"console port {self.url!r} was lost while writing: {exc}") from None

    def close(self) -> None:
        """Close the port (idempotent)."""
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                log.warning("console port %s: close failed: %s", self.url, exc)

    def __repr__(self) -> str:
        return f"SerialTransport({self.url!r}, {self.baud}, {'open' if self.is_open else 'closed'})"
