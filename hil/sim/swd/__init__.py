"""The virtual DUT behind a debug probe: the real pyocd flashes, halts, resets and reads it.

=================  =================================================================================
module             what
=================  =================================================================================
``unit``           :class:`DebugUnit`: DAP + bus + debug core + flash interface of one virtual MCU,
                   following its VDD; the in-process registry (``hilsim:<name>``)
``dap``            ADIv5 SW-DP and AHB-AP (MEM-AP) registers, 4 KiB TAR wrap, sticky faults
``bus``            the system bus: flash (read-only), data EEPROM (NVM), SRAM, unique ID, PPB
``core``           DHCSR/DCRSR/DCRDR/DEMCR/DFSR/AIRCR/CPUID, ROM table; halt/resume/reset of the DUT
``flash_algo``     a CMSIS flash algorithm whose entry points the core runs in Python (NOR rules)
``host``           the DUT firmware model as the core the debug logic drives
``identity``       the ID registers and unique-ID location of ``mcu.yaml``
``probe``          pyocd: the ``DebugProbe`` and the ``pyocd.probe`` plugin (entry point ``hilsim``)
``target``         pyocd: the ``hil_relay_node`` target (memory map, flash algorithm)
``server``         pyocd's TCP probe server on the unit, for other processes (``remote:host:port``)
=================  =================================================================================

Only ``probe``, ``target`` and ``server`` import pyocd (the server only when a client connects):
starting a virtual rig costs no pyocd import.
"""

from hil.sim.swd.unit import PROBE_TYPE, DebugUnit, ProbeBusy, derived_unique_id, lookup, new_unit_name, register

__all__ = ["PROBE_TYPE", "DebugUnit", "ProbeBusy", "derived_unique_id", "lookup", "new_unit_name", "register"]
