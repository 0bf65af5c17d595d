"""Early warning (预警) through intake, on the session's stack: alerts and incident links are
written onto ``petition.alerts`` here, as the watch service would write them (the test needs
no watch), and read back through ``GET /v1/alerts``, a petition's page and the supervisor's
console. What must hold: a supervisor reads its area's alerts and no other's, and nobody else
reads any; the highest version of an alert stands, whatever order the versions come in; a closed
alert leaves the active list; a supervisor unlinks a petition from its incident once (published
on ``petition.actions``), and the alert stops listing it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared import topics
from shared.events import IncidentLinked, WatchAlert, encode_event, key_for, key_for_alert
from shared.identity import Principal, Role
from tests.integration.conftest import Stack, consume_all, db_rows, parse, petition, routed, wait_for
from tests.integration.test_console import add_user, browser, csrf_of, sign_in

pytestmark = pytest.mark.integration

SUPERVISOR_A3 = Principal("sup-alerts-a3", Role.SUPERVISOR, area="430103")  # the A3 district of A city
SUPERVISOR_A = Principal("sup-alerts-a", Role.SUPERVISOR, area="430100")  # A city
SUPERVISOR_B = Principal("sup-alerts-b", Role.SUPERVISOR, area="430200")  # B city
SUPERVISOR_P = Principal("sup-alerts-p", Role.SUPERVISOR, area="430000")  # the province
CLERK = Principal("clerk-alerts", Role.DEPARTMENT, frozenset({"A3-HOUSING"}))
OPERATOR = Principal("op-alerts", Role.OPERATOR)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _as(stack: Stack, principal: Principal) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=20,
                        headers={"Authorization": f"Bearer {stack.token(principal)}"})


@pytest.fixture(scope="module")
def producer(stack: Stack) -> Iterator[Any]:
    from kafka import KafkaProducer

    p = KafkaProducer(**stack.infra.admin.options())
    yield p
    p.close()


def publish(producer: Any, *events: WatchAlert | IncidentLinked) -> None:
    """Write the events as the watch service does: an alert keyed by its id, a link by its petition."""
    for e in events:
        key = key_for_alert(e.alert_id) if isinstance(e, WatchAlert) else key_for(e.petition_id)
        producer.send(topics.PETITION_ALERTS, key=key, value=encode_event(e))
    producer.flush()


def alert(alert_id: str, version: int = 1, **changes: Any) -> WatchAlert:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=version), "alert_id": alert_id,
        "version": version, "state": "active", "kind": "surge", "area": "430103", "area_name": "A3区",
        "area_level": "district", "category": "城乡建设", "window": "day", "window_start": T0,
        "count": 5 + version, "expected": 1.5, "z": 3.5, "petition_ids": (), "opened_at": T0, "level": 1,
    }
    fields.update(changes)
    return WatchAlert(**fields)


def listing(stack: Stack, who: Principal, **params: Any) -> httpx.Response:
    with _as(stack, who) as c:
        return c.get("/v1/alerts", params=params)


def ids_seen(stack: Stack, who: Principal, **params: Any) -> set[str]:
    r = listing(stack, who, **params)
    assert r.status_code == 200, r.text
    return {a["alert_id"] for a in r.json()["items"]}


def item(stack: Stack, who: Principal, alert_id: str, state: str = "all") -> dict[str, Any] | None:
    r = listing(stack, who, state=state)
    assert r.status_code == 200, r.text
    return next((a for a in r.json()["items"] if a["alert_id"] == alert_id), None)


def applied(stack: Stack, event: WatchAlert | IncidentLinked) -> bool:
    """The read model has consumed `event` (its processed-event ledger says so)."""
    return bool(db_rows(stack, "SELECT 1 FROM intake.processed_event WHERE consumer = 'intake-read-model'"
                               " AND event_id = $1", event.event_id))


def test_a_supervisor_reads_the_alerts_of_its_area_and_nobody_else_reads_any(stack: Stack, producer: Any) -> None:
    run = uuid.uuid4().hex[:8]
    a3, b1, nowhere = f"surge:{run}:a3", f"surge:{run}:b1", f"surge:{run}:nowhere"
    publish(producer, alert(a3), alert(b1, area="430201", area_name="B1区"),
            alert(nowhere, area=None, area_name=None, area_level=None))
    wait_for(lambda: {a3, nowhere} <= ids_seen(stack, SUPERVISOR_P), timeout=30)
    assert b1 in ids_seen(stack, SUPERVISOR_P)
    mine = ids_seen(stack, SUPERVISOR_A3)
    assert a3 in mine and b1 not in mine and nowhere not in mine
    assert a3 in ids_seen(stack, SUPERVISOR_A)  # a city's supervisor reads its districts' alerts
    theirs = ids_seen(stack, SUPERVISOR_B)
    assert b1 in theirs and a3 not in theirs
    # an area of its own narrows the list; another's is refused
    assert a3 in ids_seen(stack, SUPERVISOR_A, area="430103")
    assert a3 not in ids_seen(stack, SUPERVISOR_A, area="430102")
    assert listing(stack, SUPERVISOR_A3, area="430201").status_code == 403
    for other in (CLERK, OPERATOR, Principal("desk-alerts", Role.TRIAGE, frozenset({"TRIAGE"}))):
        refused = listing(stack, other)
        assert refused.status_code == 403 and refused.json()["error"] == "role_cannot_read", refused.text
    assert httpx.get(f"{stack.base_url}/v1/alerts", timeout=10).status_code == 401
    shown = item(stack, SUPERVISOR_A3, a3)
    assert shown is not None and shown["kind"] == "surge" and shown["area_name"] == "A3区"
    assert shown["window"] == "day" and shown["count"] == 6 and shown["expected"] == 1.5


def test_the_highest_version_stands_and_a_closed_alert_leaves_the_active_list(stack: Stack, producer: Any) -> None:
    alert_id = f"surge:{uuid.uuid4().hex[:8]}:versions"
    first, closed = alert(alert_id, 1), alert(alert_id, 3, state="closed", closed_at=T0 + timedelta(minutes=30),
                                               level=2, risk_reasons=("group_petition",))
    late = alert(alert_id, 2, level=3)  # older than the closing one, arriving after it
    publish(producer, first)
    wait_for(lambda: item(stack, SUPERVISOR_A3, alert_id, "active"), timeout=30)
    publish(producer, closed, late)
    wait_for(lambda: applied(stack, late), timeout=30)
    found = item(stack, SUPERVISOR_A3, alert_id)
    assert found is not None
    assert (found["version"], found["state"], found["level"], found["count"]) == (3, "closed", 2, 8)
    assert found["risk_reasons"] == ["group_petition"] and found["closed_at"] is not None
    assert item(stack, SUPERVISOR_A3, alert_id, "active") is None
    assert item(stack, SUPERVISOR_A3, alert_id, "closed") is not None


def _submitted(stack: Stack, client: httpx.Client) -> str:
    # words of its own: nothing else is like it, so no incident of the stack's own takes it
    building = uuid.uuid4().hex[:10]
    body = petition(content=f"我是A市A3区某小区的住户，小区{building}号楼的电梯坏了一个月，请住建部门督促物业维修。")
    with _as(stack, OPERATOR) as c:
        r = c.post("/v1/petitions", json=body)
    assert r.status_code == 202, r.text
    pid = str(r.json()["id"])
    assert routed(client, pid, timeout=30)["jurisdiction"]["code"] == "430103"
    return pid


def test_a_supervisor_unlinks_a_petition_from_its_incident_once(
    stack: Stack, producer: Any, client: httpx.Client
) -> None:
    pid, other = _submitted(stack, client), _submitted(stack, client)
    alert_id, incident = f"cluster:{uuid.uuid4().hex[:8]}", f"inc-{uuid.uuid4().hex[:8]}"
    cluster = alert(alert_id, kind="cluster", window=None, window_start=None, expected=None, z=None, count=2,
                    petition_ids=(pid, other), department_code="A3-URBAN")
    link = IncidentLinked(event_id=uuid.uuid4(), occurred_at=T0, petition_id=pid, incident_id=incident,
                          alert_id=alert_id, department_code="A3-URBAN", assignment_no=1, similarity=0.9)
    unlink = {"action": "unlink", "department": "A3-GOV", "note": "与该事件无关，单独办理"}
    with _as(stack, SUPERVISOR_A3) as sup:
        # not linked (yet): nothing to undo
        early = sup.post(f"/v1/petitions/{pid}/actions", json=unlink)
        assert early.status_code == 409 and early.json()["error"] == "not_linked", early.text
        publish(producer, cluster, link)
        wait_for(lambda: applied(stack, link) and item(stack, SUPERVISOR_A3, alert_id), timeout=30)
        page = sup.get(f"/v1/petitions/{pid}").json()
        assert [i["incident_id"] for i in page["incidents"]] == [incident]
        assert "incident_linked" in [t["event"] for t in page["timeline"]]
        with _as(stack, CLERK) as clerk:  # the holder returns a petition (退单); unlinking is the supervisor's
            refused = clerk.post(f"/v1/petitions/{pid}/actions", json={**unlink, "department": "A3-HOUSING"})
            assert refused.status_code == 403, refused.text
        done = sup.post(f"/v1/petitions/{pid}/actions", json=unlink)
        assert done.status_code == 202 and done.json()["action"] == "unlink", done.text
        again = sup.post(f"/v1/petitions/{pid}/actions", json=unlink)
        assert again.status_code == 409 and again.json()["error"] == "not_linked", again.text
        page = sup.get(f"/v1/petitions/{pid}").json()
    assert page["incidents"][0]["unlinked_by"] == SUPERVISOR_A3.subject
    assert "unlink" in [t["event"] for t in page["timeline"]]
    listed = item(stack, SUPERVISOR_A3, alert_id)
    assert listed is not None
    assert listed["petition_ids"] == [other] and listed["unlinked_petition_ids"] == [pid]
    # a later version of the alert that still names the petition does not bring it back
    publish(producer, cluster.model_copy(update={"event_id": uuid.uuid4(), "version": 2, "count": 3}))
    again_listed = wait_for(lambda: (i := item(stack, SUPERVISOR_A3, alert_id)) and i["version"] == 2 and i,
                            timeout=30)
    assert again_listed["petition_ids"] == [other] and again_listed["count"] == 3

    def published() -> list[dict[str, Any]]:
        return [e for e in (parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_ACTIONS, idle_ms=1500))
                if e["petition_id"] == pid and e["action"] == "unlink"]

    (event,) = wait_for(published, timeout=30)
    assert event["department_code"] == "A3-GOV" and event["note"] == unlink["note"]
    assert event["extra"] == {"incident_id": incident, "alert_id": alert_id, "incident_department": "A3-URBAN"}
    assert event["actor"] == {"subject": SUPERVISOR_A3.subject, "role": "supervisor"}


def test_the_supervisors_console_lists_its_alerts_and_unlinks_from_there(
    stack: Stack, producer: Any, client: httpx.Client
) -> None:
    pid = _submitted(stack, client)
    alert_id, incident = f"cluster:{uuid.uuid4().hex[:8]}", f"inc-{uuid.uuid4().hex[:8]}"
    link = IncidentLinked(event_id=uuid.uuid4(), occurred_at=T0, petition_id=pid, incident_id=incident,
                          alert_id=alert_id, department_code="A3-URBAN", assignment_no=1, similarity=0.95)
    publish(producer, alert(alert_id, kind="cluster", category="燃气安全", window=None, expected=None, z=None,
                            count=1, petition_ids=(pid,), department_code="A3-URBAN", level=3,
                            risk_reasons=("group_petition", "many_petitions")), link)
    wait_for(lambda: applied(stack, link), timeout=30)
    tracking = client.get(f"/v1/petitions/{pid}").json()["tracking_code"]
    sup = f"sup-{uuid.uuid4().hex[:6]}"
    add_user(stack, sup, "--role", "supervisor", "--area", "A3")
    with browser(stack) as c:
        page = sign_in(c, sup)
        assert page.url.path == "/console/overview" and ">预警</h2>" in page.text
        row = page.text[page.text.index(f'href="/console/petitions/{pid}"'):]
        assert row.startswith(f'href="/console/petitions/{pid}">{tracking}</a>')
        section = page.text[:page.text.index(f'href="/console/petitions/{pid}"')]
        assert "燃气安全" in section[section.rindex("<tr>"):] and "集体访" in section[section.rindex("<tr>"):]
        form = re.search(rf'<form method="post" action="/console/petitions/{pid}/act"[^>]*>(.*?)</form>', row, re.S)
        assert form and 'name="action" value="unlink"' in form.group(1)
        done = c.post(f"/console/petitions/{pid}/act", data={
            "csrf_token": csrf_of(page), "action": "unlink", "department": "A3-GOV", "back": "overview",
            "note": "不属同一事件"})
        assert done.url.path == "/console/overview" and "已撤销并案" in done.text
        # the alert no longer lists it (so offers nothing to undo), and says one was unlinked; the
        # stack's own watch may list it in an alert of its own, which this leaves alone
        (mine,) = [r for r in done.text.split("<tr>") if "燃气安全" in r]
        assert f"/console/petitions/{pid}" not in mine and "已撤销并案 1 件" in mine
        shown = c.get(f"/console/petitions/{pid}")
        assert "撤销并案" in shown.text and "不属同一事件" in shown.text  # on its timeline, with the reason
