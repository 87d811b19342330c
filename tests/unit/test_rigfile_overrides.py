"""Command-line rig-file overrides (``--rig-set``): parsed as YAML, applied before validation."""

from __future__ import annotations

import pytest

from hil.rigfile import RigFileError, load_rig
from hil.rigfile.overrides import OverrideError, apply_overrides, parse_override


def test_value_is_yaml() -> None:
    assert parse_override("sim.dut.defects=[rx1_late, sync_silent]") == (("sim", "dut", "defects"),
                                                                         ["rx1_late", "sync_silent"])
    assert parse_override("timing.time_scale=5") == (("timing", "time_scale"), 5)
    assert parse_override('network.net_id="000013"') == (("network", "net_id"), "000013")
    assert parse_override("sim.dut.nvm_file=") == (("sim", "dut", "nvm_file"), None)


@pytest.mark.parametrize("text", ["no-equals-sign", "=5", "a..b=1", "a.b=[unclosed"])
def test_malformed_override_is_named(text: str) -> None:
    with pytest.raises(OverrideError, match="rig override"):
        parse_override(text)


def test_missing_sections_are_created_and_scalars_are_not_walked_into() -> None:
    data = {"name": "x", "sim": {"dut": {}}}
    assert apply_overrides(data, ["sim.dut.defects=[a]", "extra.key=1"]) == ["sim.dut.defects", "extra.key"]
    assert data["sim"]["dut"]["defects"] == ["a"] and data["extra"] == {"key": 1}
    with pytest.raises(OverrideError, match="name is a str, not a section"):
        apply_overrides(data, ["name.sub=1"])


def test_override_applies_to_a_rig_file_and_is_validated() -> None:
    rig = load_rig("sim", overrides=["sim.dut.defects=[rx1_late]", "timing.time_scale=5"])
    assert rig.time_scale == 5
    assert rig.overrides == ("sim.dut.defects", "timing.time_scale")
    with pytest.raises(RigFileError, match="time_scale"):
        load_rig("sim", overrides=["timing.time_scale=-1"])
    with pytest.raises(RigFileError, match="rig override"):
        load_rig("sim", overrides=["oops"])
