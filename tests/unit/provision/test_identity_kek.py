"""DevEUIs from an IEEE block, fresh keys, and keys sealed under the KEK (AES-GCM, AAD = unit + field)."""

from __future__ import annotations

import logging

import pytest

from hil.lorawan.crypto import AESKey
from hil.lorawan.types import EUI64
from hil.provision.identity import EuiBlock, EuiBlockError, EuiBlockExhausted, generate_root_keys
from hil.provision.kek import KekError, KeyDecryptError, KeyEncryptor, load_kek, new_kek_hex
from hil.rigfile.redaction import REDACTOR


def test_eui_blocks_of_each_size_and_their_ranges() -> None:
    mal = EuiBlock("70-B3-D5", first_serial=0x7ED2000000, last_serial=0x7ED2000001)
    assert mal.serial_bits == 40 and mal.dev_eui(0x7ED2000000) == EUI64(0x70B3D57ED2000000)
    assert mal.contains(EUI64(0x70B3D57ED2000001)) and not mal.contains(EUI64(0x70B3D57ED2000002))
    with pytest.raises(EuiBlockExhausted):
        mal.dev_eui(0x7ED2000002)
    assert EuiBlock("70B3D5E").serial_bits == 36 and EuiBlock("70B3D5E75").serial_bits == 28
    for bad in ("70B3", "70B3D5XX", "70B3D57ED2"):
        with pytest.raises(EuiBlockError):
            EuiBlock(bad)
    with pytest.raises(EuiBlockError, match="serial range"):
        EuiBlock("70B3D5", first_serial=5, last_serial=4)


def test_keys_are_fresh_every_time_and_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    keys = [generate_root_keys("1.0.4") for _ in range(500)]
    assert len({k.app_key.reveal() for k in keys}) == 500 and all(k.nwk_key is None for k in keys)
    v11 = generate_root_keys("1.1")
    assert v11.nwk_key is not None and v11.nwk_key != v11.app_key
    assert REDACTOR.redact(f"key {keys[0].app_key.reveal_hex()}") == "key ****"
    assert "****" in repr(keys[0])


def test_seal_open_round_trip_and_aad_binding() -> None:
    enc = KeyEncryptor(bytes(range(32)))
    key = AESKey(bytes(range(16)), "AppKey")
    sealed = enc.seal(key, EUI64(1), "app_key")
    assert len(sealed) == 44 and key.reveal() not in sealed
    assert enc.open(sealed, EUI64(1), "app_key") == key
    assert enc.seal(key, EUI64(1), "app_key") != sealed  # a fresh nonce every time
    for dev_eui, field in ((EUI64(2), "app_key"), (EUI64(1), "nwk_key")):
        with pytest.raises(KeyDecryptError, match="does not open"):
            enc.open(sealed, dev_eui, field)
    with pytest.raises(KeyDecryptError):
        KeyEncryptor(bytes(32)).open(sealed, EUI64(1), "app_key")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(KeyDecryptError):
        enc.open(tampered, EUI64(1), "app_key")
    assert bytes(range(32)).hex() not in repr(enc)


def test_kek_from_env_file_or_literal_never_echoed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    kek = new_kek_hex()
    by_env = load_kek("${env:STATION_KEK}", env={"STATION_KEK": kek})
    (tmp_path / "k.kek").write_text(f"# station KEK\n{kek}\n")
    by_file = load_kek({"file": "k.kek"}, base_dir=tmp_path)
    assert by_env.kek_id == by_file.kek_id == load_kek(kek).kek_id
    with pytest.raises(KekError, match="STATION_KEK is not set"):
        load_kek("${env:STATION_KEK}", env={})
    with pytest.raises(KekError) as err:
        load_kek("00" * 31 + "zz")
    assert "zz" not in str(err.value)
    with pytest.raises(KekError, match="does not exist"):
        load_kek({"file": "missing.kek"}, base_dir=tmp_path)


def test_a_logged_kek_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    kek = new_kek_hex()
    load_kek(kek)
    assert REDACTOR.redact(f"kek={kek}") == "kek=****"
    logging.getLogger("x").info("unused")
