"""Run an amqtt broker on a loopback port in this process and print ``READY <port>``.

Started by :mod:`hil.sim.broker` as a subprocess when Debian's mosquitto is not installed
(a subprocess, because amqtt's shutdown can hang with connected QoS1 clients: a process can be
killed, a thread cannot). Minimal plugins: anonymous authentication only.
"""

from __future__ import annotations

import asyncio
import logging
import sys


async def _serve() -> None:
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    port = broker._servers["default"].instance.sockets[0].getsockname()[1]  # amqtt exposes no public getter
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()  # until the parent terminates us


def main() -> None:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    try:
        asyncio.run(_serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
