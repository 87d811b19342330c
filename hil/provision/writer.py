"""Writing a unit's identity and keys into the DUT, and reading it back: through SWD or the console.

* :class:`ConsoleIdentityWriter` sends the AT dialect's commands (DevEUI, JoinEUI, AppKey, NwkKey
  for 1.1, OTAA, class) and reads the EUIs back with the dialect's identity queries. Keys cannot
  be read back through a console (a module does not show them, or should not): the join in the
  functional test proves them, since a join-accept only decrypts under the right key.
* :class:`SwdIdentityWriter` halts the core, writes the fields of the rig file's NVM layout
  (``dut.swd.nvm_layout``) through the probe, reads every one back, then resets the MCU so its
  firmware boots on the new identity. The unit must have booted once (its firmware lays out the
  NVM on a blank part); the station powers it and waits for its console first.

A mismatch on read-back is the DUT's failure (AssertionError); no message shows a key.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from hil.clock import Deadline
from hil.lorawan.types import EUI64
from hil.provision.identity import RootKeys

__all__ = ["ConsoleIdentityWriter", "Identity", "IdentityWriter", "SwdIdentityWriter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """What a unit is given: EUIs, root keys, LoRaWAN version and class."""

    dev_eui: EUI64
    join_eui: EUI64
    keys: RootKeys
    lorawan_version: str
    device_class: str


class IdentityWriter(Protocol):
    method: str

    def write(self, identity: Identity, deadline: Deadline) -> None:
        """Write the identity and verify it reads back; AssertionError if the DUT does not keep it."""
        ...


class ConsoleIdentityWriter:
    """Through the DUT console's AT dialect (:class:`drivers.console.DutConsole`)."""

    method = "console"

    def __init__(self, console: Any) -> None:
        self.console = console

    def write(self, identity: Identity, deadline: Deadline) -> None:
        c = self.console
        c.set_dev_eui(identity.dev_eui, deadline)
        c.set_join_eui(identity.join_eui, deadline)
        c.set_app_key(identity.keys.app_key, deadline)
        if identity.keys.nwk_key is not None:
            c.set_nwk_key(identity.keys.nwk_key, deadline)
        c.set_activation("otaa", deadline)
        c.set_class(identity.device_class, deadline)  # type: ignore[arg-type]
        back = c.identity(deadline)
        for field, want in (("dev_eui", identity.dev_eui), ("join_eui", identity.join_eui)):
            got = back.get(field)
            if got is not None and got != str(want):
                raise AssertionError(f"{field} reads back {got.upper()} after writing {str(want).upper()}: "
                                     "the DUT did not keep it")
            if got is None:
                log.warning("the console dialect has no %s query: %s not read back", field, field)


class SwdIdentityWriter:
    """Through the debug probe into the NVM layout (``drivers.swd.SwdProbe``): the rig file's
    ``dut.swd.nvm_layout`` plus the station's ``write.nvm_layout`` (the production firmware's
    identity block), as :class:`hil.rigfile.model.NvmField` entries.

    ``fields`` maps layout field names to ``dev_eui``, ``join_eui``, ``app_key``, ``nwk_key`` or a
    constant (e.g. ``app_key_set: 1``); fields whose value the identity lacks (``nwk_key`` in 1.0.x)
    are left alone, as are fields the layout does not have.
    """

    method = "swd"

    def __init__(self, probe: Any, layout: Mapping[str, Any], fields: Mapping[str, str | int]) -> None:
        self.probe = probe
        self.layout = layout
        self.fields = dict(fields)
        missing = [name for name, value in self.fields.items() if value in ("dev_eui", "app_key") and name not in layout]
        if missing:
            raise ValueError(f"write.swd_fields: the rig file's dut.swd.nvm_layout has no field {', '.join(missing)}")

    def _values(self, identity: Identity) -> dict[str, Any]:
        source: dict[str, Any] = {
            "dev_eui": identity.dev_eui, "join_eui": identity.join_eui,
            "app_key": identity.keys.app_key.reveal(),
            "nwk_key": identity.keys.nwk_key.reveal() if identity.keys.nwk_key is not None else None,
        }
        values: dict[str, Any] = {}
        for name, value in self.fields.items():
            if name not in self.layout:
                continue
            if isinstance(value, str):
                if value not in source:
                    raise ValueError(f"write.swd_fields.{name}: {value!r} is not dev_eui, join_eui, app_key or nwk_key")
                if source[value] is None:
                    continue
                values[name] = source[value]
            else:
                values[name] = value
        return values

    def write(self, identity: Identity, deadline: Deadline) -> None:
        from drivers.swd.fields import decode, encode

        values = self._values(identity)
        probe = self.probe
        probe.halt()
        try:
            for name, value in values.items():
                f = self.layout[name]
                probe.write_memory(f.addr, encode(name, f, value))
            for name, value in values.items():
                f = self.layout[name]
                got = decode(name, f, probe.read_memory(f.addr, f.length))
                if not _same(got, value):
                    secret = isinstance(value, (bytes, bytearray))
                    shown = "(value not shown)" if secret else f"{got!r}, wrote {value!r}"
                    raise AssertionError(f"NVM field {name} reads back differently after the SWD write {shown}")
        finally:
            probe.reset()  # the firmware boots on what NVM now holds (and the halt is released)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (bytes, bytearray)):
        raw = got.reveal() if hasattr(got, "reveal") else got
        return isinstance(raw, (bytes, bytearray)) and hmac.compare_digest(bytes(raw), bytes(want))
    if isinstance(want, EUI64) or isinstance(got, EUI64):
        try:
            return int(EUI64(got)) == int(EUI64(want))
        except Exception:
            return False
    return bool(got == want)
