"""A throwaway PostgreSQL server for the record-store tests. No test lives here.

:func:`temporary_server` runs ``initdb`` in a temporary folder and the server as a child process
on a free loopback port (fsync off: nothing here needs to survive a crash), and removes both
afterwards. The server gets SIGTERM if the test process dies, even by SIGKILL. Running as root
(CI), the server runs as the ``postgres`` user that Debian's package creates: PostgreSQL refuses
to run as root. Without server binaries the tests that need it are skipped, naming the package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from hil.sim.child_process import OutputDrain, die_with_parent

INSTALL_HINT = "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"


def server_binaries() -> Path | None:
    """The folder holding ``postgres`` and ``initdb``: on PATH, else Debian's /usr/lib/postgresql/<n>/bin."""
    found = shutil.which("postgres")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, reverse=True)
    return versions[0].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> tuple[Callable[[], None], int | None, int | None]:
    """preexec_fn for the server's processes, and the uid/gid they run as (None: this user)."""
    uid = gid = None
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")  # KeyError: no such user
        uid, gid = entry.pw_uid, entry.pw_gid

    def preexec() -> None:
        if gid is not None and uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        die_with_parent()  # after the uid change, which clears it

    return preexec, uid, gid


@contextmanager
def temporary_server(timeout_s: float = 60.0) -> Iterator[str]:
    """A running server; yields its SQLAlchemy base URL ``postgresql+psycopg://hil@127.0.0.1:<port>``.

    Raises LookupError with :data:`INSTALL_HINT` when there is no server to run.
    """
    bindir = server_binaries()
    if bindir is None:
        raise LookupError(INSTALL_HINT)
    try:
        preexec, uid, gid = _as_server_user()
    except KeyError:
        raise LookupError("running as root, the PostgreSQL server needs the 'postgres' user "
                          "(Debian's postgresql package creates it)") from None
    folder = Path(tempfile.mkdtemp(prefix="hil-pg-"))  # not under pytest's 0700 tmp: the server user reads it
    data, sockets = folder / "data", folder / "run"
    sockets.mkdir()
    if uid is not None and gid is not None:
        for path in (folder, sockets):
            os.chown(path, uid, gid)
    proc: subprocess.Popen[str] | None = None
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "hil", "-E", "UTF8",
                        "--no-sync", "--no-instructions"],
                       preexec_fn=preexec, capture_output=True, text=True, timeout=120, check=True)
        for attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets), "-F",
                 "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=30", "-c", "shared_buffers=16MB"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
            assert proc.stderr is not None
            log = OutputDrain(proc.stderr, "ready to accept connections", "postgres-log")
            if log.wait(timeout_s) is not None and proc.poll() is None:
                break
            _stop(proc)
            proc = None
            if attempt == 2 or "could not bind" not in log.last_lines(20):
                raise RuntimeError(f"PostgreSQL did not start within {timeout_s} s: "
                                   f"{log.last_lines(8) or '(no output)'}")
        yield f"postgresql+psycopg://hil@127.0.0.1:{port}"
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed ({exc.returncode}): {exc.stderr.strip()[-500:]}") from None
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Fast shutdown (it ends the connections a test left open); killed if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    if proc.stderr is not None:
        proc.stderr.close()


def data_folder_bytes(url: str) -> bytes:
    """Every byte the server stored for the database at ``url`` (its tables and indexes) and the
    write-ahead log, after a checkpoint: to search for plaintext."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT current_setting('data_directory'), oid FROM pg_database "
                           "WHERE datname = current_database()").fetchone()
    assert row is not None
    data = Path(row[0])
    files = [*(data / "base" / str(row[1])).iterdir(), *(data / "pg_wal").glob("0*")]
    return b"".join(p.read_bytes() for p in files if p.is_file())
