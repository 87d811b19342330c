"""Hypothesis strategies for LoRaWAN frames and keys, shared by the codec tests."""

from __future__ import annotations

from hypothesis import strategies as st

from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import CFList, DataFrame, DLSettings, FCtrl, JoinAccept, JoinRequest, MType, RejoinRequest
from hil.lorawan.types import EUI64, DevAddr, NetID

eui64 = st.integers(0, 2**64 - 1).map(EUI64)
dev_addrs = st.integers(0, 2**32 - 1).map(DevAddr)
net_ids = st.integers(0, 2**24 - 1).map(NetID)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
mics = st.binary(min_size=4, max_size=4)
keys = st.binary(min_size=16, max_size=16).map(AESKey)

join_requests = st.builds(JoinRequest, join_eui=eui64, dev_eui=eui64, dev_nonce=u16, mic=mics)

cf_lists = st.one_of(
    st.builds(CFList, st.just(0), frequencies=st.lists(st.integers(0, 2**24 - 1).map(lambda x: x * 100), max_size=5)
              .map(lambda fs: tuple(fs + [0] * (5 - len(fs))))),
    st.builds(CFList, st.just(1), ch_masks=st.lists(u16, min_size=5, max_size=5).map(tuple)),
)

join_accepts = st.builds(
    JoinAccept,
    join_nonce=st.integers(0, 2**24 - 1),
    net_id=net_ids,
    dev_addr=dev_addrs,
    dl_settings=st.builds(DLSettings, st.booleans(), st.integers(0, 7), st.integers(0, 15)),
    rx_delay=st.integers(0, 255),
    cf_list=st.one_of(st.none(), cf_lists.map(lambda c: c.to_bytes())),
    mic=mics,
)

rejoin_requests = st.one_of(
    st.builds(RejoinRequest, st.sampled_from([0, 2]), eui64, u16, net_id=net_ids, mic=mics),
    st.builds(RejoinRequest, st.just(1), eui64, u16, join_eui=eui64, mic=mics),
)

data_mtypes = st.sampled_from(
    [MType.UNCONFIRMED_DATA_UP, MType.UNCONFIRMED_DATA_DOWN, MType.CONFIRMED_DATA_UP, MType.CONFIRMED_DATA_DOWN]
)


@st.composite
def data_frames(draw: st.DrawFn) -> DataFrame:
    """A well-formed data frame (either direction, with or without FOpts/FPort)."""
    mtype = draw(data_mtypes)
    uplink = mtype in (MType.UNCONFIRMED_DATA_UP, MType.CONFIRMED_DATA_UP)
    bits = draw(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()))
    fctrl = FCtrl(
        adr=bits[0],
        adr_ack_req=uplink and bits[1],
        ack=bits[2],
        class_b=uplink and bits[3],
        f_pending=(not uplink) and bits[3],
    )
    fopts = draw(st.binary(max_size=15))
    fport = draw(st.one_of(st.none(), st.integers(1 if fopts else 0, 255)))
    payload = b"" if fport is None else draw(st.binary(max_size=64))
    return DataFrame(mtype, draw(dev_addrs), fctrl, draw(u16), fopts, fport, payload, draw(mics))
