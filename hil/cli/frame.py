"""``python -m hil frame decode HEX``: decode a LoRaWAN PHYPayload to one JSON object.

Keys are optional; each one given unlocks what it can (MIC check, decryption, session keys).
Output keys are the spec's field names in snake_case; bytes are lowercase hex; EUIs and DevAddr
are in big-endian display form. Bad input: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hil.cli import UsageError
from hil.lorawan import maccommands, security
from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError, LoRaWANError
from hil.lorawan.frames import (
    DataFrame,
    EncryptedJoinAccept,
    FCtrl,
    JoinAccept,
    JoinRequest,
    Proprietary,
    RejoinRequest,
    decode,
)
from hil.lorawan.security import FOptsVariant, SessionKeys
from hil.lorawan.session import crypt_fopts, crypt_frm_payload, verify_mic
from hil.lorawan.types import EUI64

_KEY_OPTIONS = ("appkey", "nwkkey", "nwkskey", "appskey", "snwksintkey", "fnwksintkey", "nwksenckey")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``frame decode`` to the command line."""
    frame = commands.add_parser("frame", help="LoRaWAN frame tools")
    sub = frame.add_subparsers(dest="frame_command", required=True, parser_class=type(frame))
    p = sub.add_parser("decode", help="decode a PHYPayload given in hex and print JSON")
    p.add_argument("hex", help="the PHYPayload, hex (spaces allowed)")
    for name in _KEY_OPTIONS:
        p.add_argument(f"--{name}", metavar="KEY", help=f"{name} (32 hex digits)")
    p.add_argument("--version", dest="lorawan_version", default="1.0", help="LoRaWAN version: 1.0 (1.0.x) or 1.1")
    p.add_argument("--dev-nonce", type=_int, help="DevNonce of the join-request a join-accept answers")
    p.add_argument("--join-eui", help="JoinEUI (1.1 join-accept MIC and key derivation)")
    p.add_argument("--dev-eui", help="DevEUI (1.1: derives JSIntKey/JSEncKey)")
    p.add_argument("--fcnt-msb", type=_int, default=0, help="upper 16 bits of the 32-bit FCnt (default 0)")
    p.add_argument("--dir", choices=("up", "down"), help="expected direction; an error if MType disagrees")
    p.add_argument("--conf-fcnt", type=_int, default=0, help="1.1 MIC: ConfFCnt (default 0)")
    p.add_argument("--tx-dr", type=_int, default=0, help="1.1 uplink MIC: TxDr (default 0)")
    p.add_argument("--tx-ch", type=_int, default=0, help="1.1 uplink MIC: TxCh (default 0)")
    p.add_argument(
        "--fopts-variant", choices=[v.value for v in FOptsVariant], default=FOptsVariant.ERRATA.value,
        help="1.1 FOpts A-block layout (default errata, as ChirpStack)",
    )
    p.set_defaults(run=run_decode)


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def run_decode(args: argparse.Namespace) -> int:
    """Entry point of ``frame decode``: prints one JSON object."""
    try:
        out = decode_to_dict(args)
    except (FrameError, LoRaWANError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(out))
    return 0


def decode_to_dict(args: argparse.Namespace) -> dict[str, Any]:
    """Decode ``args.hex`` with whatever keys ``args`` carries."""
    text = "".join(args.hex.split())
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"PHYPayload is not hex: {args.hex!r}") from None
    version = _version(args.lorawan_version)
    keys = {name: AESKey(getattr(args, name), name) for name in _KEY_OPTIONS if getattr(args, name)}
    frame = decode(data)
    if args.dir is not None and not isinstance(frame, Proprietary):
        if frame.mtype.is_uplink != (args.dir == "up"):
            raise UsageError(f"--dir {args.dir} but MType is {frame.mtype.snake}")
    out: dict[str, Any] = {"mtype": frame.mtype.snake, "major": frame.major}
    if isinstance(frame, JoinRequest):
        out.update(_join_request(frame, keys, version))
    elif isinstance(frame, EncryptedJoinAccept):
        out.update(_join_accept(frame, keys, version, args))
    elif isinstance(frame, RejoinRequest):
        out.update(_rejoin(frame, keys))
    elif isinstance(frame, DataFrame):
        out.update(_data(frame, keys, version, args))
    else:
        out.update({"payload": frame.payload.hex(), "mic": None, "mic_valid": None})
    return out


