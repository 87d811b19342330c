"""A real MQTT broker for the virtual rig, on an ephemeral loopback port.

``auto``: Debian's mosquitto when installed (fast, reliable), started with a generated config
(``max_queued_messages 0``: its default of 1000 silently drops QoS1 bursts); otherwise amqtt
in a subprocess. Readiness is the broker's own word (mosquitto's "... running" log line, printed
after its listeners are open; our amqtt runner's ``READY``), read from its output with a deadline.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Literal

from hil.sim.child_process import OutputDrain, die_with_parent

BrokerKind = Literal["auto", "mosquitto", "amqtt"]


class BrokerError(RuntimeError):
    """The broker could not be started (a rig fault, not a product failure)."""


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A running broker process. Use as a context manager or call :meth:`stop`."""

    kind: str
    host: str
    port: int
    process: subprocess.Popen[str]
    _workdir: str | None = None
    output: OutputDrain | None = None  # what the broker printed last (its log tail, for error messages)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the broker and wait for it (real seconds); kill it if it does not go."""
        proc = self.process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        if self.output is not None:
            self.output.join(timeout_s)  # the output ends with the process
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mosquitto_path() -> str | None:
    """Where Debian's mosquitto is, if installed (/usr/sbin is not on every PATH)."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def start_mosquitto(timeout_s: float = 5.0, attempts: int = 3) -> Broker:
    """Start mosquitto on a free loopback port (retrying if another process took the port)."""
    exe = mosquitto_path()
    if exe is None:
        raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    tail = ""
    for _ in range(attempts):
        port = _free_port()
        workdir = tempfile.mkdtemp(prefix="hil-mosquitto-")
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(
                # user: stay as this user (switching users would clear the parent-death signal)
                f"user {_user_name()}\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
                "log_type information\n"
            )
        proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=die_with_parent)
        assert proc.stderr is not None
        output = OutputDrain(proc.stderr, " running", "mosquitto-log")  # printed once listeners are open
        broker = Broker("mosquitto", "127.0.0.1", port, proc, workdir, output)
        line = output.wait(timeout_s)
        if line is not None and proc.poll() is None:
            return broker
        broker.stop()
        tail = output.last_lines()
    raise BrokerError(f"mosquitto did not start listening within {timeout_s} s; its last output: {tail or '(none)'}")


def start_amqtt(timeout_s: float = 10.0) -> Broker:
    """Start amqtt in a subprocess (see :mod:`hil.sim.amqtt_broker`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil.sim.amqtt_broker"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    output = OutputDrain(proc.stdout, "READY", "amqtt-output")
    line = output.wait(timeout_s)
    if line is None:
        Broker("amqtt", "127.0.0.1", 0, proc, output=output).stop()
        raise BrokerError(f"amqtt broker did not report READY within {timeout_s} s; its last output: "
                          f"{output.last_lines() or '(none)'}")
    return Broker("amqtt", "127.0.0.1", int(line.split()[1]), proc, output=output)


def start_broker(kind: BrokerKind = "auto") -> Broker:
    """Start the broker a rig file asks for (``broker: auto`` prefers mosquitto)."""
    if kind == "mosquitto" or (kind == "auto" and mosquitto_path() is not None):
        return start_mosquitto()
    if kind in ("auto", "amqtt"):
        return start_amqtt()
    raise BrokerError(f"unknown broker kind {kind!r}; expected auto, mosquitto or amqtt")
