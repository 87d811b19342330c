"""The live rig of a test session: the rig file brought up, locked, and its parts as drivers.

Parts are opened lazily, the first time a test asks for them, so a test that needs only the
network never opens the supply. :meth:`RigSession.make_safe` commands the relay off (when the
relay was used and its coil is powered) and switches the supply off; it runs after every test, at
the end of the session, at exit and on SIGTERM/Ctrl-C. When the rig is left for good (not between
tests) it also switches the relay's mains feed off; :meth:`RigSession.mains_on` puts the feed back
on at the rig file's voltage at the start of every test that uses the relay.

The relay's OFF command is confirmed by the feedback meter (the output dead within
:data:`RELAY_OFF_CONFIRM_S` rig seconds), not by the relay's answer: the answer comes 1 s after
the switch and the EU868 duty cycle may hold it back several seconds more. Only a rig without a
meter waits for the answer.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Sequence

from hil.clock import Clock, Deadline, SystemClock
from hil.faults import RigFault
from hil.lorawan.region import get_region
from hil.network import NetworkServer
from hil.plugin.rig_lock import RigLock
from hil.plugin.safety import SafeState
from hil.relay.controller import RelayController
from hil.relay.protocol import Command, RelayKey
from hil.rigfile import REDACTOR, Rig, load_rig
from hil.rigfile.loader import RigUp

log = logging.getLogger(__name__)

#: Rig seconds the meter may take to see the relay output dead after the safe state's OFF command: a
#: Class C downlink (the gateway's scheduling margin and an SF12 RX2 airtime, about 2 s in EU868),
#: the relay's counter write to NVM, the contact's release. A Class A relay gets it only with its
#: next uplink, maybe later: then the supply, going off next, drops the coil anyway.
RELAY_OFF_CONFIRM_S = 10.0
METER_POLL_S = 0.05  # rig seconds between meter readings while confirming OFF
MAINS_VOLTAGE_TOLERANCE = 0.01  # a feed set within 1 % of the rig file's voltage is left alone


class MissingPart(Exception):
    """The rig file has no such part: a test that needs it is skipped with this message."""


class RigSession:
    """One rig, brought up for one test session."""

    def __init__(self, rig_ref: str | Path, *, wait_s: float = 0.0, reports_dir: Path = Path("reports"),
                 overrides: Sequence[str] = ()) -> None:
        self.rig_file = load_rig(rig_ref, overrides=overrides)
        self.reports_dir = reports_dir
        self.lock = RigLock(self.rig_file.name, wait_s=wait_s)
        self.safe = SafeState()
        self.up: RigUp | None = None
        self._parts: dict[str, Any] = {}
        self._real_clock: SystemClock | None = None
        self._lock = threading.RLock()
        self.relay_used = False
        self.diagnostics: list[str] = []  # what the providers reported at the end (e.g. virtual-rig lag)
        self.firmware_info: dict[str, str] = {}  # the image flashed at session start, for the report

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> "RigSession":
        self.lock.acquire()
        try:
            self.safe.install()
            self.safe.register("relay off", self._relay_off)
            self.safe.register("supply off", self._supply_off)
            self.safe.register("mains off", self._mains_off, between_tests=False)
            self.up = self.rig_file.bring_up()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Safe state, then close every part and the providers, then free the rig."""
        self.make_safe("session end", between_tests=False)
        with self._lock:
            parts, self._parts = list(self._parts.items()), {}
        for name, part in reversed(parts):
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", name)
        if self.up is not None:
            for provider in self.up.providers.values():
                self.diagnostics.extend(getattr(provider, "diagnostics", lambda: [])())
            self.up.close()
            self.up = None
        self.safe.uninstall()
        self.lock.release()

    def make_safe(self, reason: str, *, between_tests: bool = True) -> list[str]:
        """Leave the rig safe: relay off, supply off (and the relay's mains feed off when the rig is
        left for good, ``between_tests=False``: :meth:`close` does); returns the actions that failed."""
        return self.safe.make_safe(reason, between_tests=between_tests)

    # -- what tests use ------------------------------------------------------------------------

    @property
    def rig(self) -> Rig:
        """The rig file, with every placeholder resolved."""
        assert self.up is not None, "the rig is not up"
        return self.up.rig

    @property
    def clock(self) -> Clock:
        """The rig clock: the virtual rig's, or real time on a bench."""
        if self.up is not None and self.up.clock is not None:
            return self.up.clock
        if self._real_clock is None:
            self._real_clock = SystemClock()
        return self._real_clock

    def console(self) -> Any:
        from drivers.console import DutConsole

        c = self.rig.dut.console

        def make() -> Any:
            console = DutConsole(c.port, c.dialect, self.clock, baud=c.baud, redact=REDACTOR.redact,
                                 transcript_path=self.reports_dir / "console" / f"{self.rig.name}.log")
            console.open(Deadline.after(self.clock, c.reenumerate_timeout_s))  # a USB port may re-enumerate
            return console

        return self._part("console", make)

    def psu(self) -> Any:
        from drivers.psu import PowerSupply

        p = self.rig.psu
        if p is None:
            raise MissingPart("this test needs a power supply: the rig file has no 'psu' part")

        def make() -> Any:
            supply = PowerSupply(p.resource, p.dialect, self.clock, channel=p.channel)
            supply.open()
            supply.set_current_limit(p.current_limit)
            supply.set_voltage(p.voltage)
            if p.ovp is not None:
                supply.set_ovp(p.ovp)
            supply.enable_ocp(p.ocp)
            return supply

        return self._part("psu", make)

    def mains(self) -> Any:
        """The relay's mains feed (a drivers.psu.PowerSupply on an AC source's profile), on at the rig
        file's voltage; a test may switch it off (``output(False)``), :meth:`mains_on` restores it."""
        source = self._mains_source()
        self.mains_on()
        return source

    def _mains_source(self) -> Any:
        from drivers.psu import PowerSupply

        m = self.rig.mains
        if m is None:
            raise MissingPart("this test needs the relay's switchable mains feed: the rig file has no 'mains' part")

        def make() -> Any:
            source = PowerSupply(m.resource, m.dialect, self.clock, channel=m.channel, name="mains")
            source.open()
            if m.current_limit is not None:
                source.set_current_limit(m.current_limit)
            return source

        return self._part("mains", make)

    def mains_on(self) -> None:
        """The relay's mains feed on at the rig file's voltage, whatever a test left; nothing on a rig
        without a ``mains`` part (its relay is fed from the wall)."""
        m = self.rig.mains
        if m is None:
            return
        source = self._mains_source()
        if not source.output_is_on():
            source.set_voltage(m.voltage)
            source.output(True)
        elif abs(source.voltage_setpoint() - m.voltage) > MAINS_VOLTAGE_TOLERANCE * m.voltage:
            source.set_voltage(m.voltage)

    def meter(self) -> Any:
        f = self.rig.feedback
        if f is None:
            raise MissingPart("this test needs a feedback meter on the relay output: the rig file has no 'feedback'")

        def make() -> Any:
            from drivers.feedback import Dmm, SmartMeter

            if f.kind == "dmm":
                meter = Dmm(f.resource, f.dialect, self.clock, **({} if f.range is None else {"range": f.range}))
                meter.open()
                return meter
            password = f.password.get_secret_value() if f.password else None
            meter = SmartMeter(f.broker, f.topic_prefix, self.clock, username=f.username, password=password)
            meter.open()
            return meter

        return self._part("meter", make)

    def network(self) -> NetworkServer:
        g = self.rig.gateway
        if g is None:
            raise MissingPart("this test needs a gateway: the rig file has no 'gateway' part")

        def make() -> NetworkServer:
            if g.transport == "chirpstack-mqtt":
                from drivers.gateway import ChirpStackMqttTransport

                password = g.password.get_secret_value() if g.password else None
                transport: Any = ChirpStackMqttTransport(
                    g.host, g.port, topic_prefix=g.topic_prefix, gateway_id=g.gateway_id, clock=self.clock,
                    username=g.username, password=password, tls=g.tls,
                    ca_file=str(g.ca_file) if g.ca_file else None,
                )
            else:
                from drivers.gateway import SemtechUdpTransport

                transport = SemtechUdpTransport(g.host, g.port, clock=self.clock)
            lw = self.rig.dut.lorawan
            net = self.rig.network
            allow = net.join_policy == "allow"
            server = NetworkServer(get_region(lw.region), self.clock, net_id=net.net_id, transport=transport,
                                   join_policy=lambda device: allow)
            server.add_device(lw.device_config(net, name=self.rig.name))
            return server

        return self._part("network", make)

    def relay(self) -> RelayController:
        """The relay's controller, talking through the network on the relay's FPort."""
        r = self.rig.dut.relay
        if r is None:
            raise MissingPart("this test needs the relay protocol: the rig file has no 'dut.relay'")
        network = self.network()
        dev_eui = self.rig.dut.lorawan.dev_eui

        def make() -> RelayController:
            controller = RelayController(RelayKey(r.passphrase.get_secret_value()),
                                         lambda payload: network.enqueue_downlink(dev_eui, r.fport, payload),
                                         self.clock)
            network.on_uplink(lambda up: controller.deliver(up.payload) if up.fport == r.fport else None)
            controller.close = lambda: None  # type: ignore[attr-defined]  # nothing of its own to close
            return controller

        self.relay_used = True
        return self._part("relay", make)

    def swd(self) -> Any:
        """The DUT's debug probe (drivers.swd.SwdProbe), opened without halting the DUT."""
        s = self.rig.dut.swd
        if s is None:
            raise MissingPart("this test needs an SWD probe: the rig file has no 'dut.swd'")

        def make() -> Any:
            from drivers.swd import SwdProbe

            probe = SwdProbe(s.probe_uid, s.target, self.clock, nvm_layout=s.nvm_layout)
            probe.open()
            return probe

        return self._part("swd", make)

    def flash_firmware(self, image: Path) -> dict[str, str]:
        """Flash ``image`` through the probe (powering the DUT first when the rig has a supply),
        skipped when the chip already holds it; its name, hash and version go to :attr:`firmware_info`."""
        from drivers.swd import ImageError

        if self.rig.psu is not None:
            self.psu().output(True)  # a probe only reaches a powered target
        try:
            result = self.swd().flash(image)
        except ImageError as exc:
            raise RigFault(f"the firmware image cannot be flashed: {exc}") from None
        self.firmware_info = {
            "firmware": str(result.path), "firmware_sha256": result.sha256,
            "firmware_version": result.version or "unknown",
            "firmware_flashed": ("no: the chip already held it" if result.skipped
                                 else f"yes, in {result.seconds:.2f} rig s"),
        }
        self.diagnostics.append(f"firmware {result.path.name} (version {result.version or 'unknown'}, sha256 "
                                f"{result.sha256[:16]}...): " + ("already on the DUT" if result.skipped else "flashed"))
        return self.firmware_info

    def _part(self, name: str, make: Any) -> Any:
        with self._lock:
            part = self._parts.get(name)
            if part is None:
                part = make()
                self._parts[name] = part
            return part

    # -- safe state ------------------------------------------------------------------------------

    def _relay_off(self) -> None:
        """Command the relay off, if a test used it and its coil may be powered (best effort: the
        supply goes off next).

        With the supply output off the coil is unpowered: nothing is sent. Otherwise the OFF command
        goes out and, on a rig with a feedback meter, the output is watched until it is dead (bounded
        by :data:`RELAY_OFF_CONFIRM_S` rig seconds); the relay's answer is not awaited. The
        controller's counter is not moved: after the power-up of the next test the relay announces
        its counter (or a SYNC tells it). Without a meter the relay's answer confirms OFF.
        """
        with self._lock:
            controller = self._parts.get("relay")
        if controller is None or not self.relay_used:
            return
        if not self._coil_may_be_powered():
            log.info("safe state: the supply output is off, the relay's coil is unpowered: no OFF command")
            return
        feedback = self.rig.feedback
        if feedback is None:
            try:
                controller.set_output(False)
            except AssertionError as exc:  # the DUT did not answer: cutting the supply still drops the coil
                log.warning("safe state: the relay did not confirm OFF (%s); the supply goes off next", exc)
            return
        controller.send_packet(controller.seal(Command.SET_OUTPUT, controller.counter, bytes(6)),
                               note="safe state: OFF, confirmed by the meter")
        meter = self.meter()
        threshold = feedback.mains_threshold_v
        deadline = Deadline.after(self.clock, RELAY_OFF_CONFIRM_S)
        while True:
            volts = meter.ac_voltage()
            if volts < threshold:
                log.info("safe state: relay output dead (%.1f V, below %g V) at %.3f rig s", volts, threshold,
                         self.clock.now())
                return
            if deadline.expired:
                log.warning("safe state: the relay output still reads %.1f V %g rig s after the OFF command; "
                            "the supply goes off next", volts, RELAY_OFF_CONFIRM_S)
                return
            self.clock.sleep(min(METER_POLL_S, max(deadline.remaining, 0.0)))

    def _coil_may_be_powered(self) -> bool:
        """False when the supply feeding the DUT is known to be off; True when on or unknown
        (no supply in the rig, or a profile without an output-state query)."""
        from drivers.instruments.visa import OperationNotSupported

        if self.rig.psu is None:
            return True
        try:
            return bool(self.psu().output_is_on())
        except OperationNotSupported:
            return True

    def _mains_off(self) -> None:
        """The relay's mains feed off (when the rig is left for good, not between tests)."""
        if self.up is None or self.rig.mains is None:
            return
        self._mains_source().output(False)

    def _supply_off(self) -> None:
        with self._lock:
            supply = self._parts.get("psu")
        if supply is not None:
            supply.output(False)
        elif self.up is not None and self.rig.psu is not None:
            self.psu().output(False)  # not used by the test yet: open it to be sure it is off


__all__ = ["MissingPart", "RigFault", "RigSession"]