def _version(text: str) -> str:
    if text in ("1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"):
        return "1.0"
    if text in ("1.1", "1.1.0"):
        return "1.1"
    raise UsageError(f"--version must be 1.0 or 1.1, got {text!r}")


def _root_key(keys: dict[str, AESKey], version: str) -> AESKey | None:
    return keys.get("nwkkey") if version == "1.1" else keys.get("appkey")


def _join_request(frame: JoinRequest, keys: dict[str, AESKey], version: str) -> dict[str, Any]:
    key = _root_key(keys, version)
    return {
        "join_eui": str(frame.join_eui),
        "dev_eui": str(frame.dev_eui),
        "dev_nonce": frame.dev_nonce,
        "mic": frame.mic.hex(),
        "mic_valid": None if key is None else frame.mic_valid(key),
    }


def _join_accept(
    frame: EncryptedJoinAccept, keys: dict[str, AESKey], version: str, args: argparse.Namespace
) -> dict[str, Any]:
    key = _root_key(keys, version)
    if key is None:  # without the key nothing but the MHDR can be read
        return {"encrypted": frame.raw[1:].hex(), "mic": None, "mic_valid": None}
    accept = frame.decrypt(key)
    out: dict[str, Any] = {
        "join_nonce": accept.join_nonce,
        "net_id": str(accept.net_id),
        "dev_addr": str(accept.dev_addr),
        "dl_settings": {
            "opt_neg": accept.dl_settings.opt_neg,
            "rx1_dr_offset": accept.dl_settings.rx1_dr_offset,
            "rx2_dr": accept.dl_settings.rx2_dr,
        },
        "rx_delay": accept.rx_delay,
        "cf_list": _cf_list(accept),
        "mic": accept.mic.hex(),
        "mic_valid": None,
    }
    join_eui = EUI64.parse(args.join_eui) if args.join_eui else None
    opt_neg = version == "1.1" and accept.dl_settings.opt_neg
    if opt_neg:
        if args.dev_eui and join_eui is not None and args.dev_nonce is not None:
            js_int, _ = security.derive_js_keys(key, EUI64.parse(args.dev_eui).wire)
            out["mic_valid"] = accept.mic_valid(js_int, join_eui=join_eui, dev_nonce=args.dev_nonce)
    else:
        out["mic_valid"] = accept.mic_valid(key, lorawan_1_1=version == "1.1")
    if args.dev_nonce is not None:
        out["session_keys"] = _session_keys(accept, keys, version, opt_neg, join_eui, args.dev_nonce)
    return out


def _cf_list(accept: JoinAccept) -> dict[str, Any] | None:
    cf = accept.cf_list_decoded
    if cf is None:
        return None
    if cf.cflist_type == 0:
        return {"cf_list_type": 0, "frequencies": list(cf.frequencies)}
    return {"cf_list_type": 1, "ch_masks": [f"{m:04x}" for m in cf.ch_masks]}


def _session_keys(
    accept: JoinAccept, keys: dict[str, AESKey], version: str, opt_neg: bool, join_eui: EUI64 | None, dev_nonce: int
) -> dict[str, str] | None:
    net_id = accept.net_id.wire
    if version == "1.0":
        s = security.derive_session_keys_10(keys["appkey"], accept.join_nonce, net_id, dev_nonce)
        return {"nwk_s_key": s.nwk_s_key.reveal_hex(), "app_s_key": s.app_s_key.reveal_hex()}
    if opt_neg:
        if join_eui is None or "appkey" not in keys:
            raise UsageError("1.1 session keys with OptNeg=1 need --join-eui and --appkey")
        s = security.derive_session_keys_11(keys["nwkkey"], keys["appkey"], accept.join_nonce, join_eui.wire, dev_nonce)
    else:
        s = security.derive_session_keys_11(
            keys["nwkkey"], keys["nwkkey"], accept.join_nonce, b"", dev_nonce, opt_neg=False, net_id_wire=net_id
        )
    return {
        "f_nwk_s_int_key": s.f_nwk_s_int_key.reveal_hex(),
        "s_nwk_s_int_key": s.s_nwk_s_int_key.reveal_hex(),
        "nwk_s_enc_key": s.nwk_s_enc_key.reveal_hex(),
        "app_s_key": s.app_s_key.reveal_hex(),
    }


