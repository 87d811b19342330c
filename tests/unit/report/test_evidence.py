"""Evidence of one test, sliced by rig time from the parts' records; its tables and the timeline plot."""

from __future__ import annotations

import csv
import io
import struct
from types import SimpleNamespace

import pytest

from drivers.console.expect import Transcript
from drivers.feedback import Reading
from drivers.psu import PowerEvent
from hil.clock import ManualClock
from hil.network.events import EventLog, FrameEvent
from hil.relay.controller import LoggedPacket
from hil.relay.protocol import RelayMessage
from hil.report import tables
from hil.report.evidence import collect, dut_states, transcript_text
from hil.report.steps import StepLog, StepRecord
from hil.report.timeline import frame_label, render_timeline
from hil.rigfile.redaction import Redactor

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PROFILE = SimpleNamespace(
    join=SimpleNamespace(joined=r"^\+EVT:JOINED$", failed=r"^\+EVT:JOIN_FAILED"),
    boot_banner_end=r"^Current Work Mode: LoRaWAN\.?$",
    error=[r"^(?P<code>AT_[A-Z_]+)$"],
)


def parts() -> SimpleNamespace:
    """A console, network, supply, meter and relay controller with records from 0 to 30 rig s."""
    transcript = Transcript()
    for t, d, text in [(1.0, "#", "opened"), (2.0, "<", "Current Work Mode: LoRaWAN."), (3.0, ">", "AT+JOIN=1:0:8:0"),
                       (3.1, "<", "OK"), (9.0, "<", "+EVT:JOIN_FAILED_RX_TIMEOUT"), (12.0, "<", "+EVT:JOINED"),
                       (25.0, "<", "AT_BUSY_ERROR"), (29.0, ">", "AT+SEND=2:$00")]:
        transcript.add(t, d, text)
    log = EventLog()
    for event in [
        FrameEvent(3.5, "up", "join_request", "join_accepted", dev_eui="70b3d57ed0000001", dev_nonce=7, rssi=-80.0,
                   snr=9.5, mic_valid=True),
        FrameEvent(3.5, "down", "join_accept", "sent", dev_eui="70b3d57ed0000001", windows=("RX1",), delay_s=5.0),
        FrameEvent(10.0, "up", "join_request", "join_accepted", dev_eui="70b3d57ed0000001", dev_nonce=8),
        FrameEvent(10.0, "down", "join_accept", "sent", windows=("RX1", "RX2"), delay_s=5.0),
        FrameEvent(14.0, "up", "unconfirmed_data_up", "rejected", dev_addr="26011f2a", fcnt=0, fport=2,
                   payload=b"<b>", mic_valid=False, reason=f"bad MIC under {KEY}"),
        FrameEvent(40.0, "up", "unconfirmed_data_up", "accepted", fcnt=1),  # after the window
    ]:
        log.append(event)
    power = [PowerEvent(0.5, "output on", 5.0, 0.5), PowerEvent(4.0, "measure current", None, 0.031),
             PowerEvent(15.0, "cut", 0.0, 0.0), PowerEvent(16.0, "output on", 5.0, 0.5),
             PowerEvent(18.0, "brown-out", 3.9), PowerEvent(18.5, "brown-out restore", 5.0),
             PowerEvent(19.0, "measure voltage", 4.98)]
    relay = [LoggedPacket(20.0, "tx", RelayMessage(0x01, 4, 0, bytes([1, 0, 0, 0, 0, 0]))),
             LoggedPacket(21.0, "rx", RelayMessage(0x81, 4, 0, bytes([1, 1, 230, 0, 0, 0])))]
    readings = [Reading(20.5, 0.2, "dmm"), Reading(21.5, 229.6, "dmm")]
    return SimpleNamespace(
        console=SimpleNamespace(transcript=transcript, profile=PROFILE),
        network=SimpleNamespace(events=log),
        psu=SimpleNamespace(events=[PowerEvent(-5.0, "output off", 0.0, 0.0), *power]),
        meter=SimpleNamespace(events=readings), relay=SimpleNamespace(log=relay),
    )


def steps() -> StepLog:
    log = StepLog()
    log.add(StepRecord(3.0, 9.0, "dut: join", (("deadline", "rig 123.000 s"),)))
    log.add(StepRecord(15.0, 16.0, "psu: power cycle", error="InstrumentError"))
    log.add(StepRecord(-10.0, -9.0, "before the test"))
    return log


def evidence(failure: tuple[float, str] | None = (22.0, "AssertionError: relay said ON, output 0 V")):  # type: ignore[no-untyped-def]
    p = parts()
    return collect(1.0, 30.0, console=p.console, network=p.network, psu=p.psu, meter=p.meter, relay=p.relay,
                   steps=steps(), failure=failure)


def test_collect_keeps_the_window_only() -> None:
    e = evidence()
    assert (e.start, e.end) == (1.0, 30.0)
    assert [f.time for f in e.frames] == [3.5, 3.5, 10.0, 10.0, 14.0]
    assert e.power_before is not None and (e.power_before.time, e.power_before.action) == (0.5, "output on")
    assert [s.name for s in e.steps] == ["dut: join", "psu: power cycle"]
    assert [m.kind for m in e.markers] == ["boot", "join failed", "joined", "error reply"]
    assert transcript_text(e).splitlines()[0] == "[      1.000] # opened"
    p = parts()
    assert collect(None, 30.0, console=p.console).start == 1.0  # no start: from the first record


