"""LoRaWAN PHYPayload codec for 1.0.2, 1.0.3, 1.0.4 and 1.1: structure only, no keys.

``decode`` turns on-air bytes into one of the frame types below; each frame type's ``to_bytes``
turns it back. Fields hold on-air values: a data frame's ``fopts`` and ``frm_payload`` are as
sent (encrypted where the version encrypts them); :mod:`hil.lorawan.session` seals and opens
them. Every malformed input raises :class:`FrameError` naming the field and its offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Union

from hil.lorawan import security
from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError
from hil.lorawan.types import EUI64, DevAddr, NetID

MIC_SIZE = 4
MAX_FOPTS = 15


class MType(IntEnum):
    """Message type, MHDR bits 7..5."""

    JOIN_REQUEST = 0
    JOIN_ACCEPT = 1
    UNCONFIRMED_DATA_UP = 2
    UNCONFIRMED_DATA_DOWN = 3
    CONFIRMED_DATA_UP = 4
    CONFIRMED_DATA_DOWN = 5
    REJOIN_REQUEST = 6
    PROPRIETARY = 7

    @property
    def snake(self) -> str:
        """Lower-case name, as in JSON output (``unconfirmed_data_up``)."""
        return self.name.lower()

    @property
    def is_data(self) -> bool:
        return 2 <= self <= 5

    @property
    def is_uplink(self) -> bool:
        """True for the types an end device sends."""
        return self in (MType.JOIN_REQUEST, MType.UNCONFIRMED_DATA_UP, MType.CONFIRMED_DATA_UP, MType.REJOIN_REQUEST)


_DATA_UP = (MType.UNCONFIRMED_DATA_UP, MType.CONFIRMED_DATA_UP)
_MTYPES = tuple(MType)


def _mhdr(mtype: MType, major: int) -> bytes:
    if not 0 <= major <= 3:
        raise FrameError(f"Major must be 0..3, got {major}", field="MHDR.Major", offset=0)
    return bytes(((mtype << 5) | major,))


def _check_range(value: int, bits: int, name: str) -> None:
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise FrameError(f"{name} must be an unsigned {bits}-bit integer, got {value!r}", field=name)


def _check_mic(mic: bytes) -> None:
    if len(mic) != MIC_SIZE:
        raise FrameError(f"MIC must be 4 bytes, got {len(mic)}", field="MIC")


class _CmacSigned:
    """A frame whose MIC is the plain CMAC of everything before it (join- and rejoin-requests)."""

    __slots__ = ()

    def signed_part(self) -> bytes:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The on-air PHYPayload."""
        _check_mic(self.mic)  # type: ignore[attr-defined]
        return self.signed_part() + self.mic  # type: ignore[attr-defined]

    def signed(self, key: AESKey):  # type: ignore[no-untyped-def]
        """A copy with the MIC computed with ``key``."""
        return _replace_mic(self, security.cmac4(key, self.signed_part()))

    def mic_valid(self, key: AESKey) -> bool:
        """True if the MIC verifies with ``key``."""
        return security.mic_equal(security.cmac4(key, self.signed_part()), self.mic)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Join-request


@dataclass(frozen=True, slots=True)
class JoinRequest(_CmacSigned):
    """Join-request: ``MHDR | JoinEUI | DevEUI | DevNonce | MIC`` (23 bytes).

    ``signed(key)``/``mic_valid(key)``: the key is AppKey for 1.0.x, NwkKey for 1.1.
    """

    join_eui: EUI64
    dev_eui: EUI64
    dev_nonce: int
    mic: bytes = bytes(4)
    major: int = 0

    mtype: ClassVar[MType] = MType.JOIN_REQUEST
    SIZE: ClassVar[int] = 23

    def signed_part(self) -> bytes:
        """The bytes the MIC covers."""
        _check_range(self.dev_nonce, 16, "DevNonce")
        return (
            _mhdr(self.mtype, self.major)
            + EUI64(self.join_eui).wire
            + EUI64(self.dev_eui).wire
            + self.dev_nonce.to_bytes(2, "little")
        )

    @classmethod
    def _decode(cls, data: bytes, major: int) -> "JoinRequest":
        _need_exact(data, cls.SIZE, "join-request", _JOIN_REQUEST_LAYOUT)
        return cls(
            join_eui=EUI64.from_wire(data[1:9]),
            dev_eui=EUI64.from_wire(data[9:17]),
            dev_nonce=int.from_bytes(data[17:19], "little"),
            mic=data[19:23],
            major=major,
        )


