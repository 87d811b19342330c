"""The station's parts from a live rig session: drivers by role, plus the unit handler and the probe."""

from __future__ import annotations

from typing import Any, Callable

from hil.plugin.session import MissingPart, RigSession
from hil.provision.station import StationParts
from hil.relay.protocol import RelayKey

__all__ = ["LazyProbe", "station_parts"]


class LazyProbe:
    """The session's SWD probe, opened the first time the station uses it (with the unit powered)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._probe: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._probe is None:
            self._probe = self._make()
        return getattr(self._probe, name)


def station_parts(session: RigSession, **handler_kwargs: Any) -> tuple[StationParts, Callable[[], None]]:
    """The parts of ``session``'s rig the station drives, and a function closing what this opened.

    MissingPart names a part the rig file lacks (a handler, a supply, a meter, a gateway).
    """
    from drivers.handler import open_handler

    rig = session.rig
    if rig.handler is None:
        raise MissingPart("provisioning needs a unit handler: the rig file has no 'handler' part "
                          "(kind: scpi for a machine, kind: operator for a person)")
    psu, meter, network, console = session.psu(), session.meter(), session.network(), session.console()
    swd, layout, firmware = None, {}, None
    if rig.dut.swd is not None:
        make_probe = getattr(session, "swd", None)
        if make_probe is None:
            raise MissingPart("the rig file has dut.swd but this framework has no SWD probe driver yet")
        swd = LazyProbe(make_probe)  # a probe reaches only a powered target: opened at first use
        layout = dict(rig.dut.swd.nvm_layout)
        firmware = rig.dut.swd.firmware
    handler = open_handler(rig.handler, session.clock, **handler_kwargs)
    relay = rig.dut.relay
    parts = StationParts(
        clock=session.clock, console=console, psu=psu, meter=meter, network=network, handler=handler,
        relay_key=RelayKey(relay.passphrase.get_secret_value()) if relay is not None else None,
        relay_fport=relay.fport if relay is not None else 10, network_settings=rig.network,
        swd=swd, nvm_layout=layout, firmware_image=firmware,
    )
    return parts, handler.close
