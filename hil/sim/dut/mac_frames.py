"""The frames of the virtual end device: join-request, join-accept, data uplink and downlink.

Pure functions over the LoRaWAN core (``hil.lorawan``): no time, no radio, no state of their own.
Keys are passed as :class:`~hil.lorawan.crypto.AESKey`/:class:`~hil.lorawan.security.SessionKeys`,
whose reprs are redacted; no message here ever names a key's value.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.lorawan import fcnt as lfcnt
from hil.lorawan import maccommands, security
from hil.lorawan import session as lsession
from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError
from hil.lorawan.frames import CFList, DataFrame, EncryptedJoinAccept, FCtrl, JoinRequest, MType, decode
from hil.lorawan.maccommands import MacCommand
from hil.lorawan.region import Region
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr
from hil.lorawan.version import LoRaWANVersion

JOIN_REQ_TYPE_JOIN = 0xFF


def join_request(join_eui: EUI64, dev_eui: EUI64, dev_nonce: int, root_key: AESKey) -> bytes:
    """The on-air join-request, MICed with ``root_key`` (AppKey 1.0.x, NwkKey 1.1)."""
    return JoinRequest(join_eui, dev_eui, dev_nonce).signed(root_key).to_bytes()


@dataclass(frozen=True, slots=True)
class AcceptedJoin:
    """What a valid join-accept gives the device. ``repr`` shows no key."""

    dev_addr: DevAddr
    keys: SessionKeys
    join_nonce: int
    opt_neg: bool
    rx1_dr_offset: int
    rx2_dr: int
    rx_delay_s: int
    cf_list: CFList | None
    mic_valid: bool


def open_join_accept(
    phy: bytes,
    *,
    version: LoRaWANVersion,
    dev_eui: EUI64,
    join_eui: EUI64,
    app_key: AESKey,
    nwk_key: AESKey | None,
    dev_nonce: int,
    last_join_nonce: int | None,
    check_mic: bool = True,
) -> AcceptedJoin | str:
    """Decrypt and check a join-accept answering the join-request with ``dev_nonce``.

    1.0.x: decrypted and MICed with AppKey (the OptNeg bit is RFU). 1.1: decrypted with NwkKey;
    OptNeg=1 MICs with JSIntKey over JoinReqType 0xFF | JoinEUI | DevNonce, and the JoinNonce must
    be strictly greater than ``last_join_nonce``; OptNeg=0 (a 1.0 network) MICs with NwkKey.
    ``check_mic=False`` is the ``join_accept_mic_unchecked`` defect. Returns the reason in words
    when the frame is not accepted. Raises FrameError for a malformed frame.
    """
    frame = decode(phy)
    if not isinstance(frame, EncryptedJoinAccept):
        return f"{frame.mtype.snake} is not a join-accept"
    v11 = version.is_1_1
    root = nwk_key if v11 and nwk_key is not None else app_key
    accept = frame.decrypt(root)
    opt_neg = v11 and accept.dl_settings.opt_neg
    if opt_neg:
        js_int_key, _ = security.derive_js_keys(root, dev_eui.wire)
        mic_valid = accept.mic_valid(js_int_key, join_req_type=JOIN_REQ_TYPE_JOIN, join_eui=join_eui,
                                     dev_nonce=dev_nonce)
    else:
        mic_valid = accept.mic_valid(root, lorawan_1_1=False)
    if not mic_valid and check_mic:
        return "join-accept MIC invalid"
    if v11 and last_join_nonce is not None and accept.join_nonce <= last_join_nonce:
        return f"JoinNonce {accept.join_nonce} not greater than the last accepted {last_join_nonce}"
    if v11:
        keys = security.derive_session_keys_11(
            root, app_key, accept.join_nonce, join_eui.wire, dev_nonce,
            opt_neg=opt_neg, net_id_wire=accept.net_id.wire,
        )
    else:
        keys = security.derive_session_keys_10(app_key, accept.join_nonce, accept.net_id.wire, dev_nonce)
    return AcceptedJoin(
        dev_addr=accept.dev_addr,
        keys=keys,
        join_nonce=accept.join_nonce,
        opt_neg=opt_neg,
        rx1_dr_offset=accept.dl_settings.rx1_dr_offset,
        rx2_dr=accept.dl_settings.rx2_dr,
        rx_delay_s=accept.rx1_delay_s,
        cf_list=accept.cf_list_decoded,
        mic_valid=mic_valid,
    )


def seal_uplink(
    dev_addr: DevAddr,
    keys: SessionKeys,
    fcnt: int,
    *,
    confirmed: bool,
    ack: bool,
    fopts: bytes,
    fport: int | None,
    payload: bytes,
    conf_fcnt: int,
    tx_dr: int,
    tx_ch: int,
) -> bytes:
    """The on-air data uplink with full counter ``fcnt`` (1.1: ConfFCnt/TxDr/TxCh in its MIC)."""
    mtype = MType.CONFIRMED_DATA_UP if confirmed else MType.UNCONFIRMED_DATA_UP
    frame = lsession.seal_frame(
        mtype, dev_addr, keys, fcnt, fctrl=FCtrl(ack=ack), fopts=fopts, fport=fport, frm_payload=payload,
        conf_fcnt=conf_fcnt & 0xFFFF if ack else 0, tx_dr=tx_dr, tx_ch=tx_ch,
    )
    return frame.to_bytes()


@dataclass(frozen=True, slots=True)
class OpenedDownlink:
    """A data downlink that passed the counter and MIC checks, in clear.

    ``app_counter``: the counter is AFCntDown (1.1, FPort > 0); else FCntDown/NFCntDown.
    ``commands``: MAC commands from FOpts or the FPort 0 payload (parsing stops at a malformed one).
    """

    fcnt: int
    app_counter: bool
    fport: int | None
    payload: bytes
    commands: tuple[MacCommand, ...]
    ack: bool
    confirmed: bool


def open_downlink(
    frame: DataFrame,
    keys: SessionKeys,
    *,
    region: Region,
    version: LoRaWANVersion,
    last_n_fcnt_down: int | None,
    last_a_fcnt_down: int | None,
    conf_fcnt: int,
) -> OpenedDownlink | str:
    """Check a downlink addressed to the session (counter, then MIC) and decrypt it.

    The full counter comes from the last received one (:func:`hil.lorawan.fcnt.check`): a
    repeated or older counter is refused, as is a gap beyond MAX_FCNT_GAP where the version has
    one. ``conf_fcnt``: FCntUp of the confirmed uplink this downlink may ACK (1.1 MIC). Returns
    the reason in words when the frame is refused.
    """
    app_counter = keys.lorawan_1_1 and frame.fport is not None and frame.fport > 0
    last = last_a_fcnt_down if app_counter else last_n_fcnt_down
    max_gap = region.max_fcnt_gap if version.uses_max_fcnt_gap else None
    check = lfcnt.check(frame.fcnt, last, max_gap=max_gap)
    if not check.accepted:
        return f"FCnt {frame.fcnt}: {check.verdict.value} (last {last})"
    context = conf_fcnt & 0xFFFF if (frame.fctrl.ack and keys.lorawan_1_1) else 0
    opened = lsession.open_frame(frame, keys, check.fcnt, conf_fcnt=context)
    if not opened.mic_valid:
        return f"MIC invalid at FCnt {check.fcnt}"
    mac_bytes = opened.frm_payload if frame.fport == 0 else opened.fopts
    commands: list[MacCommand] = []
    if mac_bytes:
        try:
            commands = maccommands.parse(mac_bytes, uplink=False)
        except FrameError:
            commands = _parse_prefix(mac_bytes)
    payload = opened.frm_payload if frame.fport else b""
    return OpenedDownlink(check.fcnt, app_counter, frame.fport, payload, tuple(commands), frame.fctrl.ack,
                          frame.confirmed)


def _parse_prefix(data: bytes) -> list[MacCommand]:
    """The well-formed MAC commands before a truncated one."""
    for end in range(len(data) - 1, 0, -1):
        try:
            return maccommands.parse(data[:end], uplink=False)
        except FrameError:
            continue
    return []
