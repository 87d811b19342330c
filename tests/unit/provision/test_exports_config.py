"""Bulk-import CSVs (their documented columns), label files, and the station config's errors."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pytest

from hil.lorawan.types import EUI64
from hil.provision.config import StationConfigError, load_station
from hil.provision.exports import CHIRPSTACK_COLUMNS, TTS_COLUMNS, export_batch
from hil.provision.identity import EuiBlock, generate_root_keys
from hil.provision.kek import KeyEncryptor
from hil.provision.store import RecordStore
from hil.provision.tr005 import Tr005Label, format_label, parse_label

ROOT = Path(__file__).resolve().parents[3]


def _batch(tmp_path: Path, version: str) -> tuple[RecordStore, list]:  # type: ignore[type-arg]
    store = RecordStore(f"sqlite:///{tmp_path / 's.db'}", KeyEncryptor(bytes(32)))
    claims = []
    for i in range(3):
        claim = store.claim(f"swd:{i}", batch="B7", station_id="st", operator="op", lorawan_version=version,
                            join_eui=EUI64(0x70B3D57ED00000FF), keys_factory=lambda: generate_root_keys(version),
                            block=EuiBlock("70B3D5"),
                            label=lambda e: format_label(Tr005Label(EUI64(0x70B3D57ED00000FF), e, 0xFFFF, 1),
                                                         checksum=True))
        store.finish(claim.record.id, passed=i < 2)  # the third failed: not exported
        claims.append(claim)
    return store, claims


def test_tts_csv_has_the_documented_columns_and_keys(tmp_path: Path) -> None:
    store, claims = _batch(tmp_path, "1.0.4")
    done = export_batch(store, "B7", tmp_path / "out", device_class="C")
    text = done.tts.read_text()
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert text.splitlines()[0] == ";".join(TTS_COLUMNS)
    assert {"dev_eui", "join_eui", "app_key"} <= set(TTS_COLUMNS)  # the required ones (TTS CSV reference)
    assert len(rows) == 2 and done.units == 2
    first = rows[0]
    assert first["dev_eui"] == claims[0].record.dev_eui and first["join_eui"] == "70b3d57ed00000ff"
    assert first["app_key"] == claims[0].keys.app_key.reveal_hex() and first["nwk_key"] == ""
    assert (first["lorawan_version"], first["lorawan_phy_version"], first["frequency_plan_id"]) == (
        "MAC_V1_0_4", "RP002_V1_0_3", "EU_863_870_TTN")
    assert first["supports_class_c"] == "true" and first["id"] == f"eui-{claims[0].record.dev_eui}"
    assert stat.S_IMODE(done.tts.stat().st_mode) == 0o600  # keys in clear: owner only


def test_chirpstack_csv_follows_the_api_key_fields(tmp_path: Path) -> None:
    store, claims = _batch(tmp_path, "1.0.4")
    done = export_batch(store, "B7", tmp_path / "out", device_class="C", chirpstack_application_id="app-uuid",
                        chirpstack_device_profile_id="dp-uuid")
    rows = list(csv.DictReader(io.StringIO(done.chirpstack.read_text())))
    assert tuple(rows[0]) == CHIRPSTACK_COLUMNS
    # ChirpStack's DeviceKeys: for LoRaWAN 1.0.x the AppKey goes in nwk_key; app_key only for 1.1
    assert rows[0]["nwk_key"] == claims[0].keys.app_key.reveal_hex() and rows[0]["app_key"] == ""
    assert (rows[0]["application_id"], rows[0]["device_profile_id"]) == ("app-uuid", "dp-uuid")
    assert stat.S_IMODE(done.chirpstack.stat().st_mode) == 0o600


def test_lorawan_1_1_exports_both_root_keys(tmp_path: Path) -> None:
    store, claims = _batch(tmp_path, "1.1")
    done = export_batch(store, "B7", tmp_path / "out", device_class="A")
    cs = list(csv.DictReader(io.StringIO(done.chirpstack.read_text())))[0]
    assert cs["nwk_key"] == claims[0].keys.nwk_key.reveal_hex() and cs["app_key"] == claims[0].keys.app_key.reveal_hex()
    tts = list(csv.DictReader(io.StringIO(done.tts.read_text()), delimiter=";"))[0]
    assert tts["lorawan_version"] == "MAC_V1_1" and tts["nwk_key"] == claims[0].keys.nwk_key.reveal_hex()


def test_a_label_file_and_png_per_passed_unit(tmp_path: Path) -> None:
    store, claims = _batch(tmp_path, "1.0.4")
    done = export_batch(store, "B7", tmp_path / "out", device_class="C")
    names = sorted(p.name for p in done.labels)
    stem = claims[0].record.dev_eui.upper()
    assert f"{stem}.txt" in names and f"{stem}.png" in names and len(names) == 4
    payload = (done.directory / "labels" / f"{stem}.txt").read_text().strip()
    assert parse_label(payload).dev_eui == EUI64.parse(claims[0].record.dev_eui)
    assert (done.directory / "labels" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_virtual_station_file_loads() -> None:
    config = load_station("sim-station")
    assert config.limits.tx_current.low == pytest.approx(0.020) and config.limits.mains_off.high == 10.0
    assert config.store_url.startswith("sqlite:///") and config.exports_dir.is_absolute()


@pytest.mark.parametrize(("change", "message"), [
    ("sleep_current: {min: 0.5 mA, max: 3 mA}", None),
    ("sleep_current: {min: 0.5, max: 3 mA}", "limits.sleep_current: 0.5 has no unit"),
    ("sleep_current: {min: 0.5 mV, max: 3 mA}", "expected a quantity in A"),
    ("sleep_current: {min: 5 mA, max: 3 mA}", "min 5 mA is above max 3 mA"),
    ("sleep_curent: {min: 0.5 mA}", "limits.sleep_curent: unknown key"),
])
def test_station_file_errors_name_the_key(tmp_path: Path, change: str, message: str | None) -> None:
    text = (ROOT / "rigs" / "stations" / "sim-station.yaml").read_text()
    text = text.replace("sleep_current: {min: 0.5 mA, max: 3 mA}", change)
    path = tmp_path / "st.yaml"
    path.write_text(text)
    if message is None:
        load_station(path)
        return
    with pytest.raises(StationConfigError) as err:
        load_station(path)
    assert str(path) in str(err.value) and message in str(err.value)
