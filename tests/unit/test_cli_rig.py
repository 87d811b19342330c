"""``python -m hil rig list`` and ``rig check``: the shipped rigs, broken files, a failing part, a busy rig."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from hil.cli import main
from hil.plugin.rig_lock import RigLock
from hil.rigfile.loader import RIGS_DIR

BENCH_ENV = {"HIL_APP_KEY": "00112233445566778899aabbccddeeff", "HIL_RELAY_PASSPHRASE": "bench-relay-phrase",
             "HIL_MQTT_PASSWORD": "bench-mqtt-password"}
SIM_YAML = (RIGS_DIR / "sim.yaml").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"


def rows(out: str) -> dict[str, tuple[str, str]]:
    """The check table as {part: (status, detail)}."""
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(" | ", 2)]
        if len(cells) == 3 and cells[0] != "part":
            table[cells[0]] = (cells[1], cells[2])
    return table


def children() -> set[int]:
    """This process's child processes (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def check(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run ``rig check`` in this process; asserts no traceback and no thread or process left behind."""
    threads, processes = set(threading.enumerate()), children()
    code = main(["rig", "check", "--reports-dir", str(tmp_path / "reports"), *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    left = [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert children() <= processes, "a process of the virtual rig was left running"
    return code, rows(out), out


# -- rig list -------------------------------------------------------------------------------------------

def test_list_shipped_rigs_with_bench_secrets_set(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BENCH_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["rig", "list"]) == 0
    out = capsys.readouterr().out
    sim = next(line for line in out.splitlines() if line.startswith("sim "))
    assert "rigs/sim.yaml" in sim and " virtual " in sim
    for part in ("dut.console (rak3172)", "gateway (chirpstack-mqtt)", "psu (keysight-e36300)", "feedback (dmm"):
        assert part in sim
    assert "dut.swd (hil_relay_node)" in sim
    bench = next(line for line in out.splitlines() if line.startswith("bench-07 "))
    assert "rigs/bench-example.yaml" in bench and " real " in bench
    for part in ("dut.console (stm32wl-at-slave)", "dut.swd (stm32wl55jcix)", "psu (rigol-dp800)",
                 "gateway (chirpstack-mqtt)", "feedback (dmm keysight-34461a)"):
        assert part in bench
    assert not any(value in out for value in BENCH_ENV.values())


def test_list_shows_the_error_of_a_rig_that_does_not_load(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BENCH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert main(["rig", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    bench = next(line for line in lines if line.startswith("bench-example "))
    assert " ERROR " in bench and "HIL_APP_KEY" in bench
    assert any(line.startswith("sim ") for line in lines)


def test_list_of_a_folder_with_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "rigs"
    (folder / "profiles").mkdir(parents=True)
    (folder / "profiles" / "ignored.yaml").write_text("name: not a rig\n")
    (folder / "good.yaml").write_text(SIM_YAML.replace("name: sim", "name: good-sim"))
    (folder / "broken.yaml").write_text("name: broken\ndut: [\n")
    (folder / "unknown-key.yaml").write_text(SIM_YAML.replace("network:\n", "netwrok:\n"))
    (folder / "notes.txt").write_text("not a rig file\n")
    assert main(["rig", "list", "--dir", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "file", "kind", "parts"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == {"good-sim", "broken", "unknown-key"}
    assert " virtual " in by_name["good-sim"]
    assert " ERROR " in by_name["broken"] and "not valid YAML" in by_name["broken"]
    assert " ERROR " in by_name["unknown-key"] and "netwrok: unknown key" in by_name["unknown-key"]


def test_list_of_a_missing_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "list", "--dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rig list:") and len(err.strip().splitlines()) == 1


# -- rig check -----------------------------------------------------------------------------------------

def test_check_of_the_virtual_rig_is_all_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str], lock_dir: Path) -> None:
    code, table, out = check(capsys, tmp_path, "--rig", "sim")
    assert code == 0, out
    assert [p for p, (status, _) in table.items() if status not in ("OK", "-")] == []
    assert table["psu"][1].startswith("Keysight Technologies,E36313A") and "output off" in table["psu"][1]
    console = table["dut.console"][1]
    assert "powered through the psu" in console and "version 1.0.0" in console and "dev_eui 70b3d57ed0000001" in console
    assert "gateway 0016c001f153a14c ONLINE" in table["gateway"][1]
    assert "V AC" in table["feedback"][1]
    assert table["dut.swd"][0] == "OK" and "target hil_relay_node, Cortex-M4 running" in table["dut.swd"][1]
    assert table["safe state"] == ("OK", "supply output off")
    assert out.rstrip().endswith("all parts OK")
    assert not (lock_dir / "sim.holder.json").exists()  # the rig was given back
    assert (tmp_path / "reports" / "console" / "sim.log").exists()


def test_check_with_an_unreachable_psu_fails_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resource = "TCPIP0::127.0.0.1::9::SOCKET"
    rig = tmp_path / "bad-psu.yaml"
    text = SIM_YAML.replace("resource: ${sim:psu}", f"resource: {resource}")
    assert resource in text
    rig.write_text(text)
    code, table, out = check(capsys, tmp_path, "--rig", str(rig))
    assert code == 1
    status, detail = table["psu"]
    assert status == "FAIL" and resource in detail
    assert table["dut.console"] == ("SKIP", "the DUT cannot be powered (psu FAIL)")
    assert table["gateway"][0] == "OK" and table["feedback"][0] == "OK"
    assert re.search(r"^FAIL: psu", out, re.M)


def test_check_semtech_udp_gateway_and_swd_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SIM_YAML.replace("    transport: chirpstack-mqtt   # or semtech-udp", "    transport: semtech-udp")
    text = re.sub(r"\ngateway:\n  transport: chirpstack-mqtt.*?\n(?=psu:)",
                  "\ngateway:\n  transport: semtech-udp\n  bind: ${sim:udp}\n", text, flags=re.S)
    text = text.replace("probe_uid: ${sim:probe_uid}", "probe_uid: 0669FF123456")  # a probe that is not there
    rig = tmp_path / "udp.yaml"
    rig.write_text(text)
    code, table, out = check(capsys, tmp_path, "--rig", str(rig))
    assert code == 1 and re.search(r"^FAIL: dut.swd$", out, re.M), out
    assert table["gateway"][0] == "OK" and "PULL_DATA from gateway 0016c001f153a14c" in table["gateway"][1]
    assert table["dut.swd"][0] == "FAIL" and "SWD probe 0669FF123456 not found" in table["dut.swd"][1]


def test_check_of_a_rig_with_only_a_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rig = tmp_path / "minimal.yaml"
    rig.write_text("name: minimal\ndut:\n  console: {port: /dev/hil-no-such-port, dialect: rak3172, "
                   "reenumerate_timeout_s: 0}\n")
    code, table, _ = check(capsys, tmp_path, "--rig", str(rig))
    assert code == 1
    assert table["bring-up"] == ("OK", "nothing to start (a real bench)")
    assert table["dut.console"][0] == "FAIL" and "/dev/hil-no-such-port" in table["dut.console"][1]
    for part in ("psu", "gateway", "feedback", "dut.swd"):
        assert table[part] == ("-", "not in the rig file")
    assert table["safe state"] == ("OK", "nothing to switch off (no psu)")


def test_check_of_a_broken_rig_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rig = tmp_path / "broken.yaml"
    rig.write_text("name: broken\ndut:\n  console: {port: nowhere, dialect: rak3172}\n")
    code, table, _ = check(capsys, tmp_path, "--rig", str(rig))
    assert code == 1
    assert list(table) == ["rig file"]
    status, detail = table["rig file"]
    assert status == "FAIL" and "broken.yaml:3: dut.console.port" in detail


def test_check_of_a_busy_rig_names_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with RigLock("sim"):
        code, table, _ = check(capsys, tmp_path, "--rig", "sim")
    assert code == 1
    status, detail = table["lock"]
    assert status == "FAIL" and "in use by" in detail and "--rig-wait" in detail
    assert "bring-up" not in table


def test_check_of_a_dut_that_does_not_answer_points_to_the_transcript(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rig = tmp_path / "wrong-dialect.yaml"  # the virtual RAK3172 answers OK, LoRa-E5 awaits +AT: OK
    text = re.sub(r"dialect: \*sim_dialect .*", "dialect: lora-e5", SIM_YAML)
    assert "dialect: lora-e5\n" in text
    rig.write_text(text)
    code, table, _ = check(capsys, tmp_path, "--rig", str(rig))
    assert code == 1
    status, detail = table["dut.console"]
    assert status == "FAIL" and detail.startswith("DUT powered through the psu (5 V); ")
    assert "+AT: OK" in detail and f"(transcript {tmp_path / 'reports' / 'console' / 'sim.log'})" in detail
    assert table["safe state"] == ("OK", "supply output off")
