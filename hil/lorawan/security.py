"""LoRaWAN security formulas (1.0.x and 1.1) over bytes, integers and :class:`AESKey`.

MICs, FRMPayload and FOpts encryption, join-accept encryption and session-key derivation,
as in LoRaWAN 1.0.2 §4.4, §6.2.5 and 1.1 §4.3–4.4, §6.1.1, §6.2.3 (see
``shared/reference/lorawan-facts.md`` §3). Multi-byte arguments named ``*_wire`` are the
little-endian on-air bytes; counters are full 32-bit values.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from enum import Enum

from hil.lorawan.crypto import AESKey

UP = 0
DOWN = 1


class FOptsVariant(str, Enum):
    """The two published A-block layouts for 1.1 FOpts encryption.

    ``ERRATA`` (default): ``01 | 00 00 00 | 01 or 02 | Dir | DevAddr | FCnt | 00 | 01``, from the
    LoRa Alliance errata "FCntDwn usage in FOpts encryption" (LoRaWAN 1.1.1 onwards), used by
    ChirpStack, brocaar/lorawan and lora-packet. The fifth byte is 0x02 for AFCntDown.
    ``ORIGINAL``: ``01 | 00 00 00 00 | Dir | DevAddr | FCnt | 00 | 00`` as first published in
    LoRaWAN 1.1 (Fig. 15), used by The Things Stack's test vector and LoRaMac-node for 1.1.0.
    """

    ERRATA = "errata"
    ORIGINAL = "original"


def cmac4(key: AESKey, message: bytes) -> bytes:
    """The first four bytes of AES-CMAC: a LoRaWAN MIC."""
    return key.cmac(message)[:4]


def mic_equal(a: bytes, b: bytes) -> bool:
    """Constant-time MIC comparison."""
    return hmac.compare_digest(a, b)


# --- join --------------------------------------------------------------------------------------


def join_accept_mic_10(key: AESKey, signed_part: bytes) -> bytes:
    """Join-accept MIC for 1.0.x, and 1.1 with OptNeg=0: CMAC over MHDR..CFList."""
    return cmac4(key, signed_part)


def join_accept_mic_11(
    js_int_key: AESKey, join_req_type: int, join_eui_wire: bytes, dev_nonce: int, signed_part: bytes
) -> bytes:
    """1.1 join-accept MIC with OptNeg=1: CMAC(JSIntKey, JoinReqType|JoinEUI|DevNonce|MHDR..CFList)."""
    prefix = bytes((join_req_type,)) + join_eui_wire + dev_nonce.to_bytes(2, "little")
    return cmac4(js_int_key, prefix + signed_part)


def encrypt_join_accept(key: AESKey, plaintext: bytes) -> bytes:
    """Encrypt a join-accept (MHDR stays clear). The network uses AES *decrypt*, per the spec."""
    return plaintext[:1] + key.decrypt(plaintext[1:])


def decrypt_join_accept(key: AESKey, on_air: bytes) -> bytes:
    """Undo :func:`encrypt_join_accept` (the device uses AES *encrypt*)."""
    return on_air[:1] + key.encrypt(on_air[1:])


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """A session's keys. For 1.0.x the three network keys are the one NwkSKey.

    ``repr`` shows no key (each :class:`AESKey` redacts itself).
    """

    f_nwk_s_int_key: AESKey
    s_nwk_s_int_key: AESKey
    nwk_s_enc_key: AESKey
    app_s_key: AESKey
    lorawan_1_1: bool = False

    @classmethod
    def for_1_0(cls, nwk_s_key: AESKey, app_s_key: AESKey) -> "SessionKeys":
        """A 1.0.x session (also a 1.1 device joined with OptNeg=0 uses this shape)."""
        return cls(nwk_s_key, nwk_s_key, nwk_s_key, app_s_key, lorawan_1_1=False)

    @property
    def nwk_s_key(self) -> AESKey:
        """1.0.x NwkSKey (= FNwkSIntKey)."""
        return self.f_nwk_s_int_key


def _derive(key: AESKey, prefix: int, body: bytes, name: str) -> AESKey:
    block = bytes((prefix,)) + body
    return AESKey(key.encrypt(block + bytes(16 - len(block))), name)


def derive_session_keys_10(app_key: AESKey, join_nonce: int, net_id_wire: bytes, dev_nonce: int) -> SessionKeys:
    """1.0.x: NwkSKey/AppSKey = aes(AppKey, 01/02 | JoinNonce | NetID | DevNonce | pad16)."""
    body = join_nonce.to_bytes(3, "little") + net_id_wire + dev_nonce.to_bytes(2, "little")
    return SessionKeys.for_1_0(_derive(app_key, 0x01, body, "NwkSKey"), _derive(app_key, 0x02, body, "AppSKey"))


def derive_session_keys_11(
    nwk_key: AESKey,
    app_key: AESKey,
    join_nonce: int,
    join_eui_wire: bytes,
    dev_nonce: int,
    *,
    opt_neg: bool = True,
    net_id_wire: bytes = b"",
) -> SessionKeys:
    """1.1 session keys.

    OptNeg=1 (1.1 network): AppSKey from AppKey, FNwkSIntKey/SNwkSIntKey/NwkSEncKey from NwkKey,
    over JoinNonce | JoinEUI | DevNonce. OptNeg=0 (1.0 network): 1.0 derivation with NwkKey
    (AppSKey included) over JoinNonce | NetID | DevNonce, and the three network keys equal.
    """
    if not opt_neg:
        keys = derive_session_keys_10(nwk_key, join_nonce, net_id_wire, dev_nonce)
        return keys
    body = join_nonce.to_bytes(3, "little") + join_eui_wire + dev_nonce.to_bytes(2, "little")
    return SessionKeys(
        f_nwk_s_int_key=_derive(nwk_key, 0x01, body, "FNwkSIntKey"),
        s_nwk_s_int_key=_derive(nwk_key, 0x03, body, "SNwkSIntKey"),
        nwk_s_enc_key=_derive(nwk_key, 0x04, body, "NwkSEncKey"),
        app_s_key=_derive(app_key, 0x02, body, "AppSKey"),
        lorawan_1_1=True,
    )


def derive_js_keys(nwk_key: AESKey, dev_eui_wire: bytes) -> tuple[AESKey, AESKey]:
    """1.1 (JSIntKey, JSEncKey) = aes(NwkKey, 06/05 | DevEUI | pad16)."""
    return _derive(nwk_key, 0x06, dev_eui_wire, "JSIntKey"), _derive(nwk_key, 0x05, dev_eui_wire, "JSEncKey")


# --- data --------------------------------------------------------------------------------------


# B0/B1 and A blocks: 0x49 or 0x01 | 4 bytes | Dir | DevAddr | FCnt (LE32) | 0x00 | last byte.
_BLOCK = struct.Struct("<B4sB4sIBB")
_BLOCK_PREFIX = struct.Struct("<B4sB4sIB")
_ZERO4 = bytes(4)
_INDEX = [bytes((i,)) for i in range(256)]


def _b0(first: bytes, direction: int, dev_addr_wire: bytes, fcnt: int, length: int) -> bytes:
    return _BLOCK.pack(0x49, first, direction, dev_addr_wire, fcnt, 0, length)


def data_mic_10(nwk_s_key: AESKey, direction: int, dev_addr_wire: bytes, fcnt: int, msg: bytes) -> bytes:
    """1.0.x data MIC (either direction), and a 1.1 device's uplink MIC towards a 1.0 network."""
    return nwk_s_key.cmac(_BLOCK.pack(0x49, _ZERO4, direction, dev_addr_wire, fcnt, 0, len(msg)) + msg)[:4]


