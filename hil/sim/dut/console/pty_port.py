"""A pseudo-terminal that pyserial opens like a USB UART: the virtual DUT's end of the wire.

``PtyPort`` opens a pty pair, puts the slave in raw mode (else the line discipline's ECHO would
copy everything the DUT writes back to the DUT) and keeps the slave open, so :attr:`PtyPort.path`
stays valid whether or not a client has it open. One I/O thread owns the master: it reads what
the client sends and hands it to ``on_data``, writes what :meth:`PtyPort.write` queued, and runs
callables handed over with :meth:`PtyPort.submit`, so the console's work all happens on this one
thread, in order.

What a pty cannot do: there are no modem lines (pyserial ignores the failing DTR/RTS ioctls).
pyserial's ``open()`` flushes the input queue, so what the DUT printed before the client opened
the port is lost, as on a real UART nobody listened to; bytes the kernel is still moving from
master to slave at that instant may survive the flush, so open the port before powering the DUT.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import pty
import select
import threading
import tty
from typing import Callable

log = logging.getLogger(__name__)

_READ_CHUNK = 4096
_EIO_RETRY_S = 0.05  # real seconds: how often to look again at a master nobody has open


class PtyPort:
    """A pty pair with one I/O thread on the master; the slave's path is what a client opens.

    ``on_data(bytes)`` runs on the I/O thread for every chunk the client sent. ``max_backlog``
    caps output still waiting for room in the pty (the kernel buffers ~20 KiB by itself); beyond
    it the oldest bytes are dropped, as a real UART's bytes are lost when nobody reads them.
    """

    def __init__(
        self,
        name: str = "dut-console",
        on_data: Callable[[bytes], None] | None = None,
        max_backlog: int = 64 * 1024,
    ) -> None:
        self.name = name
        self._on_data = on_data
        self._max_backlog = max_backlog
        self._lock = threading.Lock()
        self._out = bytearray()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._closing = False
        self._closed = False
        self._close_on_exit = False
        self._dropped_bytes = 0
        self._fds: list[int] = []
        try:
            self._master, self._slave = pty.openpty()
            self._fds += [self._master, self._slave]
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self.path: str = os.ttyname(self._slave)
        except BaseException:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._run, name=f"pty-{name}", daemon=True)
        self._thread.start()

    # -- API -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def dropped_bytes(self) -> int:
        """Output bytes dropped because nobody read them (see ``max_backlog``)."""
        return self._dropped_bytes

    @property
    def thread(self) -> threading.Thread:
        """The I/O thread (everything the port calls back runs on it)."""
        return self._thread

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the client; never blocks. Ignored after :meth:`close`."""
        if not data:
            return
        with self._lock:
            if self._closing:
                return
            self._out += data
            excess = len(self._out) - self._max_backlog
            if excess > 0:
                del self._out[:excess]
                if self._dropped_bytes == 0:
                    log.warning("pty %s: nobody reads the console; dropping output", self.name)
                self._dropped_bytes += excess
            self._wake()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` on the I/O thread, after what it is doing now. Ignored after :meth:`close`."""
        with self._lock:
            if self._closing:
                return
            self._jobs.append(job)
            self._wake()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the I/O thread and close every descriptor. Idempotent. ``timeout`` is real seconds."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._wake()
            if self._thread is threading.current_thread():
                self._close_on_exit = True  # called from a callback: the thread closes the fds as it leaves
                return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("pty %s: I/O thread did not stop within %.1f s", self.name, timeout)
            return
        self._close_fds()

    def __enter__(self) -> "PtyPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return f"PtyPort({self.name!r}, path={getattr(self, 'path', '?')!r}, {state})"

    # -- I/O thread ----------------------------------------------------------------------------

    def _wake(self) -> None:
        """Wake the I/O thread. Call with ``_lock`` held (so the pipe cannot be closed meanwhile)."""
        if self._closed:
            return
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the thread is awake anyway
        except OSError:
            pass  # closed under us during shutdown

    def _run(self) -> None:
        master_gone = False  # EIO: no slave open (cannot happen while we hold it, but be safe)
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                    want_write = bool(self._out)
                readers = [self._wake_r] if master_gone else [self._wake_r, self._master]
                writers = [self._master] if want_write and not master_gone else []
                timeout = _EIO_RETRY_S if master_gone else None
                readable, writable, _ = select.select(readers, writers, [], timeout)
                master_gone = False
                if self._wake_r in readable:
                    self._drain_wake()
                if self._master in readable:
                    master_gone = self._read_master()
                if self._master in writable:
                    master_gone = self._write_master() or master_gone
                self._run_jobs()
            self._write_master()  # best effort: what is left and fits
        except Exception:  # never let the console thread die silently
            log.exception("pty %s: I/O thread failed", self.name)
        finally:
            if self._close_on_exit:
                self._close_fds()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _read_master(self) -> bool:
        try:
            data = os.read(self._master, _READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.EIO:
                return True  # nobody has the slave open: not an error
            raise
        if data and self._on_data is not None:
            try:
                self._on_data(data)
            except Exception:
                log.exception("pty %s: input handler failed", self.name)
        return False

    def _write_master(self) -> bool:
        with self._lock:
            chunk = bytes(self._out[:_READ_CHUNK])
        if not chunk:
            return False
        try:
            n = os.write(self._master, chunk)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.EIO:
                return True
            raise
        with self._lock:
            del self._out[:n]
        return False

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                if not self._jobs or self._closing:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:
                log.exception("pty %s: console job failed", self.name)

    def _close_fds(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
            self._closed = True
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
