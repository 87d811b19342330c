"""Report tables: the radio frames of a test (CSV and a readable HTML page) and the supply's V/I.

The frame table has one row per frame the reference network received or sent: rig time,
direction, LoRaWAN message type, what the network made of it, DevAddr/DevEUI, FCnt, DevNonce,
FPort, payload (hex), MIC valid, RSSI/SNR, and for downlinks the receive windows. Every cell is
passed through the rig's redactor; a key never reaches a table.
"""

from __future__ import annotations

import csv
import html
import io
from typing import Any, Callable, Sequence

from hil.rigfile.redaction import redact as _redact

__all__ = ["FRAME_COLUMNS", "frame_rows", "frames_csv", "frames_html", "relay_csv", "supply_csv"]

# (heading, FrameEvent field or a function of the event)
FRAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rig time (s)", "time"),
    ("dir", "direction"),
    ("type", "mtype"),
    ("outcome", "outcome"),
    ("DevAddr", "dev_addr"),
    ("DevEUI", "dev_eui"),
    ("FCnt", "fcnt"),
    ("DevNonce", "dev_nonce"),
    ("FPort", "fport"),
    ("payload", "payload"),
    ("MIC valid", "mic_valid"),
    ("RSSI (dBm)", "rssi"),
    ("SNR (dB)", "snr"),
    ("windows", "windows"),
    ("reason", "reason"),
)

_OUTCOME_CLASS = {
    "accepted": "ok", "join_accepted": "ok", "sent": "ok",
    "rejected": "bad", "denied": "bad", "error": "bad", "send_failed": "bad", "dropped": "bad",
    "retransmission": "warn", "duplicate": "warn", "replayed": "warn", "ignored": "warn",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def frame_rows(frames: Sequence[Any], redact: Callable[[str], str] = _redact) -> list[list[str]]:
    """One list of cells per frame, in :data:`FRAME_COLUMNS` order, redacted."""
    return [[redact(_cell(getattr(frame, name, None))) for _, name in FRAME_COLUMNS] for frame in frames]


def frames_csv(frames: Sequence[Any], redact: Callable[[str], str] = _redact) -> str:
    """The frame table as CSV (a header row, then one row per frame)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([heading for heading, _ in FRAME_COLUMNS])
    writer.writerows(frame_rows(frames, redact))
    return out.getvalue()


_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 12px; color: #222; }
h1 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.hex { font-family: ui-monospace, monospace; }
tr.up td.dir { color: #1f5fa8; } tr.down td.dir { color: #8a3ea8; }
tr.ok td.outcome { color: #1b7a2e; } tr.bad { background: #fde8e8; } tr.warn { background: #fff6dc; }
td.micbad { color: #b00020; font-weight: bold; }
"""
_NUMERIC = {"time", "fcnt", "dev_nonce", "fport", "rssi", "snr"}
_HEX = {"payload", "dev_addr", "dev_eui"}


def frames_html(frames: Sequence[Any], title: str = "Radio frames", redact: Callable[[str], str] = _redact) -> str:
    """The frame table as a self-contained HTML page: rejected frames red, duplicates amber."""
    rows = []
    for frame, cells in zip(frames, frame_rows(frames, redact)):
        classes = [getattr(frame, "direction", ""), _OUTCOME_CLASS.get(getattr(frame, "outcome", ""), "")]
        tds = []
        for (_, name), text in zip(FRAME_COLUMNS, cells):
            cls = ["num"] if name in _NUMERIC else ["hex"] if name in _HEX else []
            if name == "direction":
                cls.append("dir")
            if name == "outcome":
                cls.append("outcome")
            if name == "mic_valid" and getattr(frame, "mic_valid", None) is False:
                cls.append("micbad")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            tds.append(f"<td{attr}>{html.escape(text)}</td>")
        rows.append(f'<tr class="{" ".join(c for c in classes if c)}">{"".join(tds)}</tr>')
    heading = "".join(f"<th>{html.escape(h)}</th>" for h, _ in FRAME_COLUMNS)
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(FRAME_COLUMNS)}">no frame in this test\'s window</td></tr>'
    count = f"{len(frames)} frame(s)"
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(redact(title))} ({count})</h1>\n"
            f"<table><thead><tr>{heading}</tr></thead>\n<tbody>\n{body}\n</tbody></table></body></html>\n")


def supply_csv(events: Sequence[Any]) -> str:
    """The supply's actions and measurements: rig time, action, volts, amps (empty: not applicable)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rig time (s)", "action", "volts (V)", "amps (A)"])
    for e in events:
        writer.writerow([f"{e.time:.3f}", e.action, "" if e.volts is None else f"{e.volts:.4f}",
                         "" if e.amps is None else f"{e.amps:.5f}"])
    return out.getvalue()


def relay_csv(packets: Sequence[Any], readings: Sequence[Any] = ()) -> str:
    """Relay packets (controller ``tx`` / relay ``rx``) and the meter's AC readings, in rig-time order."""
    rows: list[tuple[float, list[str]]] = []
    for p in packets:
        m = p.message
        what = "(undecodable)" if m is None else f"cmd 0x{m.cmd:02x} counter {m.fcnt} status {m.status} arg {m.arg.hex()}"
        rows.append((p.time, [f"{p.time:.3f}", f"relay {p.direction}", what, p.note]))
    for r in readings:
        rows.append((r.time, [f"{r.time:.3f}", f"meter {r.source}", f"{r.volts:.2f} V AC", ""]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rig time (s)", "source", "what", "note"])
    writer.writerows(cells for _, cells in sorted(rows, key=lambda row: row[0]))
    return _redact(out.getvalue())
