"""Bench instruments on VISA: profiles as data, the SCPI session, and the instrument error.

* :mod:`drivers.instruments.profiles`: the supply and DMM profiles under ``rigs/profiles/``
  (``scpi/<dialect>.yaml``, ``dmm/<dialect>.yaml``), validated into typed models;
* :mod:`drivers.instruments.visa`: a VISA resource opened by name through pyvisa-py, and the
  paced, error-checked SCPI conversation over it.

The role drivers built on them are :mod:`drivers.psu` and :mod:`drivers.feedback`.
:class:`InstrumentError` is a rig fault (unreachable instrument, I/O failure, an error in the
instrument's queue), never a product failure.
"""

from drivers.instruments.profiles import (
    DmmProfile,
    ProfileError,
    PsuProfile,
    known_dialects,
    load_dmm_profile,
    load_psu_profile,
)
from drivers.instruments.visa import InstrumentError, OperationNotSupported, ScpiSession, Transport, VisaTransport

__all__ = [
    "DmmProfile",
    "InstrumentError",
    "OperationNotSupported",
    "ProfileError",
    "PsuProfile",
    "ScpiSession",
    "Transport",
    "VisaTransport",
    "known_dialects",
    "load_dmm_profile",
    "load_psu_profile",
]
