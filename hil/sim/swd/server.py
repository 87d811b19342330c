"""The simulated probe served over pyocd's own TCP probe server, for other processes.

``pyocd commander -u remote:127.0.0.1:<port> -t hil_relay_node`` or ``pyocd load -u remote:...``
(pyocd's built-in ``remote`` probe type) then drive the virtual DUT from another process; the
requests are pyocd's JSON lines (``read_dp``, ``write_ap_multiple``...), answered by pyocd's own
request handler on a :class:`~hil.sim.swd.probe.SimProbe`.

The listening socket is bound when :class:`ProbeServer` is created, so its address is known at
once and a client connecting early waits in the backlog; pyocd is imported (about 0.5 s) only
when the first client connects, so a virtual rig nobody debugs never pays for it. (This also avoids
a pyocd quirk: ``DebugProbeServer.port`` reads 0 after ``start()`` when port 0 was asked for.)

:meth:`ProbeServer.stop` closes the listener and every client connection and joins every thread.
A client that disconnects without closing the probe does not keep the unit busy: when the last
connection ends, the served probe is closed.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from typing import Any

from hil.sim.swd.unit import DebugUnit

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0  # real seconds to wait for the server's threads at stop (they end at once normally)


class ProbeServer:
    """pyocd's TCP probe server for one debug unit, on ``host`` and a free port."""

    def __init__(self, unit: DebugUnit, host: str = "127.0.0.1") -> None:
        self.unit = unit
        self._listener = socket.create_server((host, 0), backlog=8)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._stopping = False
        self._server: Any = None
        self._proxy: Any = None
        self._connections: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._run, name=f"swd-probe-server {unit.name}", daemon=True)

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def probe_uid(self) -> str:
        """The unique id a pyocd client opens: ``remote:host:port``."""
        return f"remote:{self.address}"

    def start(self) -> "ProbeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: listener and client connections closed, threads joined, the unit released."""
        with self._lock:
            self._stopping = True
            server = self._server
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if server is not None:
            server.shutdown()  # returns once serve_forever has left its loop
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.error("probe server %s: its thread did not stop within %.0f s", self.address, JOIN_TIMEOUT_S)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # the handler's readline returns: its thread ends
            except OSError:
                pass
        if server is not None:
            server.server_close()  # closes the listener and joins the handler threads
        else:
            self._listener.close()
        if self._proxy is not None:
            self._proxy.force_close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the server thread ------------------------------------------------------------------------

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.select()  # the first client, or stop()
        with self._lock:
            if self._stopping:
                return
        try:
            server = self._make_server()
        except Exception:
            log.exception("probe server %s: cannot start pyocd's probe server", self.address)
            return
        with self._lock:
            if self._stopping:
                server.server_close()
                return
            self._server = server
        log.info("serving the simulated probe %s on %s", self.unit.probe_uid, self.probe_uid)
        server.serve_forever(poll_interval=0.05)

    def _make_server(self) -> Any:
        from pyocd.core.session import Session
        from pyocd.probe.shared_probe_proxy import SharedDebugProbeProxy
        from pyocd.probe.tcp_probe_server import TCPProbeServer

        from hil.sim.swd.probe import SimProbe

        outer = self

        class Proxy(SharedDebugProbeProxy):  # type: ignore[misc]
            def force_close(self) -> None:
                """Close the probe whatever the clients left open (they are all gone)."""
                if self._open_count > 0:
                    self._probe.close()
                self._open_count = self._connect_count = 0

        class Server(TCPProbeServer):  # type: ignore[misc]
            def get_request(self) -> tuple[socket.socket, Any]:
                conn, address = super().get_request()
                with outer._lock:
                    outer._connections.add(conn)
                return conn, address

            def shutdown_request(self, request: socket.socket) -> None:
                with outer._lock:
                    outer._connections.discard(request)
                    last = not outer._connections
                if last:
                    proxy.force_close()  # a client that vanished without 'close' leaves the unit free
                super().shutdown_request(request)

        proxy = self._proxy = Proxy(SimProbe(self.unit))
        server = Server((self.host, self.port), Session(None, no_config=True), proxy)
        server.socket.close()  # the unbound socket it made: serve on ours, bound and listening already
        server.socket = self._listener
        return server