def _rejoin(frame: RejoinRequest, keys: dict[str, AESKey]) -> dict[str, Any]:
    out: dict[str, Any] = {"rejoin_type": frame.rejoin_type}
    if frame.rejoin_type == 1:
        out["join_eui"] = str(frame.join_eui)
    else:
        out["net_id"] = str(frame.net_id)
    out.update({"dev_eui": str(frame.dev_eui), "rj_count": frame.rj_count, "mic": frame.mic.hex()})
    if frame.rejoin_type == 1:
        key = security.derive_js_keys(keys["nwkkey"], frame.dev_eui.wire)[0] if "nwkkey" in keys else None
    else:
        key = keys.get("snwksintkey")
    out["mic_valid"] = None if key is None else frame.mic_valid(key)
    return out


def _fctrl(fctrl: FCtrl, uplink: bool, fopts_len: int) -> dict[str, Any]:
    out: dict[str, Any] = {"adr": fctrl.adr}
    if uplink:
        out.update({"adr_ack_req": fctrl.adr_ack_req, "ack": fctrl.ack, "class_b": fctrl.class_b})
    else:
        out.update({"ack": fctrl.ack, "f_pending": fctrl.f_pending})
    out["fopts_len"] = fopts_len
    return out


def _data(frame: DataFrame, keys: dict[str, AESKey], version: str, args: argparse.Namespace) -> dict[str, Any]:
    fcnt = ((args.fcnt_msb & 0xFFFF) << 16) | frame.fcnt
    v11 = version == "1.1"
    if v11:
        f_key, s_key, enc_key = keys.get("fnwksintkey"), keys.get("snwksintkey"), keys.get("nwksenckey")
    else:
        f_key = s_key = enc_key = keys.get("nwkskey")
    app_key = keys.get("appskey")

    mic_valid = None
    needed = (f_key, s_key) if (v11 and frame.uplink) else (s_key,)
    if all(k is not None for k in needed):
        s = s_key or f_key
        mic_keys = SessionKeys(f_key or s, s, s, s, lorawan_1_1=v11)  # only the MIC keys matter here
        mic_valid = verify_mic(frame, mic_keys, fcnt, conf_fcnt=args.conf_fcnt, tx_dr=args.tx_dr, tx_ch=args.tx_ch)

    fopts, fopts_clear = frame.fopts, not v11 or not frame.fopts
    if v11 and frame.fopts and enc_key is not None:
        fopts, fopts_clear = crypt_fopts(frame, enc_key, fcnt, frame.fopts, args.fopts_variant), True

    payload_key = enc_key if frame.fport == 0 else app_key
    payload = frame.frm_payload
    if payload_key is not None:
        payload = crypt_frm_payload(frame, payload_key, fcnt, payload)

    out: dict[str, Any] = {
        "dev_addr": str(frame.dev_addr),
        "fctrl": _fctrl(frame.fctrl, frame.uplink, len(frame.fopts)),
        "fcnt": fcnt,
        "fopts": fopts.hex(),
        "fopts_decrypted": fopts_clear if frame.fopts else None,
    }
    mac_source = fopts if (frame.fopts and fopts_clear) else (payload if frame.fport == 0 and payload_key else b"")
    if mac_source:
        try:
            out["mac_commands"] = [
                {"cid": c.cid, "name": c.name, "payload": c.payload.hex(), **c.fields()}
                for c in maccommands.parse(mac_source, uplink=frame.uplink)
            ]
        except FrameError as exc:
            out["mac_commands_error"] = str(exc)
    out.update({
        "fport": frame.fport,
        "frm_payload": payload.hex() if frame.fport is not None else None,
        "frm_payload_decrypted": (payload_key is not None) if frame.frm_payload else None,
        "mic": frame.mic.hex(),
        "mic_valid": mic_valid,
    })
    return out
