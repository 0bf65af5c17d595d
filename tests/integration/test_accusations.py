"""An accusation (检举控告) never reaches the unit it accuses, nor any unit of that unit's own
government: not through the API (whatever the caller's token says), not through the
department queues, and not through the escalation ladder's 督办. Through the real stack."""

from __future__ import annotations

import time

import httpx
import pytest

from shared import topics
from shared.identity import Principal, Role
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

ACCUSATION = {
    "kind": "accusation",
    "title": "举报A3区住建局工作人员在安置房分配中收受好处",
    "content": "A3区住建局某工作人员在我们小区拆迁安置房分配中收受开发商好处，请上级查处。我的电话13912345678。",
}
#: callers of the accused government, whatever else their tokens hold
SHIELDED = [
    Principal("clerk-a3h", Role.DEPARTMENT, frozenset({"A3-HOUSING"})),
    Principal("clerk-a3g", Role.DEPARTMENT, frozenset({"A3-GOV"})),
    Principal("clerk-a3u", Role.DEPARTMENT, frozenset({"A3-URBAN"})),
    Principal("clerk-both", Role.DEPARTMENT, frozenset({"A3-HOUSING", "A-GOV"})),
    Principal("sup-a3", Role.SUPERVISOR, area="430103"),
]


def _as(stack: Stack, who: Principal) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=20,
                        headers={"Authorization": f"Bearer {stack.token(who)}"})


def test_an_accusation_does_not_exist_for_the_accused_government(stack: Stack, client: httpx.Client) -> None:
    r = client.post("/v1/petitions", json=petition(**ACCUSATION))
    assert r.status_code == 202, r.text
    pid = r.json()["id"]
    body = routed(client, pid)
    assert body["department"]["code"] == "A-GOV" and body["accused_departments"] == ["A3-HOUSING"]

    # the handling department sees it, its contacts too
    with _as(stack, Principal("clerk-ag", Role.DEPARTMENT, frozenset({"A-GOV"}))) as c:
        assert c.get(f"/v1/petitions/{pid}").status_code == 200
        assert c.post(f"/v1/petitions/{pid}/contacts", json={"reason": "核实举报"}).json()["phone"]
    # the accused government: no such petition, whatever the token holds
    for who in SHIELDED:
        with _as(stack, who) as c:
            assert c.get(f"/v1/petitions/{pid}").status_code == 404, who
            assert c.post(f"/v1/petitions/{pid}/contacts", json={"reason": "看看"}).status_code == 404, who
            unit = "A3-GOV" if who.role is Role.SUPERVISOR else sorted(who.departments)[0]
            action = {"action": "accept", "department": unit} if who.role is Role.DEPARTMENT else {
                "action": "approve_extension", "department": unit}
            assert c.post(f"/v1/petitions/{pid}/actions", json=action).status_code == 404, who

    # no queue of the accused government received it
    time.sleep(1.0)
    for unit in ("A3-HOUSING", "A3-GOV", "A3-URBAN"):
        records = consume_all(stack.infra.admin, topics.department_topic(unit), idle_ms=1200)
        assert all(parse(m)["petition_id"] != pid for m in records), unit
    handling = [parse(m) for m in consume_all(stack.infra.admin, topics.department_topic("A-GOV"), idle_ms=1200)]
    mine = [m for m in handling if m["petition_id"] == pid]
    assert mine and "13912345678" not in mine[0]["content"]  # the queue's text is masked too

    # the ladder climbs past the accused government: step after step, no 督办 for an A3 unit
    wait_for(lambda: db_rows(stack, "SELECT 1 FROM escalation.clock WHERE petition_id = $1 AND clock = 'resolution'",
                             pid), timeout=30)
    age_until_due(stack, pid, "resolution", "breach")
    for _ in range(3):
        wait_for(lambda: db_rows(stack, "SELECT 1 FROM escalation.timer WHERE petition_id = $1 AND kind = 'escalate'"
                                        " AND state = 'pending'", pid), timeout=30)
        age_until_due(stack, pid, "resolution", "escalate")
    orders = wait_for(lambda: len(found := db_rows(stack, "SELECT target_unit FROM escalation.supervision"
                                                          " WHERE petition_id = $1", pid)) >= 3 and found,
                      timeout=60)
    targets = {o["target_unit"] for o in orders}
    assert targets and not any(t.startswith("A3-") for t in targets), targets
    with _as(stack, Principal("clerk-a3g", Role.DEPARTMENT, frozenset({"A3-GOV"}))) as c:
        listed = c.get("/v1/supervision", params={"unit": "A3-GOV", "state": "all"}).json()["items"]
        assert all(i["petition_id"] != pid for i in listed)