def data_uplink_mic_11(
    keys: SessionKeys, dev_addr_wire: bytes, fcnt: int, msg: bytes, conf_fcnt: int, tx_dr: int, tx_ch: int
) -> bytes:
    """1.1 uplink MIC: cmacS[0:2] | cmacF[0:2] (B1 carries ConfFCnt, TxDr, TxCh)."""
    n = len(msg)
    b0 = _b0(b"\x00\x00\x00\x00", UP, dev_addr_wire, fcnt, n)
    b1 = _b0((conf_fcnt & 0xFFFF).to_bytes(2, "little") + bytes((tx_dr, tx_ch)), UP, dev_addr_wire, fcnt, n)
    return keys.s_nwk_s_int_key.cmac(b1 + msg)[:2] + keys.f_nwk_s_int_key.cmac(b0 + msg)[:2]


def data_downlink_mic_11(
    s_nwk_s_int_key: AESKey, dev_addr_wire: bytes, fcnt: int, msg: bytes, conf_fcnt: int
) -> bytes:
    """1.1 downlink MIC: CMAC(SNwkSIntKey, B0 with ConfFCnt | msg)."""
    first = (conf_fcnt & 0xFFFF).to_bytes(2, "little") + b"\x00\x00"
    return cmac4(s_nwk_s_int_key, _b0(first, DOWN, dev_addr_wire, fcnt, len(msg)) + msg)


def _xor(data: bytes, stream: bytes) -> bytes:
    n = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[:n], "big")).to_bytes(n, "big")


def crypt_frm_payload(key: AESKey, direction: int, dev_addr_wire: bytes, fcnt: int, payload: bytes) -> bytes:
    """Encrypt or decrypt FRMPayload (the operation is its own inverse).

    ``key``: AppSKey for FPort > 0; NwkSKey (1.0) or NwkSEncKey (1.1) for FPort 0.
    """
    if not payload:
        return b""
    prefix = _BLOCK_PREFIX.pack(0x01, _ZERO4, direction, dev_addr_wire, fcnt, 0)
    n = len(payload)
    if n <= 16:
        stream = key.encrypt(prefix + b"\x01")
    elif n <= 32:
        stream = key.encrypt(prefix + b"\x01" + prefix + b"\x02")
    else:
        stream = key.encrypt(b"".join([prefix + _INDEX[i] for i in range(1, ((n + 15) >> 4) + 1)]))
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream[:n], "big")).to_bytes(n, "big")


def crypt_fopts_11(
    nwk_s_enc_key: AESKey,
    direction: int,
    dev_addr_wire: bytes,
    fcnt: int,
    fopts: bytes,
    *,
    variant: FOptsVariant = FOptsVariant.ERRATA,
    a_fcnt_down: bool = False,
) -> bytes:
    """Encrypt or decrypt 1.1 FOpts with a single A block (see :class:`FOptsVariant`).

    ``fcnt`` is FCntUp or NFCntDown (or AFCntDown when ``a_fcnt_down``).
    """
    if not fopts:
        return b""
    variant = FOptsVariant(variant)
    if variant is FOptsVariant.ERRATA:
        head = b"\x01\x00\x00\x00" + (b"\x02" if a_fcnt_down else b"\x01")
        last = b"\x01"
    else:
        head = b"\x01\x00\x00\x00\x00"
        last = b"\x00"
    block = head + bytes((direction,)) + dev_addr_wire + fcnt.to_bytes(4, "little") + b"\x00" + last
    return _xor(fopts, nwk_s_enc_key.encrypt(block))
