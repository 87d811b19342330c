"""The provisioning station on a rig (``-m provision``): units through identify, write, test, record.

On the virtual rig the handler swaps a factory-fresh DUT in for every unit. The fixture puts the
rig back as the rig file describes it afterwards (a factory-fresh unit, which boots into the rig
file's identity, and the network forgetting that identity's DevNonces), so later suites see the
DUT they expect. The station's command line on a private virtual rig (a run killed half-way,
twenty units) is tested in tests/unit/provision/test_station_runs.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterator

import pytest

from drivers.swd.image import load_image
from hil.clock import Deadline
from hil.lorawan.types import EUI64
from hil.provision.config import load_station
from hil.provision.kek import new_kek_hex
from hil.provision.rigparts import station_parts
from hil.provision.station import ProvisioningStation

pytestmark = pytest.mark.provision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def station(rig: Any, tmp_path: Path) -> Iterator[ProvisioningStation]:
    if rig.rig.handler is None:
        pytest.skip("provisioning needs a unit handler: the rig file has no 'handler'")
    if rig.rig.handler.kind != "scpi":
        pytest.skip("an operator handler needs a person at the terminal")
    parts, close = station_parts(rig)
    config = load_station("sim-station", batch="pytest", store={"path": str(tmp_path / "records.sqlite")})
    config = config.model_copy(update={"kek": new_kek_hex()})
    st = ProvisioningStation(config, parts)
    try:
        yield st
    finally:
        st.close()
        _restore_rig_dut(rig, parts)
        close()


def _restore_rig_dut(rig: Any, parts: Any) -> None:
    """A factory-fresh unit in the fixture, and the network forgetting the rig file's device's nonces."""
    from hil.network.errors import UnknownDeviceError

    parts.psu.output(False)
    deadline = Deadline.after(rig.clock, 60.0)
    if parts.handler.unit_present():
        parts.handler.unload("reject", deadline)
    parts.handler.load_next(deadline)
    lw = rig.rig.dut.lorawan
    try:
        parts.network.remove_device(lw.dev_eui)
    except UnknownDeviceError:
        pass
    parts.network.add_device(lw.device_config(rig.rig.network, name=rig.rig.name))


def _plaintext_absent(db: Path, keys: list[bytes]) -> None:
    blob = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    for raw in keys:
        for form in (raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)):
            assert form not in blob, "a root key in clear in the record store"


def test_units_are_provisioned_and_pass_over_the_air(station: ProvisioningStation, tmp_path: Path) -> None:
    result = station.run_batch(2)
    assert result.complete and [o.status for o in result.outcomes] == ["passed", "passed"], \
        [(o.status, o.message) for o in result.outcomes]
    records = station.store.units(batch="pytest")
    assert len(records) == 2 and all(r.status == "passed" and r.sorted_at for r in records)
    assert len({r.dev_eui for r in records}) == 2
    keys = [station.store.keys(r) for r in records]
    assert keys[0].app_key != keys[1].app_key
    for record in records:
        joined = station.parts.network.events.filter(mtype="join_request", outcome="join_accepted",
                                                     dev_eui=EUI64.parse(record.dev_eui))
        assert joined, f"the network accepted no join from {record.dev_eui}"
        measured = {s.measurement: s for s in station.store.steps(record.id) if s.measurement}
        for name, unit in (("sleep_current", "A"), ("tx_current", "A"), ("mains_on", "V"), ("mains_off", "V")):
            step = measured[name]
            assert step.unit == unit and step.status == "passed"
            assert (step.low is None or step.value >= step.low) and (step.high is None or step.value <= step.high)
        assert record.label and record.label.startswith(f"LW:D0:70B3D57ED00000FF:{record.dev_eui.upper()}:")
    _plaintext_absent(tmp_path / "records.sqlite", [k.app_key.reveal() for k in keys])


def test_a_passed_unit_is_refused_then_reworked_with_its_identity(station: ProvisioningStation, rig: Any) -> None:
    result = station.run_batch(1)
    assert result.complete, [(o.status, o.message) for o in result.outcomes]
    (record,) = station.store.units(batch="pytest")
    start = rig.rig.sim.handler.labels.dev_eui_start
    serial = int(EUI64.parse(record.dev_eui)) - int(start) + 1
    handler = station.parts.handler
    handler.reload(serial, Deadline.after(rig.clock, 60.0))  # the same unit comes back to the station
    refused = station.process_unit()
    assert refused.status == "refused" and "--rework" in refused.message
    assert station.store.unit(record.unit_uid).attempts == 1  # nothing was done to it
    handler.reload(serial, Deadline.after(rig.clock, 60.0))
    reworked = station.process_unit(rework=True)
    assert reworked.status == "passed" and reworked.dev_eui == record.dev_eui and not reworked.new_identity
    again = station.store.unit(record.unit_uid)
    assert again.attempts == 2 and again.status == "passed" and len(station.store.units()) == 1


def test_identity_through_swd_keyed_by_the_mcu_unique_id(rig: Any, tmp_path: Path) -> None:
    if rig.rig.dut.swd is None or rig.rig.handler is None or rig.rig.handler.kind != "scpi":
        pytest.skip("this test needs an SWD probe (dut.swd) and an automated handler")
    parts, close = station_parts(rig)
    config = load_station("sim-station-swd", batch="pytest-swd", store={"path": str(tmp_path / "records.sqlite")})
    config = config.model_copy(update={"kek": new_kek_hex()})
    station = ProvisioningStation(config, parts)
    assert station.firmware is not None, "the SWD station flashes the production image"
    image = load_image(station.firmware)
    try:
        result = station.run_batch(2)
        assert result.complete, [(o.status, o.message) for o in result.outcomes]
        records = station.store.units(batch="pytest-swd")
        assert [r.serial for r in records] == [0x7ED3000000, 0x7ED3000001]  # the block's serials, in order
        assert all(r.unit_uid == f"swd:{r.mcu_uid}" and len(r.mcu_uid or "") == 24 for r in records)
        assert len({r.mcu_uid for r in records}) == 2
        for record in records:  # the identity the firmware now runs on is the one recorded
            steps = station.store.steps(record.id)
            assert {"flash", "write", "join", "relay", "uplink"} <= {s.name for s in steps}
            # a fresh unit comes with the factory image: the production image is written whole, and the
            # step checked that the unit then reports the image's version
            written = {s.measurement: s.value for s in steps if s.name == "flash" and s.measurement}
            assert written == {"firmware_bytes": image.size, "firmware_written": image.size}, written
            assert record.firmware_sha256 == image.sha256
    finally:
        station.close()
        _restore_rig_dut(rig, parts)
        close()
