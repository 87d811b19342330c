"""``python -m hil provision``: bad input is one clear line and exit code 2; no rig is needed to refuse it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_new_kek_prints_64_hex_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--new-kek"]) == 0
    assert re.fullmatch(r"[0-9a-f]{64}\n", capsys.readouterr().out)


def test_a_bad_station_file_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    station = tmp_path / "bad.yaml"
    station.write_text((ROOT / "rigs" / "stations" / "sim-station.yaml").read_text().replace(
        "tx_current: {min: 20 mA, max: 80 mA}", "tx_current: {min: 20, max: 80 mA}"))
    assert main(["provision", "--station", str(station)]) == 2
    err = capsys.readouterr().err
    assert f"{station}: limits.tx_current: 20 has no unit" in err and err.count("\n") == 1


def test_a_missing_kek_is_named_before_the_rig_comes_up(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_TEST_NO_SUCH_KEK", raising=False)
    station = tmp_path / "st.yaml"
    station.write_text((ROOT / "rigs" / "stations" / "sim-station.yaml").read_text().replace(
        "kek: {file: keys/sim-station.kek}", "kek: ${env:HIL_TEST_NO_SUCH_KEK}"))
    assert main(["provision", "--station", str(station), "--rig", "no-such-rig"]) == 2
    assert "environment variable HIL_TEST_NO_SUCH_KEK is not set" in capsys.readouterr().err


def test_export_only_writes_the_batch_without_a_rig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    station = tmp_path / "st.yaml"
    text = (ROOT / "rigs" / "stations" / "sim-station.yaml").read_text()
    station.write_text(text.replace("dir: ../../reports/provision", f"dir: {tmp_path / 'out'}").replace(
        "kek: {file: keys/sim-station.kek}", f"kek: {'ab' * 32}"))
    assert main(["provision", "--station", str(station), "--export", "--batch", "empty",
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    assert "0 unit(s) of batch empty" in capsys.readouterr().out
    assert (tmp_path / "out" / "empty" / "tts.csv").read_text().startswith("id;dev_eui;join_eui;")
