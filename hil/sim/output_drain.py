"""Reading a helper process's output (the MQTT broker's log) so that it never blocks on a full pipe."""

from __future__ import annotations

import threading
from collections import deque
from typing import IO


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
