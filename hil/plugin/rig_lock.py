"""Exclusive use of a rig: one test session at a time.

The lock is an OS file lock (``filelock``), so it dies with its process; beside it a small JSON
file names the holder (user, host, pid, start time, rig) for the message a second session gets.
Finding that file while the lock itself is free means the previous holder died: the lock is
taken over with a warning naming it.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from hil.faults import RigBusy
from hil.files import write_atomically

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    """Where rig locks live: $HIL_LOCK_DIR, else a per-machine folder in the temp dir."""
    return Path(os.environ.get("HIL_LOCK_DIR") or Path(tempfile.gettempdir()) / "hil-rig-locks")


@dataclass(frozen=True)
class Holder:
    """Who holds a rig."""

    rig: str
    user: str
    host: str
    pid: int
    started: str

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}) since {self.started}"


class RigLock:
    """Hold ``rig`` for this process. ``wait_s``: how long (real seconds) to wait for a busy rig."""

    def __init__(self, rig: str, *, lock_dir: Path | None = None, wait_s: float = 0.0) -> None:
        self.rig = rig
        self.wait_s = wait_s
        directory = lock_dir or default_lock_dir()
        directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in rig)
        self.lock_path = directory / f"{safe}.lock"
        self.holder_path = directory / f"{safe}.holder.json"
        self._lock = FileLock(self.lock_path, thread_local=False)
        self.took_over: Holder | None = None

    def holder(self) -> Holder | None:
        """The holder recorded beside the lock, if any (may be stale)."""
        try:
            return Holder(**json.loads(self.holder_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def acquire(self) -> None:
        """Take the rig, or raise :class:`RigBusy` naming its holder."""
        try:
            self._lock.acquire(timeout=self.wait_s)
        except Timeout:
            holder = self.holder()
            who = holder.describe() if holder else "another process (no holder recorded)"
            hint = f"waited {self.wait_s:g} s; " if self.wait_s else ""
            raise RigBusy(
                f"rig {self.rig!r} is in use by {who}; {hint}use --rig-wait SECONDS to wait for it "
                f"(lock {self.lock_path})"
            ) from None
        stale = self.holder()
        if stale is not None and stale.pid != os.getpid():
            self.took_over = stale
            log.warning("rig %r: took over the lock of %s, whose process is gone", self.rig, stale.describe())
        me = Holder(self.rig, _user(), socket.gethostname(), os.getpid(),
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_atomically(self.holder_path, json.dumps(asdict(me)))

    def release(self) -> None:
        """Give the rig back (safe to call when not held)."""
        if not self._lock.is_locked:
            return
        try:
            self.holder_path.unlink()
        except FileNotFoundError:
            pass
        self._lock.release()

    def __enter__(self) -> "RigLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): the uid will do
        return f"uid{os.getuid()}"
