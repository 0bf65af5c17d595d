"""The watch service's decisions, petition by petition and tick by tick (pure)."""

from __future__ import annotations

from services.watch.domain.incidents import ClusterPolicy, Clusters, from_hashvalues, signature
from services.watch.domain.surges import SurgePolicy
from services.watch.domain.watcher import (
    Flags,
    IncidentState,
    Member,
    SurgeState,
    close_incident,
    join,
    observe,
    risk,
    tick,
)

HOUR = SurgePolicy(window_seconds=3600, min_count=4, z=5.0, warmup_windows=24)
DAY0 = 100 * 86400.0  # a day boundary, in epoch seconds


def feed(state: SurgeState, ids: list[str], at: float, *, origin: float | None = None,
         flags: Flags | None = None) -> tuple[SurgeState, list]:
    changes = []
    for pid in ids:
        state, more = observe(state, pid, at, HOUR, key="hour|A3|燃气", origin=origin, flags=flags or Flags())
        changes += more
    return state, changes


def test_a_burst_in_a_quiet_key_opens_one_alert_once_the_watch_is_warm() -> None:
    origin = DAY0 - 2 * 86400  # the watch has watched for two days: this key's history is empty
    _, changes = feed(SurgeState(), [f"p{i}" for i in range(6)], DAY0 + 60, origin=origin)
    assert [c.what for c in changes] == ["opened", "updated", "updated"]  # at the 4th petition (min_count)
    alert = changes[-1].alert
    assert alert.count == 6 and alert.petition_ids == tuple(f"p{i}" for i in range(6))
    assert alert.alert_id == f"hour|A3|燃气:{int((DAY0 + 60) // 3600)}".join(["surge:", ""])
    assert alert.expected < 0.5 and alert.z >= 5
    assert changes[0].alert.version == 1 and alert.version == 3


def test_without_history_since_the_origin_no_alert_is_raised() -> None:
    _, changes = feed(SurgeState(), [f"p{i}" for i in range(10)], DAY0 + 60, origin=DAY0)
    assert changes == []  # the first hour of a new watch: nothing to compare with


def test_a_petition_seen_again_is_not_counted_again() -> None:
    origin = DAY0 - 2 * 86400
    state, _ = feed(SurgeState(), ["a", "b", "c"], DAY0 + 60, origin=origin)
    again, changes = feed(state, ["a", "b", "c"], DAY0 + 61, origin=origin)
    assert again.count == 3 and changes == []


def test_a_busy_key_needs_more_than_its_usual_count() -> None:
    origin = DAY0 - 3 * 86400
    state = SurgeState()
    for hour in range(48):  # six petitions every hour for two days
        state, changes = feed(state, [f"h{hour}-{i}" for i in range(6)], DAY0 - 48 * 3600 + hour * 3600 + 10,
                              origin=origin)
        # an empty history meets six an hour: one alert at first, closed once six are usual
        assert hour < 2 or [c.what for c in changes] == (["closed"] if hour == 2 else [])
    state, changes = feed(state, [f"n{i}" for i in range(8)], DAY0 + 10, origin=origin)
    assert changes == []  # eight where six are usual is no surge
    _, changes = feed(state, [f"m{i}" for i in range(30)], DAY0 + 20, origin=origin)
    assert changes and changes[0].what == "opened"


