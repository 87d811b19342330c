"""A LAN instrument's raw socket: newline-terminated lines over TCP (like port 5025).

:class:`LineServer` accepts any number of clients on an ephemeral loopback port; each client
gets a thread that reads lines and writes the handler's reply (if any) followed by ``\\n``.
:meth:`LineServer.stop` wakes every thread (a self-pipe plus ``shutdown`` of each client
socket), joins them and closes every socket, so nothing outlives it.

:class:`SocketInstrument` is the base of the virtual SCPI instruments: ``start()`` gives the
address, :attr:`~SocketInstrument.resource` the VISA string (``TCPIP0::127.0.0.1::<port>::SOCKET``).
With a running :class:`~hil.sim.scheduler.Scheduler`, each line is executed on the scheduler
thread (``call_soon``) so the models it touches see one thread; without one (a unit test on a
manual clock), it runs on the client's thread under the instrument's own lock.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from abc import ABC, abstractmethod
from typing import Callable

from hil.sim.scheduler import Scheduler

log = logging.getLogger(__name__)

LineHandler = Callable[[str], "str | None"]


class ServerError(RuntimeError):
    """The line server could not start, or a thread would not stop (a rig fault)."""


class LineServer:
    """Threaded TCP server of newline-terminated lines, on ``host:port`` (0 = pick a free port)."""

    def __init__(
        self,
        handler: LineHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "line-server",
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.name = name
        self.max_line_bytes = max_line_bytes
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._clients: dict[threading.Thread, socket.socket] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._count = 0
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) while running; raises if not started."""
        if self._address is None:
            raise ServerError(f"{self.name}: not started")
        return self._address

    @property
    def running(self) -> bool:
        return self._accept_thread is not None and self._accept_thread.is_alive()

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def threads(self) -> list[threading.Thread]:
        """Every thread the server runs now (for leak checks)."""
        with self._lock:
            found = list(self._clients)
        if self._accept_thread is not None:
            found.append(self._accept_thread)
        return [t for t in found if t.is_alive()]

    def start(self) -> tuple[str, int]:
        """Bind, listen and accept on a thread; returns (host, port)."""
        if self._accept_thread is not None:
            return self.address
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.requested_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.requested_port))
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise ServerError(f"{self.name}: cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        host, port = listener.getsockname()[:2]
        self._address = (host, port)
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        self._accept_thread.start()
        log.debug("%s listening on %s:%d", self.name, host, port)
        return self._address

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every client, join all threads (``timeout_s`` real seconds each)."""
        if self._accept_thread is None:
            return
        with self._lock:
            self._stopping = True
            clients = dict(self._clients)
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        for conn in clients.values():
            _shutdown(conn)
        stuck: list[str] = []
        self._accept_thread.join(timeout_s)
        if self._accept_thread.is_alive():
            stuck.append(self._accept_thread.name)
        for thread in clients:
            thread.join(timeout_s)
            if thread.is_alive():
                stuck.append(thread.name)
        with self._lock:  # a client accepted while we were stopping
            late = dict(self._clients)
        for thread, conn in late.items():
            _shutdown(conn)
            thread.join(timeout_s)
            if thread.is_alive():
                stuck.append(thread.name)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._wake_r = self._wake_w = None
        self._accept_thread = None
        self._address = None
        if stuck:
            raise ServerError(f"{self.name}: thread(s) {stuck} did not stop within {timeout_s} s")

    # -- threads -------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake_r
        assert listener is not None and wake is not None
        while True:
            try:
                ready, _, _ = select.select([listener, wake], [], [])
            except (OSError, ValueError):
                return
            if wake in ready:
                return
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._count += 1
                thread = threading.Thread(target=self._client_loop, args=(conn, peer),
                                          name=f"{self.name}-client-{self._count}", daemon=True)
                self._clients[thread] = conn
            thread.start()
            log.debug("%s: client %s:%d connected", self.name, *peer[:2])

    def _client_loop(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        wake = self._wake_r
        assert wake is not None
        buffer = bytearray()
        discarding = False  # inside a line that was already too long: drop up to its newline
        try:
            while True:
                ready, _, _ = select.select([conn, wake], [], [])
                if wake in ready:
                    return
                data = conn.recv(65536)
                if not data:
                    return
                _quickack(conn)
                buffer += data
                while True:
                    end = buffer.find(b"\n")
                    if end < 0:
                        break
                    raw = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if discarding or len(raw) > self.max_line_bytes:
                        discarding = False
                        log.warning("%s: dropped a line over %d bytes from %s:%d", self.name, self.max_line_bytes,
                                    *peer[:2])
                        continue
                    reply = self._handle(raw)
                    if reply is not None:
                        conn.sendall(reply.encode("ascii", errors="replace") + b"\n")
                if len(buffer) > self.max_line_bytes:
                    buffer.clear()
                    discarding = True
        except (OSError, ValueError) as exc:
            log.debug("%s: client %s:%d gone: %s", self.name, peer[0], peer[1], exc)
        finally:
            conn.close()
            with self._lock:
                self._clients.pop(threading.current_thread(), None)
            log.debug("%s: client %s:%d disconnected", self.name, *peer[:2])

    def _handle(self, raw: bytes) -> str | None:
        line = raw.decode("ascii", errors="replace").rstrip("\r")
        if not line.strip():
            return None
        try:
            return self.handler(line)
        except Exception:  # the instrument keeps serving whatever one line does
            log.exception("%s: handler failed on %r", self.name, line)
            return None


def _quickack(conn: socket.socket) -> None:
    """ACK at once (Linux): a client writing a command then a query would otherwise wait ~40 ms.

    Its Nagle algorithm holds the query until the command is ACKed, and delayed ACK holds that ACK
    when the command has no reply. The option does not stick, so it is set after every read.
    """
    if _TCP_QUICKACK is not None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            pass


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class SocketInstrument(ABC):
    """A virtual instrument reached over a raw TCP socket, like a LAN instrument's port 5025."""

    def __init__(
        self,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        scheduler: Scheduler | None = None,
        handoff_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.scheduler = scheduler
        self.handoff_timeout_s = handoff_timeout_s
        self.server = LineServer(self._serve, host=host, port=port, name=name)

    @abstractmethod
    def handle_line(self, line: str) -> str | None:
        """Execute one received line; the reply line or None."""

    def start(self) -> tuple[str, int]:
        """Start serving; returns (host, port)."""
        return self.server.start()

    def stop(self) -> None:
        """Stop serving: no thread or socket is left."""
        self.server.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    @property
    def resource(self) -> str:
        """The VISA resource string of the raw socket (``TCPIP0::127.0.0.1::<port>::SOCKET``)."""
        host, port = self.address
        return f"TCPIP0::{host}::{port}::SOCKET"

    def __enter__(self) -> "SocketInstrument":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, line: str) -> str | None:
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running:
            return self.handle_line(line)
        done = threading.Event()
        box: list[str | None] = []

        def run() -> None:
            try:
                box.append(self.handle_line(line))
            finally:
                done.set()

        scheduler.call_soon(run, name=f"{self.name}: {line[:40]}")
        if not scheduler.clock.wait(done, self.handoff_timeout_s):
            log.error("%s: %r not executed within %.1f rig s (scheduler stalled?)", self.name, line,
                      self.handoff_timeout_s)
            return None
        return box[0] if box else None
