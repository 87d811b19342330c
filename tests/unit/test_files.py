"""hil.files.write_atomically: the whole new file or the old one, never a temporary left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hil.files import write_atomically


def test_text_and_bytes_replace_the_file_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.csv"
    write_atomically(path, "one\r\ntwo\n")
    assert path.read_bytes() == b"one\r\ntwo\n"  # line ends kept as given
    write_atomically(path, b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff" and os.listdir(path.parent) == ["a.csv"]


def test_a_key_file_is_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    write_atomically(path, "k", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "env.properties"
    write_atomically(path, "old=1\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "new=é\n", encoding="ascii")
    assert path.read_text() == "old=1\n" and os.listdir(tmp_path) == ["env.properties"]
