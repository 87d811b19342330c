"""Exports of a batch: bulk-import CSVs for ChirpStack and The Things Stack, and a label per unit.

These files carry the root keys in clear (an import needs them): they are written with mode 0600
and only for passed units; nothing here logs a key.

The Things Stack, "CSV File Reference" (thethingsindustries.com/docs/hardware/devices/adding-devices/
adding-devices-in-bulk/device-csv/; lorawan-stack-docs ``device-csv.md``): semicolon-delimited,
header row required, unknown columns ignored; ``dev_eui`` and ``join_eui`` required, ``app_key``
required for OTAA, ``nwk_key`` for 1.1; ``id`` lower case with hyphens; ``lorawan_version`` a
MACVersion (``MAC_V1_0_4``), ``lorawan_phy_version`` a PHYVersion, ``frequency_plan_id``,
``supports_class_c``.

ChirpStack v4 has no CSV import of its own (chirpstack/chirpstack issue #403: bulk creation goes
through its API). The CSV carries the API's fields, one row per device, so a script or a
community importer maps it 1:1: ``Device`` (``dev_eui``, ``name``, ``description``,
``application_id``, ``device_profile_id``, ``join_eui``) and ``DeviceKeys`` (``nwk_key``,
``app_key``) of ``api/device.proto`` (chirpstack ``api/md/api/api.md``). Note the API's rule:
"For LoRaWAN 1.0.x, use this field [nwk_key] for the LoRaWAN 1.0.x 'AppKey'", and ``app_key`` is
set only for 1.1 devices; this export follows it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hil.files import write_atomically
from hil.provision.identity import RootKeys
from hil.provision.store import RecordStore, UnitRecord

__all__ = [
    "CHIRPSTACK_COLUMNS",
    "TTS_COLUMNS",
    "ExportedBatch",
    "chirpstack_csv",
    "export_batch",
    "tts_csv",
    "write_label",
]

CHIRPSTACK_COLUMNS = ("dev_eui", "join_eui", "name", "description", "application_id", "device_profile_id",
                      "nwk_key", "app_key")
TTS_COLUMNS = ("id", "dev_eui", "join_eui", "name", "frequency_plan_id", "lorawan_version", "lorawan_phy_version",
               "supports_class_c", "app_key", "nwk_key")
_TTS_MAC_VERSION = {"1.0.2": "MAC_V1_0_2", "1.0.3": "MAC_V1_0_3", "1.0.4": "MAC_V1_0_4", "1.1": "MAC_V1_1"}


@dataclass(frozen=True)
class ExportedBatch:
    """What :func:`export_batch` wrote."""

    directory: Path
    chirpstack: Path
    tts: Path
    labels: tuple[Path, ...]
    units: int


def _name(record: UnitRecord) -> str:
    return f"{record.batch}-{record.dev_eui}"


def chirpstack_csv(rows: Iterable[tuple[UnitRecord, RootKeys]], *, application_id: str = "",
                   device_profile_id: str = "") -> str:
    """ChirpStack v4 API fields per device, comma-separated with a header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CHIRPSTACK_COLUMNS)
    for record, keys in rows:
        v11 = record.lorawan_version == "1.1"
        nwk = (keys.nwk_key if v11 else keys.app_key)
        writer.writerow([
            record.dev_eui, record.join_eui, _name(record),
            f"provisioned by {record.station_id} ({record.operator}), {record.finished_at}",
            application_id, device_profile_id,
            nwk.reveal_hex() if nwk is not None else "",
            keys.app_key.reveal_hex() if v11 else "",
        ])
    return out.getvalue()


def tts_csv(rows: Iterable[tuple[UnitRecord, RootKeys]], *, frequency_plan_id: str, lorawan_phy_version: str,
            device_class: str) -> str:
    """The Things Stack end-device CSV (semicolons, header row)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(TTS_COLUMNS)
    for record, keys in rows:
        writer.writerow([
            f"eui-{record.dev_eui}", record.dev_eui, record.join_eui, _name(record), frequency_plan_id,
            _TTS_MAC_VERSION[record.lorawan_version], lorawan_phy_version,
            "true" if device_class == "C" else "false",
            keys.app_key.reveal_hex(), keys.nwk_key.reveal_hex() if keys.nwk_key is not None else "",
        ])
    return out.getvalue()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (it holds keys), atomically."""
    write_atomically(path, text, mode=0o600)


def write_label(record: UnitRecord, directory: Path, *, png: bool = True) -> list[Path]:
    """``<DEVEUI>.txt`` with the TR005 payload (what the label printer prints) and ``<DEVEUI>.png``, its QR code."""
    if not record.label:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    stem = record.dev_eui.upper()
    text_path = directory / f"{stem}.txt"
    text_path.write_text(f"{record.label}\n", encoding="ascii")
    written = [text_path]
    if png:
        import segno

        # TR005 payloads are upper-case hex and ':' only, which fits QR alphanumeric mode
        qr = segno.make_qr(record.label, error="m")
        png_path = directory / f"{stem}.png"
        qr.save(png_path, scale=6, border=4)
        written.append(png_path)
    return written


def export_batch(store: RecordStore, batch: str, directory: Path, *, device_class: str, chirpstack_application_id: str = "",
                 chirpstack_device_profile_id: str = "", tts_frequency_plan_id: str = "EU_863_870_TTN",
                 tts_phy_version: str = "RP002_V1_0_3", png: bool = True) -> ExportedBatch:
    """Write the batch's passed units: ``chirpstack.csv``, ``tts.csv`` and ``labels/`` under ``directory/<batch>``."""
    out = directory / batch
    records = store.units(batch=batch, status="passed")
    rows = [(r, store.keys(r)) for r in records]
    chirpstack = out / "chirpstack.csv"
    tts = out / "tts.csv"
    _write_private(chirpstack, chirpstack_csv(rows, application_id=chirpstack_application_id,
                                              device_profile_id=chirpstack_device_profile_id))
    _write_private(tts, tts_csv(rows, frequency_plan_id=tts_frequency_plan_id, lorawan_phy_version=tts_phy_version,
                                device_class=device_class))
    labels: list[Path] = []
    for record in records:
        labels.extend(write_label(record, out / "labels", png=png))
    return ExportedBatch(out, chirpstack, tts, tuple(labels), len(records))
