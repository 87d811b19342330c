"""The sim: section of rig files: validation with the file and key path in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.sim.config import SimConfigError, load_sim_config

ROOT = Path(__file__).resolve().parents[3]


def test_default_rig_file_loads() -> None:
    config = load_sim_config(ROOT / "rigs" / "sim.yaml")
    assert config.time_scale == 20 and config.dut.region == "EU868"
    text = repr(config) + str(config)
    assert "2b7e151628aed2a6abf7158809cf4f3c" not in text and "hil-virtual-relay" not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sim:\n  dut:\n    app_key: 00112233445566778899aabbccddeeff\n    colour: red\n", "sim.dut.colour"),
        ("sim:\n  dut:\n    app_key: 0011\n", "sim.dut.app_key"),
        ("sim:\n  dut: {app_key: 00112233445566778899aabbccddeeff, dev_eui: xyz}\n", "sim.dut.dev_eui"),
        ("sim:\n  gateway: {transport: lorawan-magic}\n  dut: {app_key: 00112233445566778899aabbccddeeff}\n",
         "sim.gateway.transport"),
        ("name: bench\n", "no 'sim:' section"),
        ("sim: [", "not valid YAML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text(body)
    with pytest.raises(SimConfigError) as info:
        load_sim_config(rig)
    assert str(rig) in str(info.value) and message.replace("no 'sim:' section", "sim:") in str(info.value)
    assert "0011" not in str(info.value).replace(str(rig), "")  # key material never echoed


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SimConfigError, match="cannot read"):
        load_sim_config(tmp_path / "nope.yaml")
