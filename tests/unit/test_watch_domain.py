"""The watch service's rules without Kafka: the EWMA surge test and the incident clustering."""

from __future__ import annotations

import pytest

from services.watch.domain.incidents import ClusterPolicy, Clusters, shingles
from services.watch.domain.surges import Baseline, SurgePolicy, judge_window, update

HOURLY = SurgePolicy(3600, min_count=4, z=4.0, warmup_windows=24)


def steady(counts: list[int], policy: SurgePolicy = HOURLY) -> Baseline:
    base = Baseline()
    for window, count in enumerate(counts):
        base = update(base, window, count, policy)
    return base


def test_a_steady_key_is_no_surge_and_a_burst_is() -> None:
    base = steady([1, 0, 2, 1, 0, 1, 1, 2, 0, 1] * 5)
    assert not judge_window(base, 50, 2, HOURLY).surge
    burst = judge_window(base, 50, 9, HOURLY)
    assert burst.surge and burst.count == 9 and 0.5 < burst.expected < 1.5


def test_min_count_and_warmup_hold_back_small_or_early_counts() -> None:
    quiet = steady([0] * 50)
    assert not judge_window(quiet, 50, 3, HOURLY).surge  # z is huge, but three petitions are not a surge
    assert judge_window(quiet, 50, 4, HOURLY).surge
    assert not judge_window(steady([0] * 5), 5, 10, HOURLY).surge  # five windows of history: too early


def test_empty_windows_fade_the_baseline_without_being_fed_one_by_one() -> None:
    busy = steady([6] * 60)
    later = judge_window(busy, 60 + 100, 6, HOURLY)  # a hundred empty windows later
    assert later.expected < 0.01 and later.surge
    assert not judge_window(busy, 60, 6, HOURLY).surge  # right after: six is normal here


def test_a_surge_does_not_teach_the_baseline_that_surges_are_normal() -> None:
    base = steady([1] * 50)
    after = update(base, 50, 40, HOURLY)
    assert after.mean < 2.0
    assert judge_window(after, 51, 12, HOURLY).surge


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError):
        SurgePolicy(3600, 0, 4.0)


def test_paraphrases_of_one_complaint_join_one_incident_per_place() -> None:
    clusters = Clusters(ClusterPolicy(threshold=0.4))
    a = "A3区幸福路小区最近几天一直有很浓的燃气味，尤其是早上和晚上特别明显，请相关部门尽快派人检查处理。"
    b = "你好，A3区幸福路小区最近几天始终有刺鼻的燃气味，尤其是早上和晚上特别明显，希望相关部门赶紧派人检查。"
    other = "B2区某学校违规向学生收取补课费和资料费，每个学生要交好几百元，家长们意见很大，请教育部门调查。"
    first = clusters.place("p1", a, 0.0, "A3")
    second = clusters.place("p2", b, 60.0, "A3")
    third = clusters.place("p3", other, 120.0, "B2")
    elsewhere = clusters.place("p4", a, 180.0, "C1")  # the same words about another district
    assert first is not None and first.new and second is not None and not second.new
    assert second.incident == "p1" and second.similarity >= 0.4
    assert third is not None and third.new and elsewhere is not None and elsewhere.new
    assert clusters.place("p2", b, 200.0, "A3") is None  # seen already
    assert clusters.members["p1"] == {"p1", "p2"}


def test_petitions_leave_with_the_window_and_the_incident_closes() -> None:
    clusters = Clusters(ClusterPolicy(window_seconds=100))
    clusters.place("p1", "A3区幸福路积水严重，行人和车辆都无法通行，请市政部门尽快疏通排水。", 0.0, "A3")
    assert clusters.expire(50.0) == [] and len(clusters) == 1
    assert clusters.expire(101.0) == ["p1"] and len(clusters) == 0


def test_shingles_ignore_digits_and_punctuation() -> None:
    assert shingles("12号楼，燃气味!", 2) == shingles("3号楼燃气味", 2)


def test_the_policy_file_loads() -> None:
    from services.watch.config import load_policies

    surges, clusters = load_policies()
    assert surges["hour"].window_seconds == 3600 and surges["day"].window_seconds == 86400
    assert 0 < clusters.threshold < 1 and clusters.shingle == 2
