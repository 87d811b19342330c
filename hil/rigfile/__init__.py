"""Rig files: a bench described in YAML, validated into typed models with its secrets hidden.

    rig = load_rig("sim")                 # rigs/sim.yaml; or a path
    with rig.bring_up() as up:            # starts the virtual rig, fills in ${sim:...}
        up.rig.dut.console.port           # '/dev/pts/7'

:mod:`~hil.rigfile.model` holds the models, :mod:`~hil.rigfile.secrets` where secrets come from,
:mod:`~hil.rigfile.redaction` the process-wide masking of loaded secrets, and
:mod:`~hil.rigfile.loader` the reading, error messages and bring-up.
"""

from hil.rigfile.loader import PROVIDERS, PlaceholderError, RigUp, bring_up, load_rig, parse_rig, resolve_rig_path
from hil.rigfile.model import PARTS, Placeholder, Rig, RigFileError
from hil.rigfile.redaction import REDACTOR, RedactingFilter, Redactor, install_log_redaction, redact
from hil.rigfile.secrets import SecretReferenceError

__all__ = [
    "PARTS",
    "PROVIDERS",
    "Placeholder",
    "PlaceholderError",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "Rig",
    "RigFileError",
    "RigUp",
    "SecretReferenceError",
    "bring_up",
    "install_log_redaction",
    "load_rig",
    "parse_rig",
    "redact",
    "resolve_rig_path",
]
