"""Rig faults: trouble with the bench, not the product.

An unreachable instrument, an instrument's error reply, a lost serial port or a rig that another
session holds is a :class:`RigFault`; pytest reports it as an error (Allure: broken), never as a
failed assertion about the DUT. The DUT's misbehaviour raises ``AssertionError`` (a failure).
Driver errors that are rig faults derive from this class.
"""

from __future__ import annotations


class RigFault(RuntimeError):
    """The rig, not the device under test, failed."""


class RigBusy(RigFault):
    """The rig is held by another session."""
