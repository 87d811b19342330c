"""The virtual DUT's firmware as the core the debug unit halts, resumes and resets."""

from __future__ import annotations

from hil.sim.dut.firmware import Firmware


class FirmwareHost:
    """:class:`~hil.sim.swd.core.CoreHost` on :class:`~hil.sim.dut.firmware.Firmware`.

    A halt pauses the firmware model (no radio, no console, timers deferred); a system reset
    reboots it as a power-on would, keeping NVM; a reset with vector catch reboots it halted, so it
    boots only when the core is resumed.
    """

    def __init__(self, firmware: Firmware) -> None:
        self.firmware = firmware

    def halt(self) -> None:
        fw = self.firmware
        if not fw.halt():
            # VDD just came up and the firmware has not seen it yet (its power check is queued on
            # the scheduler): halt right after it has.
            fw.scheduler.call_soon(fw.halt, name="swd-halt")

    def resume(self) -> None:
        self.firmware.resume()

    def system_reset(self, *, halt_after: bool) -> None:
        fw = self.firmware
        fw.swd_reset()  # queued on the scheduler: releases the halt, reboots keeping NVM
        if halt_after:
            fw.scheduler.call_soon(fw.halt, name="swd-reset-halt")  # runs after the reset (FIFO)
