"""Frame-counter reconstruction and acceptance arithmetic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hil.lorawan.fcnt import Verdict, check, earlier_candidate, reconstruct, replay_candidates


def test_reconstruct_across_16_bit_rollover() -> None:
    assert reconstruct(0xFFFF, 0xFFFF) == 0xFFFF
    assert reconstruct(0x0000, 0x10000) == 0x10000
    assert reconstruct(0x0002, 0xFFFE) == 0x10002
    assert reconstruct(5, 0x12_0003) == 0x12_0005


def test_earlier_candidate_names_replays() -> None:
    assert earlier_candidate(7, 10) == 7
    assert earlier_candidate(7, 0x10009) == 0x10007
    assert earlier_candidate(0xFFF0, 0x10005) == 0xFFF0
    assert earlier_candidate(12, 10) is None


def test_check_verdicts() -> None:
    assert check(0, None).verdict is Verdict.OK
    assert check(9, 9).verdict is Verdict.RETRANSMISSION
    ok = check(10, 9)
    assert ok.accepted and ok.fcnt == 10
    assert check(0, 0xFFFF).fcnt == 0x10000
    assert check(16384 + 10, 9, max_gap=16384).verdict is Verdict.GAP_TOO_LARGE
    assert check(16384 + 9, 9, max_gap=16384).accepted
    assert check(16384 + 10, 9).accepted  # 1.0.4: no MAX_FCNT_GAP


@given(st.integers(0, 2**32 - 2**17), st.integers(0, 0xFFFF))
def test_reconstruct_properties(next_expected: int, fcnt16: int) -> None:
    full = reconstruct(fcnt16, next_expected)
    assert full & 0xFFFF == fcnt16
    assert next_expected <= full < next_expected + 0x10000
    earlier = earlier_candidate(fcnt16, next_expected)
    if earlier is not None:
        assert earlier & 0xFFFF == fcnt16 and next_expected - 0x10000 <= earlier < next_expected


def test_replay_candidates() -> None:
    assert replay_candidates(7, 9) == [7]
    assert replay_candidates(7, 0x10009) == [0x10007, 7]
    assert replay_candidates(12, 9) == []


def test_device_time_fraction_carries_into_seconds() -> None:
    from hil.lorawan.maccommands import device_time_ans

    assert device_time_ans(100.999).fields() == {"gps_time_s": 101.0}
    assert device_time_ans(100.5).fields() == {"gps_time_s": 100.5}
