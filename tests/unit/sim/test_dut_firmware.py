"""The virtual DUT's firmware core on a fake MAC: power, boot, brown-out, resets, halt, API, defects."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from hil.clock import Deadline
from hil.lorawan.crypto import AESKey
from hil.lorawan.types import EUI64, DevAddr
from hil.relay.protocol import RelayKey, decode
from hil.sim.dut.defects import DEFECTS, KNOWN_DEFECTS, MAC_DEFECTS, UnknownDefectError, defect, validate_defects
from hil.sim.dut.firmware import FactoryDefaults, Firmware
from hil.sim.dut.interfaces import Booted, JoinFailed, Joined, TxDone
from hil.sim.dut.nvm import Nvm
from hil.sim.radio import Transmission
from tests.unit.sim.fake_mac import RELAY_PASSPHRASE, DutBench, FakeMacFactory

KEY = RelayKey(RELAY_PASSPHRASE)


# --- boot --------------------------------------------------------------------------------------


def test_boot_provisions_a_fresh_nvm_then_reports_booted() -> None:
    bench = DutBench()
    bench.run(0.05)
    assert bench.events == [] and not bench.fw.running
    bench.boot()
    assert bench.of(Booted) == [Booted("power_on")]
    view = bench.fw.view
    assert view.is_provisioned()
    assert view.get("dev_eui") == EUI64("70b3d57ed0000001") and view.get("device_class") == "C"
    assert view.get("relay_key").reveal().hex().startswith("924592b9b103f14f")
    assert bench.mac.calls == [("start",)]  # never joined before: no auto-join
    cred = bench.mac.credentials
    assert cred.dev_eui == EUI64("70b3d57ed0000001") and cred.app_key == bench.factory.app_key
    assert bench.mac.defects == frozenset()


def test_second_boot_is_faster_and_keeps_identity(tmp_path) -> None:
    path = tmp_path / "nvm.bin"
    bench = DutBench(nvm_path=path)
    bench.boot()
    first = bench.events[0][0]
    assert first == pytest.approx(0.002 + 0.05 + bench.nvm.words_committed * 0.0035)
    bench.fw.close()
    again = DutBench(nvm_path=path, dev_eui=EUI64("0000000000000bad"))  # NVM wins over the rig's defaults
    again.boot()
    assert again.events[0][0] == pytest.approx(0.052)
    assert again.fw.dev_eui == EUI64("70b3d57ed0000001")


def test_layout_version_mismatch_is_a_clear_error(tmp_path) -> None:
    bench = DutBench(nvm_path=tmp_path / "nvm.bin")
    bench.boot()
    bench.fw.view.poke(layout_version=99)
    with pytest.raises(ValueError, match=r"nvm\.bin has layout version 99, this firmware uses 1"):
        DutBench(nvm_path=tmp_path / "nvm.bin")


def test_auto_join_after_every_boot_once_joined_with_persisted_dev_nonce() -> None:
    bench = DutBench()
    bench.boot()
    bench.join()
    assert bench.of(Joined) == [Joined(DevAddr(0x26011234))]
    assert bench.mac.join_requests == [0]
    bench.run(0.1)  # let the DevNonce and joined_before words commit
    bench.power_cycle()
    bench.boot()
    assert bench.mac.calls[:2] == [("start",), ("join",)]
    assert bench.mac.join_requests == [1]  # the counter came from NVM
    assert bench.of(Booted) == [Booted("power_on"), Booted("power_on")]


def test_abp_has_its_session_at_boot_and_announces() -> None:
    bench = DutBench(activation="abp", abp_dev_addr=DevAddr(0x260B0001),
                     abp_nwk_s_key=AESKey(bytes([1]) * 16), abp_app_s_key=AESKey(bytes([2]) * 16))
    bench.boot()
    assert bench.fw.joined and bench.fw.dev_addr == DevAddr(0x260B0001)
    assert bench.mac.credentials.abp_keys is not None and ("join",) not in bench.mac.calls
    msg = decode(bench.mac.sent[0].payload, KEY)
    assert (msg.cmd, msg.fcnt) == (0x83, 0)
    assert bench.fw.join() == "busy"  # the announcement is on air
    bench.run(0.1)
    assert bench.fw.join() is None  # ABP: "join" is the activation that already happened
    bench.run(0.01)
    assert bench.of(Joined) == [Joined(DevAddr(0x260B0001))]


# --- power ----------------------------------------------------------------------------------------


def test_supply_off_silences_the_firmware_and_keeps_nvm() -> None:
    bench = DutBench()
    bench.boot()
    bench.join()
    bench.run(0.1)
    mac = bench.mac
    bench.supply.set_output(False)
    bench.run(0.001)
    assert mac.calls[-1] == ("stop",) and not bench.fw.running and bench.fw.phase == "off"
    count = len(bench.events)
    assert bench.fw.send(1, b"x", False) == "not_running" and bench.fw.join() == "not_running"
    assert not bench.fw.joined and bench.fw.dev_addr is None
    bench.run(5.0)
    assert len(bench.events) == count and len(bench.macs.macs) == 1
    assert bench.fw.view.get("joined_before") is True and bench.fw.view.get("dev_nonce") == 1


def test_power_loss_clears_sram_of_the_memory_map() -> None:
    from hil.sim.dut.memory import SRAM_BASE

    bench = DutBench(with_memory=True)
    bench.boot()
    assert bench.memory is not None
    bench.memory.write(SRAM_BASE, b"\x42")
    bench.power_cycle()
    assert bench.memory.read(SRAM_BASE, 1) == b"\x00"


def test_the_firmware_reports_the_version_of_the_image_it_booted() -> None:
    from hil.sim.dut.memory import FLASH_BASE, IMAGE_CODE_SIZE, fake_firmware_image

    bench = DutBench(with_memory=True)
    bench.boot()
    assert bench.memory is not None and bench.fw.firmware_version == "1.0.0"
    bench.memory.erase(FLASH_BASE, IMAGE_CODE_SIZE)  # reflashed through SWD while running
    bench.memory.write(FLASH_BASE, fake_firmware_image(IMAGE_CODE_SIZE, "1.1.0"))
    assert bench.fw.firmware_version == "1.0.0"  # still the image it booted
    bench.power_cycle()
    bench.boot()
    assert bench.fw.firmware_version == "1.1.0"
    assert bench.fw.banner_lines()[0].endswith("relay node firmware 1.1.0")


def test_stale_timers_of_a_dead_boot_do_nothing() -> None:
    bench = DutBench(device_class="A")
    bench.boot()
    bench.join()
    bench.run(0.2)
    assert bench.fw.send(2, b"abc", False) is None
    bench.run(0.01)  # the fake MAC is "transmitting" (50 ms)
    bench.supply.set_output(False)
    bench.run(0.001)
    bench.supply.set_output(True)
    bench.run(0.3)
    assert TxDone not in {type(e) for e in (ev for _, ev in bench.events)}
    assert bench.fw.view.get("fcnt_up") == 1  # the announcement's uplink only


def test_brown_out_from_a_current_limited_supply_resets() -> None:
    bench = DutBench(device_class="A")
    bench.boot()
    bench.join()
    bench.run(0.2)
    bench.supply.configure(current_limit=0.03)  # enough to idle and boot, not to transmit at 14 dBm
    assert bench.fw.running
    assert bench.fw.send(1, b"hello", False) is None
    bench.run(0.001)
    assert not bench.fw.running  # the TX current pulled the rail below 4.2 V
    bench.boot()
    assert bench.of(Booted)[-1] == Booted("brown_out")
    assert bench.fw.boots == ["power_on", "brown_out"]


def test_power_cut_during_an_nvm_write_tears_it() -> None:
    bench = DutBench()
    bench.boot()
    bench.fw.set_app_key(AESKey(bytes([0x77]) * 16))
    bench.run(0.0035 * 2.5)  # two of the key's four words
    bench.supply.set_output(False)
    bench.run(0.01)
    raw = bench.nvm.read_committed(0x20, 16)
    assert raw[:8] == bytes([0x77]) * 8 and raw[8:] == bench.factory.app_key.reveal()[8:]


# --- resets and SWD -----------------------------------------------------------------------------


def test_soft_reset_finishes_nvm_writes_then_reboots() -> None:
    bench = DutBench()
    bench.boot()
    bench.fw.dev_eui = EUI64("70b3d57ed0000099")
    bench.fw.reset()
    bench.run(0.5)
    assert bench.fw.view.get_committed("dev_eui") == EUI64("70b3d57ed0000099")
    assert bench.of(Booted) == [Booted("power_on"), Booted("reset")]
    assert len(bench.macs.macs) == 2 and bench.macs.macs[0].stopped
    assert bench.mac.credentials.dev_eui == EUI64("70b3d57ed0000099")


def test_factory_reset_erases_and_reprovisions() -> None:
    bench = DutBench()
    bench.boot()
    bench.join()
    bench.fw.dev_eui = EUI64("70b3d57ed0000099")
    bench.run(0.2)
    bench.fw.factory_reset()
    bench.run(1.0)
    assert bench.of(Booted)[-1] == Booted("factory_reset")
    view = bench.fw.view
    assert view.get("dev_eui") == EUI64("70b3d57ed0000001")
    assert view.get("joined_before") is False and view.get("dev_nonce") == 0
    assert ("join",) not in bench.mac.calls


def test_halt_defers_timers_and_drops_receptions() -> None:
    bench = DutBench(power_on=False)
    bench.supply.set_output(True)
    bench.run(0.01)
    assert bench.fw.halt()
    bench.run(1.0)
    assert bench.events == [] and not bench.fw.running  # the boot timer waits
    bench.fw.resume()
    bench.run(0.2)
    assert bench.of(Booted) == [Booted("power_on")]
    # the deferred boot ran at resume: it provisioned the fresh NVM, then booted
    assert bench.events[0][0] == pytest.approx(1.01 + bench.nvm.words_committed * 0.0035)
    # a halted core services no radio interrupt
    tx = Transmission(b"\x60", 869_525_000, 12, 125_000, "4/5", 14.0, bench.now, bench.now + 0.01, True, "gw")
    bench.fw.halt()
    assert not bench.fw.running and bench.fw.join() == "not_running"
    bench.medium.transmit(tx)
    bench.run(0.1)
    assert not any(c[0] == "on_air" for c in bench.mac.calls)
    bench.fw.resume()
    bench.medium.transmit(tx)
    bench.run(0.1)
    assert any(c[0] == "on_air" for c in bench.mac.calls)


def test_swd_reset_releases_the_halt_and_keeps_nvm() -> None:
    bench = DutBench()
    bench.boot()
    bench.fw.halt()
    bench.fw.swd_reset()
    bench.run(0.2)
    assert bench.fw.running and not bench.fw.halted
    assert bench.of(Booted) == [Booted("power_on"), Booted("swd_reset")]


def test_halting_an_unpowered_core_is_refused() -> None:
    bench = DutBench(power_on=False)
    assert bench.fw.halt() is False


# --- the console's API --------------------------------------------------------------------------


def test_join_and_send_answers() -> None:
    bench = DutBench(app_key=None, device_class="A")
    bench.boot()
    fw = bench.fw
    assert not fw.has_keys() and fw.join() == "no_keys"
    assert fw.send(1, b"x", False) == "not_joined"
    fw.set_app_key(AESKey(bytes([9]) * 16))
    assert fw.has_keys()
    assert fw.join() is None and fw.join() == "busy"
    bench.run(0.01)
    assert bench.mac.credentials.app_key == AESKey(bytes([9]) * 16)  # the MAC was rebuilt with the new key
    bench.mac.accept_join()
    bench.run(0.2)
    assert fw.joined and fw.dev_addr == DevAddr(0x26011234) and fw.fcnt_up == 1
    assert fw.send(0, b"x", False) == "bad_port"
    assert fw.send(1, bytes(300), False) == "too_long"
    assert fw.send(1, b"x", True) is None and fw.send(1, b"y", False) == "busy"
    bench.run(0.2)
    assert bench.of(TxDone) == [TxDone(1, True, None)]  # only the console's uplink, not the relay's
    assert fw.send(1, b"y", False) is None


def test_join_failure_is_reported() -> None:
    bench = DutBench()
    bench.boot()
    bench.fw.join()
    bench.run(0.01)
    bench.mac.fail_join("rx_timeout")
    assert bench.of(JoinFailed) == [JoinFailed("rx_timeout")]
    assert bench.fw.join() is None


def test_settings_are_persisted_and_validated() -> None:
    bench = DutBench()
    bench.boot()
    fw = bench.fw
    fw.join_eui = "70b3d57ed00000aa"
    fw.data_rate = 3
    fw.tx_power = 2
    fw.adr = True
    fw.lorawan_version = "1.1.0"
    fw.activation = "ABP"
    fw.relay_spreading_factor = 9
    fw.relay_tx_power_dbm = 10
    fw.device_class = "A"
    bench.run(0.5)
    v = fw.view
    assert (v.get("join_eui"), v.get("data_rate"), v.get("tx_power"), v.get("adr"), v.get("lorawan_version"),
            v.get("activation"), v.get("relay_sf"), v.get("relay_tx_power_dbm"), v.get("device_class")) == (
        EUI64("70b3d57ed00000aa"), 3, 2, True, "1.1", "abp", 9, 10, "A")
    assert ("set_device_class", "A") in bench.mac.calls
    with pytest.raises(ValueError, match="no data rate 16"):
        fw.data_rate = 16
    with pytest.raises(ValueError, match="TXPower must be 0..7"):
        fw.tx_power = 8
    with pytest.raises(ValueError, match="SF7..SF12"):
        fw.relay_spreading_factor = 6
    with pytest.raises(ValueError, match="2..15 dBm"):
        fw.relay_tx_power_dbm = 16
    with pytest.raises(ValueError, match="unknown LoRaWAN version"):
        fw.lorawan_version = "2.0"
    bench.supply.set_output(False)
    bench.run(0.01)
    fw.data_rate = 1  # nobody can type to an unpowered console: ignored
    assert fw.data_rate == 3


def test_identity_and_banner() -> None:
    bench = DutBench(serial_number=None)
    assert bench.fw.serial_number == "70B3D57ED0000001"
    assert bench.fw.firmware_version == "1.0.0" and bench.fw.hardware_model == "hil-relay-l0"
    assert bench.fw.banner_lines()[-1] == "DevEUI 70B3D57ED0000001"


def test_secrets_stay_out_of_reprs_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bench = DutBench()
    text = repr(bench.factory)
    assert RELAY_PASSPHRASE not in text and "2b7e1516" not in text
    bench.boot()
    bench.join()
    bench.fw.set_relay_passphrase("another secret")
    bench.fw.set_app_key(AESKey(bytes([0x5A]) * 16))
    bench.power_cycle()
    bench.run(1.0)
    logs = caplog.text + repr(bench.fw.mac.credentials)
    for secret in ("2b7e1516", "5a5a5a5a", "another secret", "924592b9", RELAY_PASSPHRASE):
        assert secret not in logs
    assert b"another secret" not in bench.nvm.image()


def test_console_thread_calls_with_a_running_scheduler(compressed_clock: Any) -> None:
    from hil.lorawan.region import get_region
    from hil.sim.mains import RelayContact
    from hil.sim.power import SupplyChannel
    from hil.sim.radio import RadioMedium
    from hil.sim.scheduler import Scheduler

    clock = compressed_clock(100)
    sched = Scheduler(clock)
    supply = SupplyChannel()
    supply.configure(voltage=5.0, current_limit=1.0)
    macs = FakeMacFactory()
    factory = FactoryDefaults(dev_eui=EUI64("70b3d57ed0000001"), join_eui=EUI64("70b3d57ed00000ff"),
                              app_key=AESKey(bytes(16)))
    fw = Firmware(sched, RadioMedium(sched), get_region("EU868"), supply, RelayContact(sched), Nvm(sched),
                  factory=factory, mac_factory=macs)
    booted = threading.Event()
    cond = threading.Condition()
    events: list[object] = []

    def listener(e: object) -> None:
        with cond:
            events.append(e)
            cond.notify_all()
        if isinstance(e, Booted):
            booted.set()

    fw.subscribe(listener)
    sched.start()
    try:
        supply.set_output(True)  # from this (the "SCPI") thread
        assert clock.wait(booted, 200.0)  # rig seconds: 2 s real at most
        results: list[object] = []
        console = threading.Thread(target=lambda: results.append(fw.join()))
        console.start()
        console.join(timeout=2)
        assert results == [None]
        # join() handed its work to the scheduler before returning: this runs after it, in order
        sched.call_soon(macs.current.accept_join)
        with cond:
            assert clock.wait_for(cond, lambda: any(isinstance(e, Joined) for e in events), Deadline.after(clock, 200.0))
    finally:
        sched.stop()
        fw.close()
    assert sched.errors == []


# --- defects ------------------------------------------------------------------------------------


def test_defects_are_data_and_validated() -> None:
    assert {d.name for d in DEFECTS} == KNOWN_DEFECTS == {
        "devnonce_not_persisted", "devnonce_persisted_after_tx", "fcnt_not_persisted", "join_accept_mic_unchecked",
        "rx1_late", "sync_silent", "relay_accepts_replay", "relay_feedback_lies", "relay_restores_last_state",
        "contact_welded"}
    assert all(d.breaks and d.caught_by in {"join", "devnonce", "fcnt", "relay"} for d in DEFECTS)
    assert defect("rx1_late").layer == "mac"
    assert validate_defects(["sync_silent"]) == frozenset({"sync_silent"})
    assert validate_defects(None) == frozenset()
    with pytest.raises(UnknownDefectError, match=r"rigs/x\.yaml: unknown firmware defect 'bogus'; known defects: contact_welded"):
        validate_defects(["bogus"], "rigs/x.yaml")
    with pytest.raises(UnknownDefectError, match="known defects"):
        DutBench(defects=frozenset({"bogus"}))


def test_the_mac_gets_only_its_own_defects() -> None:
    bench = DutBench(defects=frozenset({"rx1_late", "sync_silent", "fcnt_not_persisted"}))
    bench.boot()
    assert bench.mac.defects == frozenset({"rx1_late", "fcnt_not_persisted"}) <= MAC_DEFECTS


# --- with the real MAC, a gateway and the reference network ----------------------------------------


def test_with_the_real_mac_join_relay_command_and_rejoin_after_power_cycle() -> None:
    from hil.lorawan.frames import JoinRequest
    from hil.lorawan.frames import decode as decode_frame
    from hil.relay.protocol import Command, RelayMessage, Status, encode
    from hil.sim.mains import RelayContact
    from hil.sim.power import SupplyChannel
    from tests.unit.sim.mac_harness import APP_KEY_HEX, DEV_EUI, JOIN_EUI, make_bench

    mb = make_bench("1.0.4", device_class="C")
    supply = SupplyChannel()
    supply.configure(voltage=5.0, current_limit=1.0)
    contact = RelayContact(mb.scheduler)
    factory = FactoryDefaults(dev_eui=DEV_EUI, join_eui=JOIN_EUI, app_key=AESKey(APP_KEY_HEX, "app_key"),
                              device_class="C", relay_passphrase=RELAY_PASSPHRASE)
    fw = Firmware(mb.scheduler, mb.medium, mb.region, supply, contact, Nvm(mb.scheduler), factory=factory)
    events: list[object] = []
    fw.subscribe(events.append)
    relay_up: list[RelayMessage] = []
    mb.ns.on_uplink(lambda up: relay_up.append(decode(up.payload, KEY)) if up.fport == 10 else None)
    supply.set_output(True)
    assert mb.run_until(lambda: fw.running, 1.0)
    assert fw.join() is None
    assert mb.run_until(lambda: any(isinstance(e, Joined) for e in events), 60.0)
    assert mb.run_until(lambda: bool(relay_up), 30.0)
    assert (relay_up[0].cmd, relay_up[0].fcnt) == (0x83, 0)
    mb.run(3.0)  # past the uplink's receive windows: Class C listens on RX2
    mb.ns.enqueue_downlink(DEV_EUI, 10, encode(RelayMessage(Command.SET_OUTPUT, 0, Status.OK, b"\x01" + bytes(5)), KEY))
    assert mb.run_until(lambda: len(relay_up) == 2, 30.0)
    assert (relay_up[1].cmd, relay_up[1].status, relay_up[1].output_voltage) == (0x81, Status.OK, 230)
    assert contact.closed and supply.measured_current() > 0.08
    mb.run(1.0)  # let the MAC's counters reach NVM
    supply.set_output(False)
    mb.run(0.5)
    supply.set_output(True)
    assert mb.run_until(lambda: sum(isinstance(e, Joined) for e in events) == 2, 60.0)  # rejoined by itself
    nonces = [f.dev_nonce for f in (decode_frame(tx.phy_payload) for tx in mb.device_tx()) if isinstance(f, JoinRequest)]
    assert nonces == sorted(set(nonces)) and nonces[0] == 0 and len(nonces) >= 2
    assert not contact.coil_energised and not contact.closed  # it comes up off, its documented safe state
    assert mb.run_until(lambda: len(relay_up) == 3, 30.0)
    assert (relay_up[2].cmd, relay_up[2].fcnt, relay_up[2].relay_state) == (0x83, 1, False)  # and announces it
    mb.check_clean()