def test_dut_state_follows_supply_join_requests_and_console() -> None:
    """On since before the window; joining at each join-request; back to powered on a failed join;
    joined on the console's report; unpowered by the cut; a brown-out and its restore."""
    spans = [(s.start, s.end, s.state) for s in dut_states(evidence())]
    assert spans == [
        (1.0, 3.5, "powered"), (3.5, 9.0, "joining"), (9.0, 10.0, "powered"), (10.0, 12.0, "joining"),
        (12.0, 15.0, "joined"), (15.0, 16.0, "unpowered"), (16.0, 18.0, "powered"), (18.0, 18.5, "brown-out"),
        (18.5, 30.0, "powered"),
    ]


def test_frame_table_csv_has_every_column_and_masks_keys() -> None:
    redactor = Redactor()
    redactor.add_bytes(bytes.fromhex(KEY))
    text = tables.frames_csv(evidence().frames, redactor.redact)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["rig time (s)", "dir", "type", "outcome", "DevAddr", "DevEUI", "FCnt", "DevNonce", "FPort",
                       "payload", "MIC valid", "RSSI (dBm)", "SNR (dB)", "windows", "reason"]
    assert rows[1][:4] == ["3.500", "up", "join_request", "join_accepted"] and rows[1][7] == "7"
    assert rows[1][10:13] == ["yes", "-80.000", "9.500"]
    assert rows[5][9] == "3c623e" and rows[5][10] == "NO"
    assert KEY not in text and "bad MIC under ****" in text


def test_frame_table_html_escapes_and_marks_rejections() -> None:
    page = tables.frames_html(evidence().frames, "frames of <test>")
    assert page.startswith("<!DOCTYPE html>") and "frames of &lt;test&gt; (5 frame(s))" in page
    assert page.count("<tr class=") == 5
    assert '<tr class="up bad">' in page and 'class="micbad"' in page
    assert "<td" in tables.frames_html([], "none") and "no frame in this test" in tables.frames_html([], "none")


def test_supply_and_relay_tables() -> None:
    e = evidence()
    supply = list(csv.reader(io.StringIO(tables.supply_csv(e.power))))
    assert supply[0] == ["rig time (s)", "action", "volts (V)", "amps (A)"]
    assert ["4.000", "measure current", "", "0.03100"] in supply
    relay = tables.relay_csv(e.relay, e.readings)
    assert "relay tx,cmd 0x01 counter 4" in relay and "meter dmm,229.60 V AC" in relay


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_timeline_plot_is_a_readable_png() -> None:
    png = render_timeline(evidence(), "tests/hil/test_relay.py::test_feedback", "failed (Product defect)")
    width, height = _png_size(png)
    assert width == 1300 and 900 <= height <= 1400  # five panels: steps, supply, DUT, radio, relay
    assert 20_000 < len(png) < 600_000


def test_timeline_copes_with_little_evidence_and_awkward_text() -> None:
    """A "$" in a console line (matplotlib would read mathtext), a window with nothing, no failure."""
    e = evidence(failure=(29.0, "drivers.console.ConsoleTimeout: expected /^\\+EVT:JOINED$/ $x$ nothing matched"))
    assert _png_size(render_timeline(e, "t", "failed"))[0] == 1300
    empty = collect(5.0, 5.0, steps=StepLog())
    assert empty.empty
    assert _png_size(render_timeline(empty, "t", "passed"))[1] < 400  # one panel saying nothing was recorded


def test_frame_labels_say_what_a_frame_was() -> None:
    frames = evidence().frames
    assert frame_label(frames[0]) == "JoinReq n=7"
    assert frame_label(frames[3]) == "JoinAcc RX1/RX2"
    assert frame_label(frames[4]) == "Up fc=0 p=2 MIC! [rejected]"


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_supply_sampler_refuses_a_bad_period(bad: float) -> None:
    from hil.report.sampler import SupplySampler

    with pytest.raises(ValueError, match="period"):
        SupplySampler(object(), ManualClock(), bad)


def test_supply_sampler_measures_until_stopped_and_stops_on_a_rig_fault() -> None:
    import threading

    from hil.faults import RigFault
    from hil.report.sampler import SupplySampler

    calls: list[str] = []
    done = threading.Event()

    class Psu:
        def measure_voltage(self) -> float:
            calls.append("V")
            return 5.0

        def measure_current(self) -> float:
            calls.append("I")
            if len(calls) >= 6:
                done.set()
                raise RigFault("supply went away")
            return 0.02

    clock = ManualClock()
    sampler = SupplySampler(Psu(), clock, 0.5).start()
    assert done.wait(10.0)
    sampler.stop()
    assert calls == ["V", "I"] * 3 and sampler.samples == 2
    assert clock.now() == pytest.approx(1.0)  # two waits of 0.5 rig s between the three rounds
