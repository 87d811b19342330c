"""The rig's helper processes (the MQTT broker): they die with the rig's process, and their
output is read to its end so that they never block on a full pipe."""

from __future__ import annotations

import ctypes
import signal
import threading
from collections import deque
from typing import IO


def die_with_parent() -> None:
    """In the child before exec (Linux, a ``preexec_fn``): receive SIGTERM when the parent process
    dies, even by SIGKILL, so a crashed test run leaves no helper behind. Call it after any uid
    change, which clears it. (ctypes is imported with this module, in the parent: after a uid
    change the child may not be able to read Python's library any more.)"""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the normal stop() path still applies
        pass


class OutputDrain:
    """Reads a child process's output line by line to its end, on a daemon thread, keeping the
    last lines; :meth:`wait` returns the first line holding ``marker`` (the process's readiness).

    Reading on after the readiness line matters: mosquitto logs every client connection, and a
    pipe nobody reads fills up (64 KiB) and then blocks the process in the middle of a session.
    """

    def __init__(self, stream: IO[str], marker: str, name: str) -> None:
        self.tail: deque[str] = deque(maxlen=50)
        self.found: str | None = None
        self._stream = stream
        self._marker = marker
        self._ready = threading.Event()  # the marker was seen, or the output ended
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                self.tail.append(line.rstrip())
                if self.found is None and self._marker in line:
                    self.found = line.strip()
                    self._ready.set()
        except (OSError, ValueError):  # the stream was closed under us: the broker is being stopped
            pass
        finally:
            self._ready.set()

    def wait(self, timeout_s: float) -> str | None:
        """The marker line, once seen; None if the output ended or ``timeout_s`` real seconds passed first."""
        self._ready.wait(timeout_s)  # real time: infrastructure start-up, before any rig clock exists
        return self.found

    def last_lines(self, count: int = 5) -> str:
        return "\n".join(list(self.tail)[-count:])

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
