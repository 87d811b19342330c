"""Supply V/I sampling during a test, for the timeline (off unless the ``hil_supply_sample_s`` ini asks).

A small thread measures the supply's voltage and current every ``period_s`` rig seconds; the
driver records each measurement in its ``events``, where the evidence finds them. It shares the
supply's SCPI session with the test (the session's lock serialises them), so it can delay a
scheduled cut by one query: leave it off for tests that time cuts to the millisecond. A rig fault
while sampling stops the sampler with a warning; it never fails the test.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hil.faults import RigFault

__all__ = ["SupplySampler"]

log = logging.getLogger(__name__)
STOP_JOIN_S = 5.0  # real seconds to wait for the thread at stop (one SCPI query at most)


class SupplySampler:
    """Measures ``psu`` (``measure_voltage``/``measure_current``) every ``period_s`` rig seconds until :meth:`stop`."""

    def __init__(self, psu: Any, clock: Any, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"sampling period must be > 0 rig s, got {period_s!r}")
        self.psu = psu
        self.clock = clock
        self.period_s = period_s
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hil-supply-sampler", daemon=True)

    def start(self) -> "SupplySampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_JOIN_S)
            if self._thread.is_alive():
                log.warning("supply sampler did not stop within %.1f s", STOP_JOIN_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.psu.measure_voltage()
                self.psu.measure_current()
                self.samples += 1
            except (RigFault, OSError) as exc:
                log.warning("supply sampling stopped: %s", exc)
                return
            except Exception:  # a sampler must not kill anything; say why it stopped
                log.exception("supply sampling stopped")
                return
            self.clock.wait(self._stop, self.period_s)
