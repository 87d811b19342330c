"""DevAddr allocation inside a NetID (LoRaWAN Backend Interfaces 1.1 §13: NetID types 0..7).

A DevAddr is ``type prefix | NwkID | NwkAddr``: the prefix is ``t`` one-bits and a zero for
NetID type ``t``, NwkID is the NetID's low bits (6, 6, 9, 11, 12, 13, 15 or 17 of them), and
NwkAddr numbers the devices. Example: NetID 000013 (type 0, NwkID 0x13) gives 26xxxxxx/27xxxxxx.
"""

from __future__ import annotations

import threading
from typing import Protocol

from hil.lorawan.types import EUI64, DevAddr, NetID
from hil.network.errors import DevAddrExhaustedError

NWK_ID_BITS: tuple[int, ...] = (6, 6, 9, 11, 12, 13, 15, 17)


def netid_type(net_id: NetID | int) -> int:
    """The NetID type, its top three bits."""
    return (int(net_id) >> 21) & 0x07


def nwk_id(net_id: NetID | int) -> int:
    """The NwkID a NetID puts into its DevAddrs."""
    return int(net_id) & ((1 << NWK_ID_BITS[netid_type(net_id)]) - 1)


def nwk_addr_bits(net_id: NetID | int) -> int:
    """How many NwkAddr bits a DevAddr of this NetID has (25 for type 0, 7 for type 7)."""
    t = netid_type(net_id)
    return 32 - (t + 1) - NWK_ID_BITS[t]


def dev_addr_for(net_id: NetID | int, nwk_addr: int) -> DevAddr:
    """The DevAddr with this NetID's prefix and NwkID, and NwkAddr ``nwk_addr``."""
    t = netid_type(net_id)
    addr_bits = nwk_addr_bits(net_id)
    if not 0 <= nwk_addr < 1 << addr_bits:
        raise DevAddrExhaustedError(f"NwkAddr {nwk_addr} does not fit the {addr_bits} bits of NetID {NetID(net_id)}")
    prefix = ((1 << t) - 1) << 1  # t ones then a zero
    value = (prefix << (31 - t)) | (nwk_id(net_id) << addr_bits) | nwk_addr
    return DevAddr(value)


def in_net_id(dev_addr: DevAddr | int, net_id: NetID | int) -> bool:
    """True if ``dev_addr`` carries this NetID's type prefix and NwkID."""
    addr_bits = nwk_addr_bits(net_id)
    return int(dev_addr) >> addr_bits == int(dev_addr_for(net_id, 0)) >> addr_bits


class DevAddrAllocator(Protocol):
    """Hands out a DevAddr for a device joining through NetID ``net_id``."""

    def __call__(self, net_id: NetID, dev_eui: EUI64) -> DevAddr: ...


class SequentialDevAddrAllocator:
    """NwkAddr 1, 2, 3, ... per NetID: deterministic, never the same address twice."""

    def __init__(self, first_nwk_addr: int = 1) -> None:
        self._first = first_nwk_addr
        self._next: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, net_id: NetID, dev_eui: EUI64) -> DevAddr:
        with self._lock:
            n = self._next.get(int(net_id), self._first)
            addr = dev_addr_for(net_id, n)  # raises DevAddrExhaustedError past the last one
            self._next[int(net_id)] = n + 1
            return addr
