"""The authorization matrix, through the real stack: every endpoint of the permissions table,
called as every role with a target inside its scope and one outside it, and anonymously, answers
exactly what the table says (services/intake/api/permissions.py).

The table drives the expectations; this module only knows how to build, for each endpoint, a
request a caller in scope would make and one out of scope (:data:`SCENARIOS`). An endpoint of
the table without a scenario fails the test, as the unit test fails a served endpoint without a
row in the table: no endpoint goes out without anybody deciding who may call it.

The world (module fixture): an A3 petition held by A3-HOUSING and taken in by operator
``op-matrix``; one with an extension requested; one the triage desk holds; a ladder 督办 the
A3 district government received (a breached resolution clock, aged two steps) and a 督办 a
supervisor opened. In scope: the A3 district's supervisor, A3-HOUSING's clerk (A3-GOV's for a
督办 addressed to it, A3-S01's for zero reports), the desk, ``op-matrix``. Out of scope: the B
city's supervisor, B-HOUSING's clerk, another operator, the desk for a petition it never held.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import yaml

from services.intake.api.permissions import ENDPOINTS
from shared.identity import Principal, Role
from shared.reference.calendar_source import load_calendar
from shared.reference.files import OBLIGATIONS
from shared.reference.obligations import owed_periods, parse_obligations
from tests.integration.conftest import (
    Stack,
    age_until_due,
    consume_all,
    db_rows,
    parse,
    petition,
    routed,
    wait_for,
)

pytestmark = pytest.mark.integration

OPERATOR = Principal("op-matrix", Role.OPERATOR)
SUPERVISOR_A3 = Principal("sup-matrix-a3", Role.SUPERVISOR, area="430103")
SUPERVISOR_B = Principal("sup-matrix-b", Role.SUPERVISOR, area="430200")
DESK = Principal("desk-matrix", Role.TRIAGE, frozenset({"TRIAGE"}))


def clerk(unit: str) -> Principal:
    return Principal(f"clerk-matrix-{unit}", Role.DEPARTMENT, frozenset({unit}))


@dataclass
class World:
    """The petitions and 督办 the scenarios act on (see the module doc)."""

    a3: str
    extension: str
    desk: str
    ladder_order: str  # a 督办 addressed to A3-GOV, supervising A3-HOUSING
    manual_order: str  # a 督办 a supervisor opened on `a3` (addressed to A3-HOUSING)
    report_period: str  # a period A3-S01 owes today and has not reported yet


def _as(stack: Stack, principal: Principal | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.token(principal)}"} if principal else {}
    return httpx.Client(base_url=stack.base_url, timeout=20, headers=headers)


def _submit(stack: Stack, who: Principal = OPERATOR, **changes: Any) -> str:
    with _as(stack, who) as c:
        r = c.post("/v1/petitions", json=petition(**changes))
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def _act(stack: Stack, who: Principal, pid: str, **body: Any) -> None:
    with _as(stack, who) as c:
        r = c.post(f"/v1/petitions/{pid}/actions", json=body)
        assert r.status_code == 202, r.text


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    with stack.client() as client:
        yield _build_world(stack, client)


def _build_world(stack: Stack, client: httpx.Client) -> World:
    a3 = _submit(stack)
    assert routed(client, a3)["department"]["code"] == "A3-HOUSING"
    extension = _submit(stack)
    routed(client, extension)
    _act(stack, clerk("A3-HOUSING"), extension, action="accept", department="A3-HOUSING")
    _act(stack, clerk("A3-HOUSING"), extension, action="request_extension", department="A3-HOUSING",
         note="需要现场勘查")
    # two returns send a petition to the triage desk
    desk = _submit(stack)
    holder = routed(client, desk)["department"]["code"]
    _act(stack, clerk(holder), desk, action="return", department=holder, note="不属本单位")
    holder = routed(client, desk, assignment_no=2)["department"]["code"]
    _act(stack, clerk(holder), desk, action="return", department=holder, note="也不属本单位")
    assert routed(client, desk, assignment_no=3)["department"]["code"] == "TRIAGE"
    # a ladder 督办 to A3-GOV: the resolution clock breaches, step 1 tells the holder, step 2 its government
    wait_for(lambda: db_rows(stack, "SELECT 1 FROM escalation.clock WHERE petition_id = $1 AND clock = 'resolution'",
                             a3), timeout=30)
    age_until_due(stack, a3, "resolution", "breach")
    for _ in range(2):
        wait_for(lambda: db_rows(stack, "SELECT 1 FROM escalation.timer WHERE petition_id = $1 AND kind = 'escalate'"
                                        " AND state = 'pending'", a3), timeout=30)
        age_until_due(stack, a3, "resolution", "escalate")

    def ladder_order() -> str | None:
        with _as(stack, clerk("A3-GOV")) as c:
            items = c.get("/v1/supervision", params={"unit": "A3-GOV"}).json()["items"]
        return next((i["id"] for i in items if i["petition_id"] == a3), None)

    ladder = wait_for(ladder_order, timeout=60)
    with _as(stack, SUPERVISOR_A3) as c:
        opened = c.post(f"/v1/petitions/{a3}/supervision", json={"department": "A3-GOV", "note": "请加快办理"})
        assert opened.status_code == 202, opened.text
        manual = opened.json()["id"]
    with _as(stack, clerk("A3-HOUSING")) as c:
        wait_for(lambda: any(i["id"] == manual for i in
                             c.get("/v1/supervision", params={"unit": "A3-HOUSING"}).json()["items"]), timeout=30)
    obligations = parse_obligations(yaml.safe_load(OBLIGATIONS.read_bytes()))
    periods = owed_periods(obligations["A3-S01"], date.today(), load_calendar())
    return World(a3, extension, desk, ladder, manual, periods[0])


Request = tuple[str, str, dict[str, Any] | None]
#: (world, role, scope "in" / "out") -> the caller and its request
Scenario = Callable[[World, Role, str], tuple[Principal, Request]]


def _by_role(w: World, role: Role, scope: str, *, operator: Principal = OPERATOR) -> Principal:
    """The caller of a role, in scope (the A3 petition's world) or out of it."""
    inside = scope == "in"
    return {
        Role.OPERATOR: operator if inside else Principal("op-matrix-other", Role.OPERATOR),
        Role.DEPARTMENT: clerk("A3-HOUSING") if inside else clerk("B-HOUSING"),
        Role.TRIAGE: DESK,
        Role.SUPERVISOR: SUPERVISOR_A3 if inside else SUPERVISOR_B,
        Role.AUDITOR: Principal("auditor-matrix", Role.AUDITOR),
        Role.ADMIN: Principal("admin-matrix", Role.ADMIN),
    }[role]


def _petition_of(w: World, role: Role, scope: str) -> str:
    """The triage desk's petition in scope is the one it holds; every other role's the A3 one."""
    return w.desk if role is Role.TRIAGE and scope == "in" else w.a3


def _unit_of(who: Principal) -> str:
    """The unit a caller acts in the name of: its own (a supervisor: its area's government)."""
    if who.departments:
        return sorted(who.departments)[0]
    if who.role is Role.SUPERVISOR:
        return "A3-GOV" if who.area == "430103" else "B-GOV"
    return "A3-HOUSING"


def _action(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    who = _by_role(w, role, scope)
    unit = _unit_of(who)
    if role is Role.TRIAGE:
        body: dict[str, Any] = {"action": "assign", "department": unit, "target_department": "A3-URBAN"}
    elif role is Role.SUPERVISOR:
        body = {"action": "approve_extension", "department": unit, "extension_days": 10}
        return who, ("POST", f"/v1/petitions/{w.extension}/actions", body)
    else:
        body = {"action": "contact", "department": unit, "note": "已电话联系"}
    return who, ("POST", f"/v1/petitions/{_petition_of(w, role, scope)}/actions", body)


def _close(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    if role is Role.DEPARTMENT:  # the unit the ladder's 督办 is addressed to closes it
        who = clerk("A3-GOV") if scope == "in" else clerk("B-HOUSING")
        return who, ("POST", f"/v1/supervision/{w.ladder_order}/close", {"department": _unit_of(who)})
    who = _by_role(w, role, scope)
    return who, ("POST", f"/v1/supervision/{w.manual_order}/close", {"department": _unit_of(who), "note": "已办结"})


def _units(w: World, role: Role, scope: str, path: str) -> tuple[Principal, Request]:
    who = _by_role(w, role, scope)
    if role is Role.DEPARTMENT and scope == "in" and "zero-reports" in path:
        who = clerk("A3-S01")
    unit = "A3-S01" if "zero-reports" in path else "A3-GOV" if role is Role.SUPERVISOR else "A3-HOUSING"
    return who, ("GET", f"{path}?unit={unit}", None)


def _submit_request(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("POST", "/v1/petitions", petition())


def _lookup(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("GET", f"/v1/petitions/{_petition_of(w, role, scope)}", None)


def _contacts(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("POST", f"/v1/petitions/{_petition_of(w, role, scope)}/contacts",
                                      {"reason": "回访信访人"})


def _open(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    who = _by_role(w, role, scope)
    return who, ("POST", f"/v1/petitions/{w.a3}/supervision", {"department": _unit_of(who), "note": "请加快"})


def _report(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    who = clerk("A3-S01") if role is Role.DEPARTMENT and scope == "in" else _by_role(w, role, scope)
    return who, ("POST", "/v1/zero-reports", {"unit": "A3-S01", "period": w.report_period, "incidents": []})


def _audit(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("GET", f"/v1/audit?petition={w.a3}", None)


def _reference(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("GET", "/v1/admin/reference", None)


def _kpis(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    return _by_role(w, role, scope), ("GET", "/v1/kpis?department=A3-HOUSING", None)


def _alerts(w: World, role: Role, scope: str) -> tuple[Principal, Request]:
    """The A3 district's alerts: its supervisor's own area, outside the B city's supervisor's
    (whatever alerts there are: the answer is about the right to ask)."""
    return _by_role(w, role, scope), ("GET", "/v1/alerts?area=430103", None)


SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("POST", "/v1/petitions"): _submit_request,
    ("GET", "/v1/petitions/{ref}"): _lookup,
    ("POST", "/v1/petitions/{ref}/actions"): _action,
    ("POST", "/v1/petitions/{ref}/contacts"): _contacts,
    ("POST", "/v1/petitions/{ref}/supervision"): _open,
    ("GET", "/v1/supervision"): lambda w, role, scope: _units(w, role, scope, "/v1/supervision"),
    ("POST", "/v1/supervision/{supervision_id}/close"): _close,
    ("POST", "/v1/zero-reports"): _report,
    ("GET", "/v1/zero-reports"): lambda w, role, scope: _units(w, role, scope, "/v1/zero-reports"),
    ("GET", "/v1/audit"): _audit,
    ("GET", "/v1/admin/reference"): _reference,
    ("GET", "/v1/kpis"): _kpis,
    ("GET", "/v1/alerts"): _alerts,
}


def test_every_endpoint_of_the_table_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(ENDPOINTS)


def _cells() -> Iterator[tuple[tuple[str, str], Role | None, str]]:
    for endpoint in ENDPOINTS:
        yield endpoint, None, "anonymous"
        for role, scope in itertools.product(Role, ("out", "in")):  # out of scope first: it changes nothing
            yield endpoint, role, scope


def test_every_endpoint_answers_every_role_in_and_out_of_scope_as_the_table_says(
    stack: Stack, world: World
) -> None:
    wrong: list[str] = []
    calls = 0
    for endpoint, role, scope in _cells():
        scenario = SCENARIOS[endpoint]
        who, (method, url, body) = scenario(world, role or Role.OPERATOR, "in" if role is None else scope)
        caller: Principal | None = who
        if role is None:
            caller, expected = None, 401
        else:
            outcome = ENDPOINTS[endpoint][role]
            expected = outcome.in_scope if scope == "in" else outcome.out_of_scope
        with _as(stack, caller) as c:
            r = c.request(method, url, json=body)
        calls += 1
        got_family = r.status_code // 100 * 100 if 200 <= r.status_code < 300 else r.status_code
        want_family = expected // 100 * 100 if 200 <= expected < 300 else expected
        if got_family != want_family:
            wrong.append(f"{method} {endpoint[1]} as {role.value if role else 'anonymous'} ({scope}):"
                         f" {r.status_code}, expected {expected}: {r.text[:200]}")
        if role is None:
            assert r.headers.get("www-authenticate", "").startswith("Bearer"), (endpoint, r.headers)
    assert calls == len(ENDPOINTS) * (1 + 2 * len(Role))
    assert not wrong, "\n".join(wrong)


def test_the_actor_travels_with_the_action_and_personal_numbers_do_not(stack: Stack, world: World) -> None:
    pid = _submit(stack, content="请联系我13912345678，身份证430103199001011234，小区电梯坏了一个月。")
    submitted = wait_for(lambda: [parse(m) for m in consume_all(stack.infra.admin, "petition.submitted",
                                                                 idle_ms=1500) if parse(m)["petition_id"] == pid])
    (event,) = submitted
    assert event["actor"] == {"subject": "op-matrix", "role": "operator"}
    assert "13912345678" not in event["content"] and "139****5678" in event["content"]
    assert "430103199001011234" not in event["content"]
    actions = [parse(m) for m in consume_all(stack.infra.admin, "petition.actions", idle_ms=1500)]
    mine = [a for a in actions if a["petition_id"] == world.extension and a["action"] == "request_extension"]
    assert mine and mine[-1]["actor"] == {"subject": "clerk-matrix-A3-HOUSING", "role": "department"}