def test_the_alert_closes_after_a_whole_window_without_a_surge() -> None:
    origin = DAY0 - 2 * 86400
    state, _ = feed(SurgeState(), [f"p{i}" for i in range(5)], DAY0 + 60, origin=origin)
    assert state.alert is not None
    held, change = tick(state, DAY0 + 3600 + 5, HOUR, origin=origin)  # the next hour: still open
    assert held is not None and held.alert is not None and change is None
    gone, change = tick(held, DAY0 + 2 * 3600 + 5, HOUR, origin=origin)
    assert change is not None and change.what == "closed" and change.closed_at == DAY0 + 2 * 3600
    assert change.alert.version == state.alert.version + 1
    assert gone is not None and gone.alert is None and gone.window == int((DAY0 + 2 * 3600) // 3600)


def test_a_burst_over_a_window_boundary_stays_one_alert() -> None:
    origin = DAY0 - 2 * 86400
    state, first = feed(SurgeState(), [f"p{i}" for i in range(5)], DAY0 + 3500, origin=origin)
    # the first surge is folded in capped, so the next hour needs a few more to be a surge too
    state, second = feed(state, [f"q{i}" for i in range(8)], DAY0 + 3700, origin=origin)
    assert first[0].what == "opened" and second and all(c.what == "updated" for c in second)
    assert {c.alert.alert_id for c in first + second} == {first[0].alert.alert_id}
    assert set(second[-1].alert.petition_ids) >= {"p0", "q5"}


def test_state_round_trips_through_its_table_value() -> None:
    origin = DAY0 - 2 * 86400
    state, _ = feed(SurgeState(), [f"p{i}" for i in range(5)], DAY0 + 60, origin=origin, flags=Flags(1, 0, 1))
    assert SurgeState.from_data(state.to_data()) == state


def test_an_alert_no_tick_closed_closes_before_the_next_one_opens() -> None:
    origin = DAY0 - 2 * 86400
    state, _ = feed(SurgeState(), [f"p{i}" for i in range(5)], DAY0 + 60, origin=origin)
    _, changes = feed(state, [f"q{i}" for i in range(12)], DAY0 + 5 * 3600, origin=origin)
    assert [c.what for c in changes][:2] == ["closed", "opened"]
    assert changes[0].alert.alert_id != changes[1].alert.alert_id


def test_a_key_with_nothing_left_is_forgotten() -> None:
    state, _ = feed(SurgeState(), ["p"], DAY0 + 60, origin=DAY0)
    later, _ = tick(state, DAY0 + 200 * 3600, HOUR, origin=DAY0)
    assert later is None


def test_risk_rises_with_group_petitions_repeats_and_accusations() -> None:
    assert risk(3, Flags()) == (1, ())
    assert risk(3, Flags(group=1)) == (2, ("group_petition",))
    level, reasons = risk(25, Flags(repeat=2, accusation=1))
    assert level == 3 and set(reasons) == {"repeat_petitioner", "accusation", "many_petitions"}


def member(pid: str, dept: str | None, *, triage: bool = False, at: float = DAY0) -> Member:
    return Member(pid, at, dept, triage, 1, "燃气", Flags())


def test_an_incident_is_held_by_its_first_department_and_links_the_others() -> None:
    state, changes, links = join(None, member("a", "TRIAGE", triage=True), incident_id="a", similarity=1.0,
                                 area="430102", alert_size=3)
    assert state.department is None and changes == [] and links == []  # the triage desk holds nothing
    state, changes, links = join(state, member("b", "A3-GAS"), incident_id="a", similarity=0.6, area="430102",
                                 alert_size=3)
    # a holder at last: the petition waiting at the triage desk goes there too
    assert state.department == "A3-GAS" and changes == []
    assert [(x.petition_id, x.department) for x in links] == [("a", "A3-GAS")]
    state, changes, links = join(state, member("c", "A3-HOUSING"), incident_id="a", similarity=0.7, area="430102",
                                 alert_size=3)
    assert [(x.petition_id, x.department, x.similarity) for x in links] == [("c", "A3-GAS", 0.7)]
    assert [c.what for c in changes] == ["opened"] and changes[0].incident.count == 3
    again, changes2, links2 = join(state, member("c", "A3-HOUSING"), incident_id="a", similarity=0.7,
                                   area="430102", alert_size=3)
    assert again == state and changes2 == [] and links2 == []  # a replay changes nothing
    closed = close_incident(state, DAY0 + 5)
    assert closed is not None and closed.what == "closed" and closed.incident.version == state.version + 1
    assert IncidentState.from_data(state.to_data()) == state


def test_a_petition_like_two_incidents_joins_them_and_the_absorbed_alert_closes() -> None:
    big = None
    for pid in ("a", "b", "c"):
        big, _, _ = join(big, member(pid, "A3-GAS"), incident_id="a", similarity=0.5, area="430102", alert_size=3)
    small = None
    for pid in ("x", "y", "z"):
        small, _, _ = join(small, member(pid, "A3-HOUSING"), incident_id="x", similarity=0.5, area="430102",
                           alert_size=3)
    assert big is not None and small is not None and big.version == small.version == 1
    joined, changes, links = join(big, member("q", "A3-URBAN"), incident_id="a", similarity=0.6, area="430102",
                                  alert_size=3, absorbed=(small,))
    assert joined.count == 7 and set(joined.petition_ids) == {"a", "b", "c", "x", "y", "z", "q"}
    assert [(c.what, c.incident.incident_id) for c in changes] == [("closed", "x"), ("updated", "a")]
    assert {x.petition_id for x in links} == {"x", "y", "z", "q"} and {x.department for x in links} == {"A3-GAS"}


def test_clusters_join_two_incidents_through_a_petition_like_both() -> None:
    policy = ClusterPolicy(threshold=0.5)
    a = "A3区幸福路小区燃气味很浓大家担心燃气泄漏请尽快派人检查处理谢谢领导"
    b = "A3区幸福路小区燃气味很浓大家担心发生爆炸燃气公司电话没人接听"
    c = "A3区幸福路小区燃气味很浓大家担心燃气泄漏爆炸燃气公司电话没人接听请尽快派人检查"
    clusters = Clusters(policy)
    first, second = clusters.place("a", a, DAY0, "A3"), clusters.place("b", b, DAY0 + 1, "A3")
    assert first is not None and second is not None and second.new  # not alike enough pairwise
    third = clusters.place("c", c, DAY0 + 2, "A3")
    assert third is not None and not third.new and len(third.merged) == 1
    assert clusters.members[third.incident] == {"a", "b", "c"} and third.moved


def test_clusters_put_back_from_their_numbers_match_as_before() -> None:
    policy = ClusterPolicy()
    text = "A3区幸福路小区最近几天一直有很浓的燃气味，大家担心会发生燃气泄漏爆炸，请相关部门尽快派人检查处理"
    m = signature(text, policy)
    assert m is not None
    restored = Clusters(policy)
    restored.restore("a", [int(v) for v in m.hashvalues], DAY0, "430102", "a")
    other = signature("你好，" + text.replace("尽快", "赶紧"), policy)
    assert other is not None
    placed = restored.place_signature("b", from_hashvalues([int(v) for v in other.hashvalues], policy), DAY0 + 9,
                                      "430102")
    assert placed is not None and placed.incident == "a" and not placed.new
