"""The production provisioning station: a unique identity and keys per unit, a functional test over
the air, and a record of each unit.

:mod:`.tr005` the QR label payloads, :mod:`.identity` DevEUIs from an IEEE block and fresh keys,
:mod:`.kek` keys sealed at rest (AES-GCM under a KEK), :mod:`.store` the record store
(SQLAlchemy Core: SQLite or PostgreSQL), :mod:`.exports` ChirpStack/TTS CSVs and labels,
:mod:`.config` the station file (``rigs/stations/*.yaml``), :mod:`.measure` measurements with
limits and units, :mod:`.writer` identity into the DUT (SWD or console), :mod:`.functional` the
over-the-air test, :mod:`.station` the per-unit flow, :mod:`.rigparts` its parts from a rig
session, :mod:`.report` the batch summary. ``python -m hil provision`` runs it.
"""

from hil.provision.config import StationConfig, StationConfigError, load_station
from hil.provision.station import BatchResult, ProvisioningStation, StationParts, UnitOutcome
from hil.provision.store import AlreadyProvisioned, DuplicateDevEui, RecordStore
from hil.provision.tr005 import LabelError, Tr005Label, format_label, parse_label

__all__ = [
    "AlreadyProvisioned",
    "BatchResult",
    "DuplicateDevEui",
    "LabelError",
    "ProvisioningStation",
    "RecordStore",
    "StationConfig",
    "StationConfigError",
    "StationParts",
    "Tr005Label",
    "UnitOutcome",
    "format_label",
    "load_station",
    "parse_label",
]
