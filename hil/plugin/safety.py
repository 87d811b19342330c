"""Leave the rig safe: relay off and supply off after every test, at exit, on Ctrl-C and SIGTERM.

Parts register what "safe" means for them (``register("psu", psu.output_off)``); :meth:`make_safe`
runs every action, logs any that fails and goes on with the others. :meth:`install` adds an
``atexit`` hook and signal handlers so a crash or a kill still leaves the bench safe.

An action registered with ``between_tests=False`` (the relay's mains feed off) runs only when the
rig is left for good — session end, exit, a signal — not in the safe state between two tests
(``make_safe(reason, between_tests=True)``), where the next test wants that part as it was.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


class SafeState:
    """An ordered set of actions that put the rig in its safe state."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], Any], bool]] = []  # (name, action, between tests too)
        self._lock = threading.RLock()
        self._installed = False
        self._previous: dict[int, Any] = {}
        self.history: list[tuple[str, str]] = []  # (reason, action or "action failed: ...")

    def register(self, name: str, action: Callable[[], Any], *, between_tests: bool = True) -> None:
        """Add an action (run in registration order: e.g. relay off before supply off).

        ``between_tests=False``: only when the rig is left for good, not between two tests.
        """
        with self._lock:
            self._actions.append((name, action, between_tests))

    def unregister(self, name: str) -> None:
        with self._lock:
            self._actions = [entry for entry in self._actions if entry[0] != name]

    def make_safe(self, reason: str, *, between_tests: bool = False) -> list[str]:
        """Run every action (``between_tests``: only those registered for it); returns the failures
        (also logged). Never raises."""
        failures: list[str] = []
        with self._lock:
            actions = [(name, action) for name, action, always in self._actions if always or not between_tests]
        for name, action in actions:
            try:
                action()
                self.history.append((reason, name))
            except Exception as exc:  # keep going: the supply must go off even if the relay failed
                message = f"{name} failed: {type(exc).__name__}: {exc}"
                failures.append(message)
                self.history.append((reason, message))
                log.error("making the rig safe (%s): %s", reason, message)
        return failures

    def install(self) -> None:
        """Make safe at interpreter exit and on SIGTERM/SIGINT (then the previous handler runs)."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.make_safe, "exit")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
        atexit.unregister(self.make_safe)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.make_safe(signal.Signals(signum).name)
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
