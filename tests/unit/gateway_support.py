"""Helpers shared by the gateway-transport tests (MQTT and UDP). No test lives here."""

from __future__ import annotations

import threading
from typing import Any

from hil.clock import Clock, Deadline
from hil.network import DownlinkFrame

WAIT_S = 500.0  # rig seconds: 5 real seconds at time_scale 100; every wait in these tests is bounded by it


class Inbox:
    """Things delivered from another thread (paho's, the UDP reader's), awaited in rig time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.items: list[Any] = []
        self.cond = threading.Condition()

    def put(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, count: int = 1, what: str = "items") -> list[Any]:
        with self.cond:
            ok = self.clock.wait_for(self.cond, lambda: len(self.items) >= count, Deadline.after(self.clock, WAIT_S))
            assert ok, f"expected {count} {what} within {WAIT_S} rig s, got {self.items}"
            return list(self.items)


class Observed:
    """A transport whose TX acks are also put in an inbox, after the server has handled them."""

    def __init__(self, inner: Any, acks: Inbox) -> None:
        self.inner, self.acks = inner, acks

    def start(self, on_uplink, on_tx_ack) -> None:  # type: ignore[no-untyped-def]
        self.inner.start(on_uplink, lambda ack: (on_tx_ack(ack), self.acks.put(ack)))

    def send_downlink(self, frame: DownlinkFrame) -> None:
        self.inner.send_downlink(frame)

    def close(self) -> None:
        self.inner.close()
