"""Files written in one step: a crash or a kill leaves the old file or the new one, never a half."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes | str, *, mode: int = 0o666, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``data`` (text is encoded, line ends kept as given).

    A temporary file with a unique name beside it, then ``os.replace``: concurrent writers never
    share a temporary file. ``mode`` is the new file's permission before the umask (``0o600`` for a
    file holding keys).
    """
    raw = data.encode(encoding) if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
