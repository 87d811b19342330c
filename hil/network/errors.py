"""Error types of the reference network server.

Frames that a device sends are never turned into exceptions: a bad uplink is logged in the
event log. These errors are for the test code that drives the server (bad configuration,
unknown device, a transport used after close).
"""

from __future__ import annotations


class NetworkError(Exception):
    """Base of every error the reference network server raises on purpose."""


class DeviceConfigError(NetworkError, ValueError):
    """A device configuration is inconsistent, or does not fit the server's region."""


class UnknownDeviceError(NetworkError, LookupError):
    """No device with that DevEUI is registered."""


class DuplicateDeviceError(NetworkError, ValueError):
    """A device with that DevEUI is already registered."""


class DownlinkError(NetworkError, ValueError):
    """A downlink cannot be queued as asked (bad FPort, unknown queue id, ...)."""


class DevAddrExhaustedError(NetworkError):
    """The DevAddr allocator has no address left for the NetID."""


class TransportClosedError(NetworkError):
    """A gateway transport was used after :meth:`close`."""


class FaultError(NetworkError, ValueError):
    """A fault was injected with parameters that do not fit it."""
