"""Closing the loop without Kafka or PostgreSQL: the rules (services/intake/domain/loop.py), the
public scrubber (domain/scrub.py), and the follow-up command on the in-memory store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.intake import handlers
from services.intake.commands import ActionIn
from services.intake.domain.loop import (
    FollowUp,
    KpiCounts,
    LoopPolicy,
    decide_follow_up,
    follow_up_due,
    rank,
    rates,
)
from services.intake.domain.scrub import scrub
from services.intake.reference import load_loop_policy
from shared.errors import Conflict, Forbidden
from shared.events import ActionType, parse_event
from shared.identity import Principal, Role
from tests.fakes.intake import IntakeDb
from tests.unit.test_intake_handlers import NOW, OPERATOR, do, submitted, uow

LOCAL = ZoneInfo("Asia/Shanghai")
POLICY = LoopPolicy()
pytest_plugins = ["tests.unit.test_intake_handlers"]


def test_the_policy_file_loads_and_checks_its_weights() -> None:
    policy = load_loop_policy()
    assert policy.follow_up_workdays == 1 and policy.max_attempts == 3 and policy.max_reopens == 2
    with pytest.raises(ValueError, match="add up to 1"):
        LoopPolicy(score_weights=(0.5, 0.5, 0.5))


@pytest.mark.parametrize(("call", "attempts", "reopens", "expected"), [
    (FollowUp(True, True, "satisfied"), 0, 0, ("closed", 0, 0, False)),
    (FollowUp(True, True, "basically_satisfied"), 1, 0, ("closed", 1, 0, False)),
    (FollowUp(True, True, "unsatisfied"), 0, 0, ("reopened", 0, 1, False)),
    (FollowUp(True, False, "satisfied"), 0, 1, ("reopened", 0, 2, False)),
    (FollowUp(True, False, "unsatisfied"), 0, 2, ("reopened", 0, 3, True)),  # past max_reopens: a 督办
    (FollowUp(False), 0, 0, ("resolved", 1, 0, False)),
    (FollowUp(False), 2, 0, ("unreachable", 3, 0, False)),
])
def test_what_a_follow_up_does(call: FollowUp, attempts: int, reopens: int, expected: tuple[Any, ...]) -> None:
    outcome = decide_follow_up(call, attempts=attempts, reopens=reopens, policy=POLICY)
    assert (outcome.status, outcome.attempts, outcome.reopens, outcome.supervise) == expected


def test_a_reached_call_needs_a_verdict() -> None:
    with pytest.raises(ValueError):
        FollowUp(True, None, "satisfied")


def test_the_rates_of_the_worked_example() -> None:
    # handbook/KPIS.md: 5 assignments, 4 signed for in time; 3 follow-ups (1 satisfied, 1 basically,
    # 1 unsatisfied), 2 rated resolved; 1 unreachable, left out
    counts = KpiCounts(assignments=5, signed_in_time=4, follow_ups=3, rated_resolved=2, satisfied=1,
                       basically_satisfied=1, unsatisfied=1, unreachable=1, reopened=1)
    r = rates(counts, POLICY)
    assert r.response == 0.8 and r.resolution == pytest.approx(2 / 3) and r.satisfaction == pytest.approx(0.6)
    assert r.score == pytest.approx(68.0)
    empty = rates(KpiCounts(assignments=2, signed_in_time=2), POLICY)
    assert empty.response == 1.0 and empty.resolution is None and empty.score is None  # no follow-up: no score
    assert (counts + counts).assignments == 10


def test_ranking_ties_share_a_place_and_no_score_no_rank() -> None:
    assert rank({"A": 90.0, "B": 80.0, "C": 90.0, "D": None, "E": 70.0}) == {
        "A": 1, "C": 1, "B": 3, "E": 4, "D": None}


def test_the_follow_up_deadline_is_the_end_of_the_next_working_day() -> None:
    friday = datetime(2026, 12, 4, 10, tzinfo=LOCAL)
    due = follow_up_due(friday, 1, lambda d: d.weekday() < 5, LOCAL)
    assert due == datetime(2026, 12, 7, 23, 59, 59, tzinfo=LOCAL)  # Monday


def test_the_scrubber_leaves_no_personal_detail() -> None:
    text = ("我叫李建国，住幸福小区12号楼3单元502室，电话 138-1234-5678，座机0731-84561234，"
            "身份证43010319900101123X，邮箱lj@example.com。联系人：欧阳娜娜。王先生也反映过。张三丰知道。2026年11月。")
    out = scrub(text, known=["张三丰"])
    for secret in ("李建国", "12号楼", "502", "1234-5678", "84561234", "43010319900101123X", "lj@example.com",
                   "欧阳娜娜", "王先生", "张三丰"):
        assert secret not in out, (secret, out)
    assert "幸福小区" in out and "2026年11月" in out and "某先生" in out


async def _resolved(db: IntakeDb, ctx: handlers.Intake) -> str:
    pid = await submitted(db, ctx, status="accepted")
    await do(db, ctx, pid, "resolve", note="已督促开发商交房", basis="《条例》第27条")
    db.outbox.clear()
    return pid


def _follow_up(**fields: Any) -> Any:
    from pydantic import TypeAdapter
    return TypeAdapter(ActionIn).validate_python({"action": "follow_up", **fields})


async def test_a_resolution_starts_the_hotlines_follow_up_clock(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await _resolved(db, ctx)
    clock = db.deadlines[(pid, "follow_up")]
    assert clock["state"] == "running" and clock["department_code"] == "A-12345"
    assert db.petitions[pid]["resolved_by"] == "A3-HOUSING" and db.petitions[pid]["basis"] == "《条例》第27条"


async def test_unsatisfied_reopens_counts_against_the_resolver_and_the_third_reopening_is_supervised(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    pid = await _resolved(db, ctx)
    done = await handlers.act(uow(db), ctx, OPERATOR, pid, _follow_up(resolved=False, satisfaction="unsatisfied"),
                              now=NOW)
    assert done.status == "reopened" and db.deadlines[(pid, "follow_up")]["state"] == "stopped"
    (event,) = [parse_event(m.value) for m in db.outbox]
    assert event.action is ActionType.FOLLOW_UP and event.department_code == "A-12345"
    assert event.extra["outcome"] == "reopened" and event.extra["resolved_by"] == "A3-HOUSING"
    day = NOW.astimezone(LOCAL).date()
    assert db.kpi[("A3-HOUSING", day)] == {"follow_ups": 1, "unsatisfied": 1, "reopened": 1}
    for _ in range(2):  # reopened twice more (the router would reassign it; here, by hand)
        db.petitions[pid]["status"] = "resolved"
        db.outbox.clear()
        await handlers.act(uow(db), ctx, OPERATOR, pid, _follow_up(resolved=False, satisfaction="unsatisfied"),
                           now=NOW)
    supervision = [e for e in (parse_event(m.value) for m in db.outbox) if e.action is ActionType.OPEN_SUPERVISION]
    assert len(supervision) == 1 and supervision[0].department_code == "A3-GOV"
    assert supervision[0].extra["target_unit"] == "A3-HOUSING"


async def test_unreachable_after_three_calls_and_left_out_of_the_rates(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await _resolved(db, ctx)
    statuses = [(await handlers.act(uow(db), ctx, OPERATOR, pid, _follow_up(reached=False), now=NOW)).status
                for _ in range(3)]
    assert statuses == ["resolved", "resolved", "unreachable"]
    assert db.kpi[("A3-HOUSING", NOW.astimezone(LOCAL).date())] == {"unreachable": 1}
    with pytest.raises(Conflict):
        await handlers.act(uow(db), ctx, OPERATOR, pid, _follow_up(reached=False), now=NOW)


async def test_only_the_hotline_calls_back_and_only_after_a_resolution(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, status="accepted")
    with pytest.raises(Conflict):  # not resolved yet
        await handlers.act(uow(db), ctx, OPERATOR, pid, _follow_up(resolved=True, satisfaction="satisfied"), now=NOW)
    await do(db, ctx, pid, "resolve", note="已办结")
    clerk = Principal("clerk", Role.DEPARTMENT, frozenset({"A3-HOUSING"}))
    with pytest.raises(Forbidden):
        await handlers.act(uow(db), ctx, clerk, pid, _follow_up(resolved=True, satisfaction="satisfied"), now=NOW)


def test_a_day_is_a_local_day() -> None:
    assert datetime(2026, 11, 30, 17, tzinfo=UTC).astimezone(LOCAL).date() == date(2026, 12, 1)
