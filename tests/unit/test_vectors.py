"""The codec against public test vectors (tests/unit/vectors/lorawan.json; sources in its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hil.lorawan import security
from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import DataFrame, EncryptedJoinAccept, JoinRequest, MType, RejoinRequest, decode
from hil.lorawan.security import FOptsVariant, SessionKeys
from hil.lorawan.session import open_frame, seal_frame
from hil.lorawan.types import EUI64, DevAddr, NetID

VECTORS = json.loads((Path(__file__).parent / "vectors" / "lorawan.json").read_text())


def of_kind(kind: str) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in VECTORS if v["kind"] == kind]


def key(hex_key: str | None) -> AESKey | None:
    return None if hex_key is None else AESKey(hex_key)


def test_every_vector_kind_is_exercised() -> None:
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == {"cmac", "join_request", "join_accept", "session_keys", "rejoin_request", "data", "fopts_encryption"}
    assert len(VECTORS) >= 60


@pytest.mark.parametrize("v", of_kind("cmac"))
def test_cmac(v: dict[str, Any]) -> None:
    assert AESKey(v["key"]).cmac(bytes.fromhex(v["message"])).hex() == v["mac"]


@pytest.mark.parametrize("v", of_kind("join_request"))
def test_join_request(v: dict[str, Any]) -> None:
    frame = decode(bytes.fromhex(v["phy_payload"]))
    assert isinstance(frame, JoinRequest)
    assert str(frame.join_eui) == v["join_eui"] and str(frame.dev_eui) == v["dev_eui"]
    assert frame.dev_nonce == v["dev_nonce"] and frame.mic.hex() == v["mic"]
    assert frame.mic_valid(AESKey(v["key"]))
    rebuilt = JoinRequest(EUI64.parse(v["join_eui"]), EUI64.parse(v["dev_eui"]), v["dev_nonce"]).signed(AESKey(v["key"]))
    assert rebuilt.to_bytes().hex() == v["phy_payload"]


@pytest.mark.parametrize("v", of_kind("join_accept"))
def test_join_accept(v: dict[str, Any]) -> None:
    frame = decode(bytes.fromhex(v["phy_payload"]))
    assert isinstance(frame, EncryptedJoinAccept)
    accept = frame.decrypt(AESKey(v["key"]))
    assert accept.join_nonce == v["join_nonce"]
    assert str(accept.net_id) == v["net_id"] and str(accept.dev_addr) == v["dev_addr"]
    assert accept.dl_settings.to_byte() == v["dl_settings"] and accept.rx_delay == v["rx_delay"]
    assert (accept.cf_list.hex() if accept.cf_list else None) == v["cf_list"]
    assert accept.mic.hex() == v["mic"]
    if v["version"] == "1.1" and accept.dl_settings.opt_neg:
        if v.get("js_int_key"):
            js_int = AESKey(v["js_int_key"])
        else:
            js_int, _ = security.derive_js_keys(AESKey(v["nwk_key"]), EUI64.parse(v["dev_eui"]).wire)
        context = {"join_eui": EUI64.parse(v["join_eui"]), "dev_nonce": v["dev_nonce"], "join_req_type": v["join_req_type"]}
        assert accept.mic_valid(js_int, **context)
        assert not accept.mic_valid(js_int, lorawan_1_1=False)  # the legacy MIC must not match
        assert accept.signed(js_int, **context).encrypt(AESKey(v["key"])).hex() == v["phy_payload"]
    else:
        # 1.0.x: bit 7 of DLSettings is RFU, even when a vector sets it.
        assert accept.mic_valid(AESKey(v["key"]), lorawan_1_1=False)
        assert accept.encrypt(AESKey(v["key"])).hex() == v["phy_payload"]


@pytest.mark.parametrize("v", of_kind("session_keys"))
def test_session_keys(v: dict[str, Any]) -> None:
    net_id = NetID.parse(v["net_id"]).wire if v.get("net_id") else b""
    want = v["expected"]
    if v["version"] == "1.0":
        keys = security.derive_session_keys_10(AESKey(v["app_key"]), v["join_nonce"], net_id, v["dev_nonce"])
        assert keys.nwk_s_key.reveal_hex() == want["nwk_s_key"]
        assert keys.app_s_key.reveal_hex() == want["app_s_key"]
        return
    nwk_key = AESKey(v["nwk_key"])
    keys = security.derive_session_keys_11(
        nwk_key, AESKey(v["app_key"]), v["join_nonce"], EUI64.parse(v["join_eui"]).wire, v["dev_nonce"],
        opt_neg=v.get("opt_neg", True), net_id_wire=net_id,
    )
    for name in ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key", "app_s_key"):
        assert getattr(keys, name).reveal_hex() == want[name], name
    if "js_int_key" in want:
        js_int, js_enc = security.derive_js_keys(nwk_key, EUI64.parse(v["dev_eui"]).wire)
        assert js_int.reveal_hex() == want["js_int_key"] and js_enc.reveal_hex() == want["js_enc_key"]


@pytest.mark.parametrize("v", of_kind("rejoin_request"))
def test_rejoin_request(v: dict[str, Any]) -> None:
    frame = decode(bytes.fromhex(v["phy_payload"]))
    assert isinstance(frame, RejoinRequest)
    assert frame.rejoin_type == v["rejoin_type"] and frame.rj_count == v["rj_count"]
    assert str(frame.dev_eui) == v["dev_eui"]
    if frame.rejoin_type == 1:
        assert str(frame.join_eui) == v["join_eui"]
    else:
        assert str(frame.net_id) == v["net_id"]
    assert frame.mic.hex() == v["mic"] and frame.mic_valid(AESKey(v["key"]))
    assert frame.signed(AESKey(v["key"])).to_bytes().hex() == v["phy_payload"]


def _session(v: dict[str, Any]) -> SessionKeys:
    if v["version"] == "1.0":
        nwk = key(v.get("nwk_s_key")) or AESKey(bytes(16))
        return SessionKeys.for_1_0(nwk, key(v.get("app_s_key")) or AESKey(bytes(16)))
    s_int = key(v.get("s_nwk_s_int_key"))
    f_int = key(v.get("f_nwk_s_int_key")) or s_int
    filler = AESKey(bytes(16))
    return SessionKeys(
        f_int or filler, s_int or filler, key(v.get("nwk_s_enc_key")) or filler,
        key(v.get("app_s_key")) or filler, lorawan_1_1=True,
    )


@pytest.mark.parametrize("v", of_kind("data"))
def test_data_frame(v: dict[str, Any]) -> None:
    frame = decode(bytes.fromhex(v["phy_payload"]))
    assert isinstance(frame, DataFrame)
    assert frame.mtype.snake == v["mtype"] and str(frame.dev_addr) == v["dev_addr"]
    assert frame.fcnt == v["fcnt"] & 0xFFFF and frame.fport == v["fport"] and frame.mic.hex() == v["mic"]
    assert frame.fctrl.to_byte(frame.uplink, len(frame.fopts)) == v["fctrl"]
    context = {k: v.get(k, 0) or 0 for k in ("conf_fcnt", "tx_dr", "tx_ch")}
    variant = v.get("fopts_variant") or "errata"
    opened = open_frame(frame, _session(v), v["fcnt"], fopts_variant=variant, **context)
    assert opened.mic_valid
    if v["fcnt"] > 0xFFFF:  # the MIC covers the full 32-bit counter
        assert not open_frame(frame, _session(v), v["fcnt"] & 0xFFFF, **context).mic_valid
    assert opened.fopts.hex() == v["fopts"]
    if v.get("mic_only"):
        return
    if v["fport"] is not None:
        assert opened.frm_payload.hex() == v["frm_payload"]
    # Sealing the clear fields reproduces the frame byte for byte.
    sealed = seal_frame(
        MType[v["mtype"].upper()], DevAddr.parse(v["dev_addr"]), _session(v), v["fcnt"], fctrl=frame.fctrl,
        fopts=bytes.fromhex(v["fopts"]), fport=v["fport"],
        frm_payload=bytes.fromhex(v["frm_payload"] or ""), fopts_variant=variant, **context,
    )
    assert sealed.to_bytes().hex() == v["phy_payload"]


@pytest.mark.parametrize("v", [p for p in of_kind("data") if p.values[0].get("fopts_variant") and p.values[0]["fopts"]])
def test_data_frame_fopts_variants_differ(v: dict[str, Any]) -> None:
    """Only 1.1 frames with FOpts tell the A-block variants apart."""
    frame = decode(bytes.fromhex(v["phy_payload"]))
    other = "original" if v["fopts_variant"] == "errata" else "errata"
    assert open_frame(frame, _session(v), v["fcnt"], fopts_variant=other).fopts.hex() != v["fopts"]


@pytest.mark.parametrize("v", of_kind("fopts_encryption"))
def test_fopts_encryption(v: dict[str, Any]) -> None:
    direction = security.UP if v["dir"] == "up" else security.DOWN
    args = (AESKey(v["key"]), direction, DevAddr.parse(v["dev_addr"]).wire, v["fcnt"])
    variant = FOptsVariant(v["fopts_variant"])
    out = security.crypt_fopts_11(*args, bytes.fromhex(v["plaintext"]), variant=variant, a_fcnt_down=v["a_fcnt_down"])
    assert out.hex() == v["ciphertext"]
    other = FOptsVariant.ERRATA if variant is FOptsVariant.ORIGINAL else FOptsVariant.ORIGINAL
    assert security.crypt_fopts_11(*args, bytes.fromhex(v["plaintext"]), variant=other).hex() != v["ciphertext"]
