"""SCPI parsing and the error queue of the virtual instruments (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.sim.instruments.scpi import (
    CommandPattern,
    ProfileError,
    ScpiCall,
    ScpiEngine,
    ScpiError,
    ScpiProfile,
    load_profile,
    parse_chanlist,
    parse_number,
    resolve_number,
    split_top,
)

COMMANDS = {
    "set_voltage": ["[SOURce#:]VOLTage[:LEVel][:IMMediate][:AMPLitude] <value:number:V>[,<channels:chanlist>]"],
    "get_voltage": ["[SOURce#:]VOLTage[:LEVel][:IMMediate][:AMPLitude]? [<channels:chanlist>]"],
    "set_current": ["[SOURce#:]CURRent[:LEVel] <value:number:A>"],
    "set_output": ["OUTPut[:STATe] [<channel:word>,]<state:bool>"],
    "set_ovp": ["[SOURce#:]VOLTage:PROTection[:LEVel] <value:number:V>"],
    "set_label": ["DISPlay:TEXT <text:string>"],
    "system_error": ["SYSTem:ERRor[:NEXT]?"],
    "system_error_count": ["SYSTem:ERRor:COUNt?"],
}


class Recorder:
    """Handlers that record their calls and answer queries with a fixed text."""

    def __init__(self) -> None:
        self.calls: list[ScpiCall] = []
        self.resets = 0

    def handler(self, call: ScpiCall) -> str | None:
        self.calls.append(call)
        if call.operation == "set_voltage" and call.args["value"] == 99.0:
            raise ScpiError(-222, "99 V is too much")
        return "ANSWER" if call.query else None

    def engine(self, **kwargs: object) -> ScpiEngine:
        ops = [op for op in COMMANDS if not op.startswith("system")]
        return ScpiEngine(COMMANDS, {op: self.handler for op in ops}, idn="ACME,SIM1,0001,1.0",
                          on_reset=self._reset, **kwargs)  # type: ignore[arg-type]

    def _reset(self) -> None:
        self.resets += 1


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.mark.parametrize("line", ["VOLT 5", "volt 5", "VOLTAGE 5", "SOUR:VOLT 5", ":source:voltage:level:immediate:amplitude 5",
                                  "VOLT:LEV 5", "Sour:Volt:Ampl 5"])
def test_short_long_case_insensitive_and_optional_nodes(rec: Recorder, line: str) -> None:
    engine = rec.engine()
    assert engine.execute(line) is None
    assert [c.operation for c in rec.calls] == ["set_voltage"]
    assert rec.calls[0].args["value"] == 5.0
    assert engine.errors == []


@pytest.mark.parametrize("line", ["VOLTA 5", "VOLT:LEVEL:FOO 5", "SOUR:SOUR:VOLT 5", "FOO", "VOL 5"])
def test_unknown_headers_are_113(rec: Recorder, line: str) -> None:
    engine = rec.engine()
    assert engine.execute(line) is None
    assert engine.next_error() == '-113,"Undefined header"'
    assert engine.next_error() == '+0,"No error"'
    assert rec.calls == []


def test_numeric_suffix_and_channel_list(rec: Recorder) -> None:
    engine = rec.engine()
    engine.execute("SOUR2:VOLT 1.5")
    engine.execute("VOLT 3,(@1:3)")
    engine.execute("VOLT? (@1,3)")
    assert rec.calls[0].args == {"source": 2, "value": 1.5, "channels": None}
    assert rec.calls[1].args == {"source": None, "value": 3.0, "channels": [1, 2, 3]}
    assert rec.calls[2].query and rec.calls[2].args["channels"] == [1, 3]


def test_units_multipliers_and_keywords() -> None:
    assert parse_number("100mV", "V") == pytest.approx(0.1)
    assert parse_number("100 MA", "A") == pytest.approx(0.1)  # SCPI: M is milli
    assert parse_number("2.5e-1", None) == 0.25
    assert parse_number("1 MHZ", "HZ") == 1e6
    assert parse_number("max", "V") == "MAX"
    assert parse_number("Minimum", "V") == "MIN"
    assert parse_number("DEF", "V") == "DEF"
    with pytest.raises(ScpiError) as info:
        parse_number("5 A", "V")
    assert info.value.code == -131
    with pytest.raises(ScpiError) as info:
        parse_number("five", "V")
    assert info.value.code == -104
    assert parse_chanlist("(@3,1)") == [3, 1]
    assert resolve_number("MAX", minimum=0, maximum=6, default=0, what="v") == 6
    with pytest.raises(ScpiError) as info:
        resolve_number(7.0, minimum=0, maximum=6, default=0, what="CH1 voltage")
    assert info.value.code == -222 and "CH1 voltage" in str(info.value)


def test_queries_and_compound_commands_with_relative_paths(rec: Recorder) -> None:
    engine = rec.engine()
    # "CURR 1" after "SOUR:VOLT" resolves under SOUR: first; "*IDN?" leaves the path alone
    reply = engine.execute("SOUR:VOLT 5;CURR 1;*IDN?;VOLT?;:SYST:ERR?")
    assert reply == 'ACME,SIM1,0001,1.0;ANSWER;+0,"No error"'
    assert [c.operation for c in rec.calls] == ["set_voltage", "set_current", "get_voltage"]


def test_missing_and_extra_parameters_and_bad_types(rec: Recorder) -> None:
    engine = rec.engine()
    for line in ["VOLT", "VOLT 1,(@1),3", "OUTP MAYBE", "VOLT five", "VOLT 5,", "VOLT (@1", "DISP:TEXT hello"]:
        engine.execute(line)
    codes = [code for code, _ in engine.errors]
    assert codes == [-109, -108, -224, -104, -102, -102, -104]
    assert rec.calls == []


def test_optional_leading_parameter(rec: Recorder) -> None:
    engine = rec.engine()
    engine.execute("OUTP CH1,ON")
    engine.execute("OUTP off")
    assert [c.args for c in rec.calls] == [{"channel": "CH1", "state": True}, {"channel": None, "state": False}]


def test_a_command_error_ends_the_message_an_execution_error_does_not(rec: Recorder) -> None:
    engine = rec.engine()
    assert engine.execute("VOLT 99;VOLT? ;FOO;VOLT?") == "ANSWER"
    assert [c for c, _ in engine.errors] == [-222, -113]


def test_error_queue_overflow_and_status_commands(rec: Recorder) -> None:
    engine = rec.engine(error_queue_size=3)
    for _ in range(5):
        engine.execute("BOGUS")
    assert engine.execute("SYST:ERR:COUN?") == "3"
    assert engine.execute("*STB?") == "4"
    assert engine.execute("*ESR?") == "32"
    assert engine.execute("*ESR?") == "0"
    assert [engine.next_error() for _ in range(4)] == [
        '-113,"Undefined header"', '-113,"Undefined header"', '-350,"Queue overflow"', '+0,"No error"']
    engine.execute("BOGUS")
    engine.execute("*CLS")
    assert engine.execute("SYST:ERR?") == '+0,"No error"'
    assert engine.execute("*OPC?;*TST?") == "1;0"
    engine.execute("*RST")
    assert rec.resets == 1


def test_error_format_comes_from_the_profile(rec: Recorder) -> None:
    engine = rec.engine(error_format='{code:d},"{message}"')
    engine.execute("NOPE")
    assert engine.execute("SYST:ERR?") == '-113,"Undefined header"'
    assert engine.execute("SYST:ERR?") == '0,"No error"'


def test_garbage_never_raises(rec: Recorder) -> None:
    engine = rec.engine()
    for line in ["", ";;;", "\x00\xff\x01", "VOLT::5", "*", "*FOO?", "??", "VOLT 5)", '"unterminated', "VOLT\t5"]:
        engine.execute(line)
    assert all(code in (-102, -113) for code, _ in engine.errors)
    assert [c.args["value"] for c in rec.calls] == [5.0]  # the tab-separated one


def test_handler_bug_is_a_device_error_not_a_crash(rec: Recorder) -> None:
    def broken(call: ScpiCall) -> str:
        raise ZeroDivisionError

    engine = ScpiEngine({"boom": ["BOOM?"]}, {"boom": broken}, idn="x")
    assert engine.execute("BOOM?") is None
    assert engine.execute("SYST:ERR?") is None  # no SYST:ERR in this table: -113 queued too
    assert [c for c, _ in engine.errors] == [-300, -113]


def test_split_top_respects_quotes_and_parens() -> None:
    assert split_top('A "x;y";B (@1;2)', ";") == ['A "x;y"', "B (@1;2)"]


@pytest.mark.parametrize("pattern, message", [
    ("volt <v:number>", "upper-case"),
    ("VOLTage <v>", "<name:kind>"),
    ("[OPTional]", "required"),
    ("VOLTage junk", "unexpected text"),
])
def test_bad_patterns_are_profile_errors(pattern: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        CommandPattern.parse("op", pattern)


def test_engine_rejects_tables_without_handlers_or_with_unknown_kinds() -> None:
    with pytest.raises(ProfileError, match="no handler for operation"):
        ScpiEngine({"op": ["FOO"]}, {}, idn="x")
    with pytest.raises(ProfileError, match="unknown parameter kind"):
        ScpiEngine({"op": ["FOO <a:mystery>"]}, {"op": lambda call: None}, idn="x")


def test_load_profile_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no instrument profile 'nope'"):
        load_profile("nope", ScpiProfile)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nidentity: {manufacturer: a, model: b, serial: c, firmware: d}\n"
                   "commands: {op: ['volt']}\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="bad.yaml"):
        load_profile(bad, ScpiProfile)
    bad.write_text(": [", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad, ScpiProfile)
