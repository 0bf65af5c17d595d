"""The end-to-end benchmark's pure rules (bench/e2e_rules.py): percentiles, the open-loop
schedule, the sustained-rate rule and the search for the highest sustained rate."""

from __future__ import annotations

import pytest

from bench.e2e_rules import (
    StepOutcome,
    due,
    highest_sustained,
    is_late,
    next_rate,
    parse_brokers,
    parse_rates,
    percentile,
    schedule,
    summarize,
    sustained,
)


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([3.0, 1.0, 2.0], 50) == 2  # unsorted input
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_p99_of_a_small_sample_is_its_max() -> None:
    # 50 values: 99 % of 50 is 49.5, so the 50th value, the max
    assert percentile([float(v) for v in range(50)], 99) == 49


def test_summary_cells_in_milliseconds() -> None:
    s = summarize([0.001, 0.002, 0.5])
    assert (s.count, s.p50, s.max) == (3, 0.002, 0.5)
    assert s.cell() == "2.0/500/500"
    assert summarize([]).cell() == "-"


def test_open_loop_schedule_does_not_depend_on_answers() -> None:
    assert [schedule(i, 100) for i in range(3)] == [0.0, 0.01, 0.02]
    assert schedule(2000, 2000) == 1.0
    with pytest.raises(ValueError, match="positive"):
        schedule(1, 0)


def test_due_sends_everything_whose_time_has_come_at_once() -> None:
    # at t=0 the first request is due; 25 ms later at 100/s, requests 0, 1 and 2
    assert due(0.0, 0, 10, 100) == 1
    assert due(0.025, 1, 10, 100) == 3
    # never goes back, never past the total
    assert due(0.0, 5, 10, 100) == 5
    assert due(99.0, 0, 10, 100) == 10
    assert due(-0.01, 0, 10, 100) == 0


def test_a_request_more_than_a_second_behind_its_time_is_late() -> None:
    assert not is_late(1.0, 1.9)
    assert not is_late(1.0, 2.0)
    assert is_late(1.0, 2.01)
    assert is_late(0.0, 0.2, late_after=0.1)


def _outcome(**changes: object) -> StepOutcome:
    base = {"scheduled": 1000, "accepted": 1000, "late": 0, "errors": 0, "p99_accepted": 0.05,
            "drained_after": 2.0, "routed": 1000}
    return StepOutcome(**{**base, **changes})  # type: ignore[arg-type]


def test_sustained_when_all_accepted_fast_and_routing_keeps_up() -> None:
    assert sustained(_outcome()) == (True, "")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"accepted": 990, "late": 10}, "10 not sent on time"),
    ({"accepted": 995, "errors": 5}, "5 errors"),
    ({"accepted": 990}, "10 unanswered"),
    ({"p99_accepted": 1.0}, "p99 1000 ms"),
    ({"p99_accepted": None, "accepted": 0, "routed": 0}, "nothing accepted"),
    ({"routed": 999, "drained_after": None}, "1 accepted but not routed"),
    ({"drained_after": 10.5}, "drained after 10.5s"),
])
def test_not_sustained(changes: dict[str, object], reason: str) -> None:
    ok, why = sustained(_outcome(**changes))
    assert not ok
    assert reason in why


def test_the_baseline_has_no_routing_to_keep_up_with() -> None:
    assert sustained(_outcome(routed=0, drained_after=None), routing=False) == (True, "")


def test_search_bisects_between_the_highest_pass_and_the_lowest_failure() -> None:
    assert next_rate([100, 500], [1000, 2000]) == 750
    assert next_rate([100, 500, 750], [1000, 2000]) == 900  # 875 rounded to 50s below 10,000
    assert next_rate([100, 500, 950], [1000]) is None  # within 10 % of the failed rate
    assert next_rate([100, 500, 1000], []) is None  # nothing failed: no upper bound
    assert next_rate([], [100]) == 50  # even the lowest failed: search below it
    assert next_rate([50], [100]) == 75  # 5s below 1,000
    assert next_rate([50, 75], [100]) == 90  # 87.5 rounded to 5s
    assert next_rate([50, 75, 90], [100]) is None
    assert next_rate([2], [3], precision=0.01) is None  # 1/s apart at least


def test_highest_sustained_counts_no_pass_above_a_failure() -> None:
    assert highest_sustained([100, 500], [1000]) == (500, True)
    assert highest_sustained([100, 1000], [500]) == (100, True)  # 1000 passing after 500 failed is noise
    assert highest_sustained([100, 500], []) == (500, False)
    assert highest_sustained([], [100]) == (0, True)


def test_parse_settings() -> None:
    assert parse_rates("2000, 100,500,100") == [100, 500, 2000]
    assert parse_brokers("1,3,1") == [1, 3]
    for bad in ("", "0,100", "-5"):
        with pytest.raises(ValueError, match="positive"):
            parse_rates(bad)
    with pytest.raises(ValueError, match="positive"):
        parse_brokers("0")