# ---------------------------------------------------------------------------------------------
# Join-accept


@dataclass(frozen=True, slots=True)
class DLSettings:
    """DLSettings: OptNeg (1.1; RFU in 1.0.x) | RX1DROffset | RX2DataRate."""

    opt_neg: bool = False
    rx1_dr_offset: int = 0
    rx2_dr: int = 0

    def to_byte(self) -> int:
        _check_range(self.rx1_dr_offset, 3, "DLSettings.RX1DROffset")
        _check_range(self.rx2_dr, 4, "DLSettings.RX2DataRate")
        return (int(self.opt_neg) << 7) | (self.rx1_dr_offset << 4) | self.rx2_dr

    @classmethod
    def from_byte(cls, value: int) -> "DLSettings":
        return cls(bool(value & 0x80), (value >> 4) & 0x07, value & 0x0F)


@dataclass(frozen=True, slots=True)
class CFList:
    """The optional channel-frequency list of a join-accept (16 bytes on air).

    Type 0 (dynamic-channel regions such as EU868): five frequencies in Hz, 0 = no channel.
    Type 1 (fixed-channel regions such as US915): five 16-bit channel masks.
    """

    cflist_type: int = 0
    frequencies: tuple[int, ...] = ()
    ch_masks: tuple[int, ...] = ()

    SIZE: ClassVar[int] = 16

    def to_bytes(self) -> bytes:
        if self.cflist_type == 0:
            if len(self.frequencies) > 5:
                raise FrameError("CFList type 0 holds at most 5 frequencies", field="CFList")
            out = bytearray()
            for hz in tuple(self.frequencies) + (0,) * (5 - len(self.frequencies)):
                if hz % 100 or not 0 <= hz // 100 < 1 << 24:
                    raise FrameError(f"CFList frequency {hz} Hz is not a 24-bit multiple of 100 Hz", field="CFList")
                out += (hz // 100).to_bytes(3, "little")
            return bytes(out) + b"\x00"
        if self.cflist_type == 1:
            if len(self.ch_masks) > 5:
                raise FrameError("CFList type 1 holds at most 5 channel masks", field="CFList")
            masks = tuple(self.ch_masks) + (0,) * (5 - len(self.ch_masks))
            for m in masks:
                _check_range(m, 16, "CFList.ChMask")
            return b"".join(m.to_bytes(2, "little") for m in masks) + bytes(5) + b"\x01"
        raise FrameError(f"CFListType {self.cflist_type} is not defined (0 or 1)", field="CFList.CFListType")

    @classmethod
    def from_bytes(cls, data: bytes, offset: int = 0) -> "CFList":
        """Parse 16 CFList bytes; ``offset`` is only used in error messages."""
        if len(data) != cls.SIZE:
            raise FrameError(f"CFList must be 16 bytes, got {len(data)}", field="CFList", offset=offset)
        kind = data[15]
        if kind == 0:
            freqs = tuple(int.from_bytes(data[i : i + 3], "little") * 100 for i in range(0, 15, 3))
            return cls(0, frequencies=freqs)
        if kind == 1:
            masks = tuple(int.from_bytes(data[i : i + 2], "little") for i in range(0, 10, 2))
            return cls(1, ch_masks=masks)
        raise FrameError(f"CFListType {kind} is not defined (0 or 1)", field="CFList.CFListType", offset=offset + 15)


@dataclass(frozen=True, slots=True)
class JoinAccept:
    """A decrypted join-accept: ``MHDR | JoinNonce | NetID | DevAddr | DLSettings | RxDelay | [CFList] | MIC``.

    ``cf_list`` is the raw 16 bytes (or ``None``); :attr:`cf_list_decoded` parses it.
    """

    join_nonce: int
    net_id: NetID
    dev_addr: DevAddr
    dl_settings: DLSettings = field(default_factory=DLSettings)
    rx_delay: int = 1
    cf_list: bytes | None = None
    mic: bytes = bytes(4)
    major: int = 0

    mtype: ClassVar[MType] = MType.JOIN_ACCEPT

    def signed_part(self) -> bytes:
        """MHDR up to the CFList: what the MIC covers (1.1 OptNeg prefixes more, see security)."""
        _check_range(self.join_nonce, 24, "JoinNonce")
        _check_range(self.rx_delay, 8, "RxDelay")
        if self.cf_list is not None and len(self.cf_list) != CFList.SIZE:
            raise FrameError(f"CFList must be 16 bytes, got {len(self.cf_list)}", field="CFList")
        return (
            _mhdr(self.mtype, self.major)
            + self.join_nonce.to_bytes(3, "little")
            + NetID(self.net_id).wire
            + DevAddr(self.dev_addr).wire
            + bytes((self.dl_settings.to_byte(), self.rx_delay))
            + (self.cf_list or b"")
        )

    def plaintext(self) -> bytes:
        """The join-accept before encryption (MHDR..MIC)."""
        _check_mic(self.mic)
        return self.signed_part() + self.mic

    @property
    def cf_list_decoded(self) -> CFList | None:
        return None if self.cf_list is None else CFList.from_bytes(self.cf_list, offset=13)

    @property
    def rx1_delay_s(self) -> int:
        """RECEIVE_DELAY1 in seconds this join-accept sets (Del 0 means 1 s)."""
        return (self.rx_delay & 0x0F) or 1

    def signed(
        self,
        key: AESKey,
        *,
        join_req_type: int = 0xFF,
        join_eui: EUI64 | None = None,
        dev_nonce: int | None = None,
        lorawan_1_1: bool | None = None,
    ) -> "JoinAccept":
        """A copy with its MIC computed.

        1.0.x, and 1.1 with OptNeg=0: ``key`` is AppKey/NwkKey. 1.1 with OptNeg=1: ``key`` is
        JSIntKey and ``join_eui``/``dev_nonce`` of the request answered are needed.
        ``lorawan_1_1``: whether the receiver speaks 1.1; None takes it from the OptNeg bit, False
        treats that bit as RFU (a 1.0.x device must ignore it).
        """
        return _replace_mic(self, self._compute_mic(key, join_req_type, join_eui, dev_nonce, lorawan_1_1))

    def mic_valid(
        self,
        key: AESKey,
        *,
        join_req_type: int = 0xFF,
        join_eui: EUI64 | None = None,
        dev_nonce: int | None = None,
        lorawan_1_1: bool | None = None,
    ) -> bool:
        """True if the MIC verifies (same key rules as :meth:`signed`)."""
        mic = self._compute_mic(key, join_req_type, join_eui, dev_nonce, lorawan_1_1)
        return security.mic_equal(mic, self.mic)

    def _compute_mic(
        self,
        key: AESKey,
        join_req_type: int,
        join_eui: EUI64 | None,
        dev_nonce: int | None,
        lorawan_1_1: bool | None,
    ) -> bytes:
        if self.dl_settings.opt_neg and lorawan_1_1 is not False:
            if join_eui is None or dev_nonce is None:
                raise FrameError(
                    "a 1.1 join-accept with OptNeg=1 needs JoinEUI and DevNonce for its MIC", field="MIC"
                )
            _check_range(dev_nonce, 16, "DevNonce")
            _check_range(join_req_type, 8, "JoinReqType")
            return security.join_accept_mic_11(key, join_req_type, EUI64(join_eui).wire, dev_nonce, self.signed_part())
        return security.join_accept_mic_10(key, self.signed_part())

    def encrypt(self, key: AESKey) -> bytes:
        """The on-air join-accept, encrypted with AppKey (1.0.x), NwkKey or JSEncKey (1.1)."""
        return security.encrypt_join_accept(key, self.plaintext())

    @classmethod
    def from_plaintext(cls, data: bytes) -> "JoinAccept":
        """Parse decrypted join-accept bytes (MHDR..MIC)."""
        _need_join_accept_size(data)
        cf = data[13:29] if len(data) == 33 else None
        if cf is not None:
            CFList.from_bytes(cf, offset=13)  # reject an undefined CFListType here, with its offset
        return cls(
            join_nonce=int.from_bytes(data[1:4], "little"),
            net_id=NetID.from_wire(data[4:7]),
            dev_addr=DevAddr.from_wire(data[7:11]),
            dl_settings=DLSettings.from_byte(data[11]),
            rx_delay=data[12],
            cf_list=cf,
            mic=data[-4:],
            major=data[0] & 0x03,
        )


@dataclass(frozen=True, slots=True)
class EncryptedJoinAccept:
    """A join-accept as received: all but the MHDR is encrypted, so fields need the key."""

    raw: bytes
    major: int = 0

    mtype: ClassVar[MType] = MType.JOIN_ACCEPT

    def to_bytes(self) -> bytes:
        return self.raw

    def decrypt(self, key: AESKey) -> JoinAccept:
        """Decrypt with AppKey (1.0.x), NwkKey or JSEncKey (1.1). Checks no MIC: use ``mic_valid``."""
        return JoinAccept.from_plaintext(security.decrypt_join_accept(key, self.raw))

    @classmethod
    def _decode(cls, data: bytes, major: int) -> "EncryptedJoinAccept":
        _need_join_accept_size(data)
        return cls(raw=bytes(data), major=major)


def _need_join_accept_size(data: bytes) -> None:
    n = len(data)
    if n in (17, 33):
        return
    if n > 17:  # a partial or overlong CFList
        raise FrameError(f"join-accept must be 17 or 33 bytes (without/with CFList), got {n}", field="CFList", offset=13)
    _need_exact(data, 17, "join-accept", _JOIN_ACCEPT_LAYOUT)


_JOIN_ACCEPT_LAYOUT = (
    ("MHDR", 0), ("JoinNonce", 1), ("NetID", 4), ("DevAddr", 7), ("DLSettings", 11), ("RxDelay", 12), ("MIC", 13),
)


# ---------------------------------------------------------------------------------------------
# Rejoin-request (1.1)


@dataclass(frozen=True, slots=True)
class RejoinRequest(_CmacSigned):
    """Rejoin-request (1.1). Types 0 and 2 carry NetID, type 1 carries JoinEUI.

    ``signed(key)``/``mic_valid(key)``: SNwkSIntKey for types 0/2, JSIntKey for type 1.
    """

    rejoin_type: int
    dev_eui: EUI64
    rj_count: int
    net_id: NetID | None = None
    join_eui: EUI64 | None = None
    mic: bytes = bytes(4)
    major: int = 0

    mtype: ClassVar[MType] = MType.REJOIN_REQUEST

    def signed_part(self) -> bytes:
        _check_range(self.rj_count, 16, "RJcount")
        head = _mhdr(self.mtype, self.major) + bytes((self.rejoin_type,))
        if self.rejoin_type in (0, 2):
            if self.net_id is None:
                raise FrameError(f"rejoin type {self.rejoin_type} needs a NetID", field="NetID")
            body = NetID(self.net_id).wire
        elif self.rejoin_type == 1:
            if self.join_eui is None:
                raise FrameError("rejoin type 1 needs a JoinEUI", field="JoinEUI")
            body = EUI64(self.join_eui).wire
        else:
            raise FrameError(f"RejoinType must be 0, 1 or 2, got {self.rejoin_type}", field="RejoinType", offset=1)
        return head + body + EUI64(self.dev_eui).wire + self.rj_count.to_bytes(2, "little")

    @classmethod
    def _decode(cls, data: bytes, major: int) -> "RejoinRequest":
        if len(data) < 2:
            raise FrameError("rejoin-request truncated before RejoinType", field="RejoinType", offset=1)
        kind = data[1]
        if kind in (0, 2):
            _need_exact(data, 19, f"rejoin-request type {kind}", _REJOIN_02_LAYOUT)
            return cls(kind, EUI64.from_wire(data[5:13]), int.from_bytes(data[13:15], "little"),
                       net_id=NetID.from_wire(data[2:5]), mic=data[15:19], major=major)
        if kind == 1:
            _need_exact(data, 24, "rejoin-request type 1", _REJOIN_1_LAYOUT)
            return cls(1, EUI64.from_wire(data[10:18]), int.from_bytes(data[18:20], "little"),
                       join_eui=EUI64.from_wire(data[2:10]), mic=data[20:24], major=major)
        raise FrameError(f"RejoinType must be 0, 1 or 2, got {kind}", field="RejoinType", offset=1)


# ---------------------------------------------------------------------------------------------
# Data frames


@dataclass(frozen=True, slots=True)
class FCtrl:
    """Frame control. Bit 4 is ClassB on uplinks and FPending on downlinks; bit 6 ADRACKReq is uplink only."""

    adr: bool = False
    adr_ack_req: bool = False
    ack: bool = False
    class_b: bool = False
    f_pending: bool = False

    def to_byte(self, uplink: bool, fopts_len: int) -> int:
        bit4 = self.class_b if uplink else self.f_pending
        bit6 = self.adr_ack_req if uplink else False
        return (self.adr << 7) | (bit6 << 6) | (self.ack << 5) | (bit4 << 4) | fopts_len

    @classmethod
    def from_byte(cls, value: int, uplink: bool) -> "FCtrl":
        """The FCtrl for a byte (FOptsLen ignored); cached, the 512 values are few."""
        return (_FCTRL_UP if uplink else _FCTRL_DOWN)[value & 0xF0]

    @classmethod
    def _build(cls, value: int, uplink: bool) -> "FCtrl":
        bit4 = bool(value & 0x10)
        return cls(
            adr=bool(value & 0x80),
            adr_ack_req=uplink and bool(value & 0x40),
            ack=bool(value & 0x20),
            class_b=uplink and bit4,
            f_pending=(not uplink) and bit4,
        )


_FCTRL_UP = {v: FCtrl._build(v, True) for v in range(0, 256, 16)}
_FCTRL_DOWN = {v: FCtrl._build(v, False) for v in range(0, 256, 16)}


@dataclass(slots=True)
class DataFrame:
    """A data frame as on air: ``MHDR | DevAddr | FCtrl | FCnt | FOpts | [FPort | FRMPayload] | MIC``.

    ``fcnt`` is the 16-bit on-air value; ``fopts`` (encrypted in 1.1) and ``frm_payload``
    (always encrypted) are on-air bytes. ``raw`` keeps the received bytes for MIC checks.
    Treat it as immutable (use ``dataclasses.replace``); it is not frozen only because a frozen
    dataclass costs 2 µs more per decoded frame on the network server's hot path.
    """

    mtype: MType
    dev_addr: DevAddr
    fctrl: FCtrl = field(default_factory=FCtrl)
    fcnt: int = 0
    fopts: bytes = b""
    fport: int | None = None
    frm_payload: bytes = b""
    mic: bytes = bytes(4)
    major: int = 0
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def uplink(self) -> bool:
        return self.mtype in _DATA_UP

    @property
    def confirmed(self) -> bool:
        return self.mtype in (MType.CONFIRMED_DATA_UP, MType.CONFIRMED_DATA_DOWN)

    def signed_part(self) -> bytes:
        """MHDR..FRMPayload: what the MIC covers. The received bytes when decoded, else encoded."""
        if self.raw:
            return self.raw[:-MIC_SIZE]
        if not self.mtype.is_data:
            raise FrameError(f"{self.mtype.snake} is not a data frame type", field="MHDR.MType", offset=0)
        _check_range(self.fcnt, 16, "FCnt")
        if len(self.fopts) > MAX_FOPTS:
            raise FrameError(f"FOpts holds at most 15 bytes, got {len(self.fopts)}", field="FOpts", offset=8)
        if self.fport is None:
            if self.frm_payload:
                raise FrameError("FRMPayload without FPort", field="FPort")
            tail = b""
        else:
            _check_range(self.fport, 8, "FPort")
            if self.fport == 0 and self.fopts:
                raise FrameError("MAC commands in both FOpts and FPort 0", field="FPort")
            tail = bytes((self.fport,)) + self.frm_payload
        return (
            _mhdr(self.mtype, self.major)
            + DevAddr(self.dev_addr).wire
            + bytes((self.fctrl.to_byte(self.uplink, len(self.fopts)),))
            + self.fcnt.to_bytes(2, "little")
            + self.fopts
            + tail
        )

    def to_bytes(self) -> bytes:
        if self.raw:
            return self.raw
        _check_mic(self.mic)
        return self.signed_part() + self.mic

    @classmethod
    def _decode(cls, data: bytes, mtype: MType, major: int) -> "DataFrame":
        n = len(data)
        if n < 12:
            _need_exact(data, 12, f"{mtype.snake} (MHDR, FHDR, MIC)", _DATA_LAYOUT, at_least=True)
        fctrl = data[5]
        end_fopts = 8 + (fctrl & 0x0F)
        end_payload = n - 4
        if end_fopts > end_payload:
            raise FrameError(
                f"{mtype.snake}: FOptsLen {fctrl & 0x0F} runs past the frame ({end_payload - 8} bytes left before MIC)",
                field="FOpts", offset=8,
            )
        if end_fopts < end_payload:
            fport = data[end_fopts]
            if fport == 0 and end_fopts > 8:
                raise FrameError(
                    f"{mtype.snake}: MAC commands in both FOpts ({end_fopts - 8} bytes) and FPort 0",
                    field="FPort", offset=end_fopts,
                )
            payload = data[end_fopts + 1 : end_payload]
        else:
            fport = None
            payload = b""
        return cls(
            mtype,
            _new_int(DevAddr, int.from_bytes(data[1:5], "little")),
            (_FCTRL_UP if mtype in _DATA_UP_INTS else _FCTRL_DOWN)[fctrl & 0xF0],
            data[6] | (data[7] << 8),
            data[8:end_fopts],
            fport,
            payload,
            data[end_payload:],
            major,
            data,
        )


_new_int = int.__new__
_DATA_UP_INTS = frozenset((2, 4))
_DATA_LAYOUT = (("MHDR", 0), ("DevAddr", 1), ("FCtrl", 5), ("FCnt", 6), ("MIC", 8))


# ---------------------------------------------------------------------------------------------
# Proprietary


@dataclass(frozen=True, slots=True)
class Proprietary:
    """Proprietary frame: the MHDR and opaque bytes (any MIC is the vendor's business)."""

    payload: bytes = b""
    major: int = 0

    mtype: ClassVar[MType] = MType.PROPRIETARY

    def to_bytes(self) -> bytes:
        return _mhdr(self.mtype, self.major) + self.payload


Frame = Union[JoinRequest, EncryptedJoinAccept, RejoinRequest, DataFrame, Proprietary]


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """Decode an on-air PHYPayload. Raises :class:`FrameError` for anything malformed."""
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FrameError(f"PHYPayload must be bytes, got {type(data).__name__}", field="PHYPayload")
        data = bytes(data)
    if not data:
        raise FrameError("empty PHYPayload", field="MHDR", offset=0)
    mhdr = data[0]
    kind = mhdr >> 5
    if 2 <= kind <= 5 and not mhdr & 0x03:  # the hot path: a data frame, Major 0
        return DataFrame._decode(data, _MTYPES[kind], 0)
    major = mhdr & 0x03
    if kind == MType.PROPRIETARY:
        return Proprietary(payload=data[1:], major=major)
    if major != 0:
        raise FrameError(f"unknown Major {major} (only 0, LoRaWAN R1, is defined)", field="MHDR.Major", offset=0)
    if kind == MType.JOIN_REQUEST:
        return JoinRequest._decode(data, major)
    if kind == MType.JOIN_ACCEPT:
        return EncryptedJoinAccept._decode(data, major)
    return RejoinRequest._decode(data, major)


def _need_exact(
    data: bytes, size: int, what: str, layout: tuple[tuple[str, int], ...], *, at_least: bool = False
) -> None:
    """Raise unless ``data`` is ``size`` bytes, naming the field where it is cut short or overlong."""
    n = len(data)
    if n == size or (at_least and n > size):
        return
    if at_least:
        what += " must be at least"
    else:
        what += " must be"
    if n > size:
        raise FrameError(f"{what} {size} bytes, got {n}", field="MIC", offset=size - MIC_SIZE)
    cut_name, cut_offset = layout[0]
    for name, offset in layout:  # the last field starting at or before the cut
        if offset > n:
            break
        cut_name, cut_offset = name, offset
    raise FrameError(f"{what} {size} bytes, got {n}", field=cut_name, offset=cut_offset)


_JOIN_REQUEST_LAYOUT = (("MHDR", 0), ("JoinEUI", 1), ("DevEUI", 9), ("DevNonce", 17), ("MIC", 19))
_REJOIN_02_LAYOUT = (("MHDR", 0), ("RejoinType", 1), ("NetID", 2), ("DevEUI", 5), ("RJcount0", 13), ("MIC", 15))
_REJOIN_1_LAYOUT = (("MHDR", 0), ("RejoinType", 1), ("JoinEUI", 2), ("DevEUI", 10), ("RJcount1", 18), ("MIC", 20))


def _replace_mic(frame, mic: bytes):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(frame, mic=mic)
