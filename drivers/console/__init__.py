"""The DUT console driver: a LoRaWAN module's UART, driven through an AT dialect profile.

::

    console = DutConsole("/dev/serial/by-id/usb-FTDI_...", "rak3172", clock)
    console.open(Deadline.after(clock, 10))      # waits for a port that re-enumerates
    console.wait_ready(Deadline.after(clock, 10))
    result = console.join(Deadline.after(clock, 120))

Layers, one job each: :mod:`.transport` opens the port (pyserial: device paths,
``/dev/serial/by-id/...``, ``socket://``, ``rfc2217://``); :mod:`.expect` reads it on one
thread, keeps the transcript and matches patterns against received lines with rig-time
deadlines; :mod:`.dialect` loads the module's profile (``rigs/profiles/at/<name>.yaml``), where
every difference between modules lives; :mod:`.dut_console` is the high-level API. The driver is
the same for a real module and the virtual DUT's pty.

Errors say whose fault it is: the DUT's misbehaviour (no answer in time, an error reply) is an
:class:`AssertionError` subclass, so pytest reports a failure; a port that cannot be opened or
is lost is a :class:`~hil.faults.RigFault` (a RuntimeError), reported as an error.
"""

from __future__ import annotations

from hil.faults import RigFault


class ConsoleTimeout(AssertionError):
    """The DUT did not print what was awaited before the deadline (a product failure).

    The message names the pattern(s) awaited, shows the cleaned tail of what arrived and the path
    of the full transcript; the same are attributes.
    """

    def __init__(self, message: str, *, patterns: tuple[str, ...] = (), tail: str = "", log_path: str | None = None):
        super().__init__(message)
        self.patterns = patterns
        self.tail = tail
        self.log_path = log_path


class ConsoleCommandError(AssertionError):
    """The DUT answered a command with an error (``AT_PARAM_ERROR``, ``+KEY: ERROR(-1)``, ...).

    ``command`` is the command as sent, with keys masked; ``reply`` the error line; ``code`` the
    error code the profile's error pattern captured (None if it has none).
    """

    def __init__(self, message: str, *, command: str, reply: str, code: str | None, log_path: str | None = None):
        super().__init__(message)
        self.command = command
        self.reply = reply
        self.code = code
        self.log_path = log_path


class ConsolePortError(RigFault):
    """The console port cannot be opened, or was lost (a rig fault, not the DUT's)."""


class ConsoleUnsupported(NotImplementedError):
    """The module's dialect has no command for what was asked (e.g. frame counters on RUI3)."""


class ProfileError(ValueError):
    """A dialect profile is missing or invalid; the message names the file and the key."""


# The modules import the errors above from this package, so they come after them.
from drivers.console.dialect import Profile, available_profiles, load_profile  # noqa: E402
from drivers.console.dut_console import Downlink, DutConsole, FrameCounters, JoinResult, SendResult  # noqa: E402
from drivers.console.expect import ExpectEngine, Hit, RxLine, Transcript  # noqa: E402
from drivers.console.transport import SerialTransport  # noqa: E402

__all__ = [
    "ConsoleCommandError",
    "ConsolePortError",
    "ConsoleTimeout",
    "ConsoleUnsupported",
    "Downlink",
    "DutConsole",
    "ExpectEngine",
    "FrameCounters",
    "Hit",
    "JoinResult",
    "Profile",
    "ProfileError",
    "RxLine",
    "SendResult",
    "SerialTransport",
    "Transcript",
    "available_profiles",
    "load_profile",
]
