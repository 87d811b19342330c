"""OTAA join, as the DUT's console and the reference network see it (runs on any rig).

The full join suite (RX2-only accepts, late and corrupted accepts, denied devices, channel
hopping, DLSettings/RxDelay/CFList, 1.1) builds on this file.
"""

from __future__ import annotations

import pytest

from drivers.console import ConsoleCommandError
from hil.clock import Deadline
from hil.lorawan.frames import JoinRequest, decode

pytestmark = pytest.mark.join


def test_otaa_join_then_uplink_in_the_new_session(rig, dut, network) -> None:  # type: ignore[no-untyped-def]
    lw = rig.rig.dut.lorawan
    result = dut.join(Deadline.after(rig.clock, 120.0))
    assert result.joined, f"the DUT reported no join: {result.line!r} ({result.reason})"

    requests = network.events.filter(mtype="join_request")
    assert requests, "the network saw no join-request"
    request = decode(requests[-1].phy_payload)
    assert isinstance(request, JoinRequest)
    assert (request.dev_eui, request.join_eui) == (lw.dev_eui, lw.join_eui), "join-request with the wrong EUIs"
    accepted = network.events.filter(mtype="join_request", outcome="join_accepted")
    assert accepted and accepted[-1].mic_valid, "the network did not accept a join-request with a valid MIC"
    dev_addr = accepted[-1].dev_addr

    sent = send_when_free(rig, dut, 2, b"hil")
    assert sent.status == "sent", f"uplink not sent: {sent}"
    # The module reports TX done after its RX windows; the gateway's copy may still be on its way.
    network.events.wait_for(rig.clock, Deadline.after(rig.clock, 30.0), fport=2, outcome="accepted")
    uplinks = [e for e in network.events.filter(direction="up", outcome="accepted") if e.mtype.endswith("data_up")]
    assert uplinks, "the network accepted no uplink in the new session"
    assert all(e.dev_addr == dev_addr for e in uplinks), "an uplink did not use the DevAddr the join-accept assigned"
    assert uplinks[0].fcnt == 0, f"the first uplink after the join has FCnt {uplinks[0].fcnt}, expected 0"
    seen = [(e.fcnt, e.fport, e.payload) for e in uplinks]
    assert any(e.fport == 2 and e.payload == b"hil" for e in uplinks), f"the DUT's uplink was not delivered: {seen}"


def send_when_free(rig, dut, port: int, payload: bytes, within_s: float = 60.0):  # type: ignore[no-untyped-def]
    """Send an uplink, retrying while the module is busy (the relay announces itself after a join)."""
    deadline = Deadline.after(rig.clock, within_s)
    while True:
        try:
            return dut.send_uplink(port, payload, False, deadline)
        except ConsoleCommandError as exc:
            if "BUSY" not in str(exc.code) or deadline.expired:
                raise
            rig.clock.sleep(1.0)
