"""The whole path through the real broker and database, driven through the HTTP API."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from shared import topics
from tests.integration.conftest import Stack, consume_all, parse, petition, wait_for

pytestmark = pytest.mark.integration


def _get(client: httpx.Client, ref: str) -> dict:
    r = client.get(f"/v1/petitions/{ref}")
    assert r.status_code == 200, r.text
    return r.json()


def _routed(client: httpx.Client, pid: str, *, deadlines: int = 2) -> dict:
    def ready() -> dict | None:
        body = _get(client, pid)
        if body["department"] and len(body["deadlines"]) >= deadlines:
            return body
        return None

    return wait_for(ready, timeout=20)


def test_submit_routed_clocks_accept_resolve(client: httpx.Client, stack: Stack) -> None:
    r = client.post("/v1/petitions", json=petition())
    assert r.status_code == 202, r.text
    created = r.json()
    assert set(created) == {"id", "tracking_code", "status"}
    assert created["status"] == "submitted"

    body = _routed(client, created["id"])
    assert body["status"] == "assigned"
    assert body["category"] == "城乡建设"
    assert body["department"] == {"code": "A3-HOUSING", "name": "A3区住房和城乡建设局"}
    clocks = {d["clock"]: d for d in body["deadlines"]}
    assert {"sign_for", "resolution"} <= set(clocks)
    assert all(d["state"] == "running" for d in clocks.values())
    assert body["jurisdiction"]["name"] == "A3区"
    # lookup by tracking code answers the same petition
    assert _get(client, created["tracking_code"])["id"] == created["id"]

    r = client.post(f"/v1/petitions/{created['id']}/actions",
                    json={"action": "accept", "department": "A3-HOUSING", "note": "已签收"})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    wait_for(lambda: {d["clock"]: d["state"] for d in _get(client, created["id"])["deadlines"]}
             .get("sign_for") == "stopped")

    r = client.post(f"/v1/petitions/{created['id']}/actions",
                    json={"action": "resolve", "department": "A3-HOUSING", "note": "已督促物业维修"})
    assert r.status_code == 202, r.text
    final = wait_for(lambda: (b := _get(client, created["id"]))
                     and {d["clock"]: d["state"] for d in b["deadlines"]}.get("resolution") == "stopped" and b)
    assert final["status"] == "resolved"
    events = [t["event"] for t in final["timeline"]]
    assert events[0] == "submitted"
    for expected in ("routed", "clock_armed", "accept", "resolve", "clock_stopped"):
        assert expected in events


def test_department_queue_receives_assignment_without_pii(client: httpx.Client, stack: Stack) -> None:
    r = client.post("/v1/petitions", json=petition(
        title="K1区一所学校违规收取补课费",
        content="K市K1区某中学组织学生周末补课并收取费用，家长意见很大，请教育部门调查。",
        petitioner={"name": "李四", "phone": "13911112222", "id_number": "110101199003071234"},
    ))
    assert r.status_code == 202
    pid = r.json()["id"]
    dept = _routed(client, pid)["department"]["code"]
    assert dept == "K1-EDUCATION"
    # the department reads with its own credentials, which it does not have yet
    out = stack.petitionctl("queue", "--department", dept, "--max-messages", "1", "--idle-timeout", "20")
    assert out.returncode != 0 and f"petitionctl kafka-user add --department {dept}" in out.stderr, out.stderr
    added = stack.petitionctl("kafka-user", "add", "--department", dept)
    assert added.returncode == 0 and f"dept-{dept}.password" in added.stdout, added.stderr
    out = stack.petitionctl("queue", "--department", dept, "--max-messages", "1", "--idle-timeout", "20")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    assert [x["petition_id"] for x in lines] == [pid]
    raw = out.stdout
    for secret in ("李四", "13911112222", "110101199003071234"):
        assert secret not in raw
    submitted = [parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_SUBMITTED)]
    mine = [m for m in submitted if m.get("petition_id") == pid]
    assert len(mine) == 1
    assert mine[0]["petitioner_key"] and "李四" not in json.dumps(mine[0], ensure_ascii=False)
    assert "13911112222" not in json.dumps(mine[0])


def test_return_is_reassigned_to_another_department(client: httpx.Client, stack: Stack) -> None:
    r = client.post("/v1/petitions", json=petition())
    pid = r.json()["id"]
    first = _routed(client, pid)["department"]["code"]
    r = client.post(f"/v1/petitions/{pid}/actions",
                    json={"action": "return", "department": first, "note": "不属于本单位职责"})
    assert r.status_code == 202, r.text
    body = wait_for(lambda: (b := _get(client, pid))["department"]["code"] != first and b)
    assert body["status"] == "assigned"
    assert body["department"]["code"] == "A-HOUSING"
    assert body["rule"].startswith("reassign:")
    assert "reassigned" in [t["event"] for t in body["timeline"]]
    # the department that returned it no longer holds it
    r = client.post(f"/v1/petitions/{pid}/actions", json={"action": "accept", "department": first})
    assert r.status_code == 409


def test_poison_message_is_dead_lettered_and_stream_continues(client: httpx.Client, stack: Stack) -> None:
    from kafka import KafkaProducer

    marker = uuid.uuid4().hex
    producer = KafkaProducer(**stack.infra.admin.options())
    producer.send(topics.PETITION_SUBMITTED, key=b"poison", value=f"not json {marker}".encode())
    producer.send(topics.PETITION_SUBMITTED, key=b"poison2",
                  value=json.dumps({"event_type": "petition.submitted", "marker": marker}).encode())
    producer.flush()
    producer.close()

    r = client.post("/v1/petitions", json=petition())
    _routed(client, r.json()["id"])

    def dead() -> list[dict]:
        records = [parse(m) for m in consume_all(stack.infra.admin, topics.DEAD_LETTER_ROUTER, idle_ms=1500)]
        import base64

        return [d for d in records if marker in base64.b64decode(d["value_b64"] or "").decode(errors="replace")]

    letters = wait_for(lambda: len(found := dead()) >= 2 and found, timeout=20)
    assert {d["reason"] for d in letters} == {"undecodable", "invalid_schema"}
    assert all(d["source_topic"] == topics.PETITION_SUBMITTED for d in letters)


def _repeats_counted(stack: Stack) -> float:
    text = httpx.get(f"{stack.health_url('router')}/metrics", timeout=5).text
    for line in text.splitlines():
        if (line.startswith("petition_events_consumed_total{") and 'outcome="repeat"' in line
                and f'topic="{topics.PETITION_SUBMITTED}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_petition_delivered_again_is_routed_once_and_counted_as_a_repeat(
    client: httpx.Client, stack: Stack
) -> None:
    from kafka import KafkaProducer

    pid = client.post("/v1/petitions", json=petition()).json()["id"]
    _routed(client, pid)
    submitted = [m for m in consume_all(stack.infra.admin, topics.PETITION_SUBMITTED, idle_ms=1500)
                 if pid.encode() in m.value]  # (the topic also holds another test's poison)
    assert len(submitted) == 1
    original = submitted[0]
    other_id = {**parse(original), "event_id": str(uuid.uuid4())}  # the same petition, another event
    before = _repeats_counted(stack)
    producer = KafkaProducer(**stack.infra.admin.options())
    for value in (original.value, original.value, json.dumps(other_id, ensure_ascii=False).encode()):
        producer.send(topics.PETITION_SUBMITTED, key=original.key, value=value)
    producer.flush()
    producer.close()
    wait_for(lambda: _repeats_counted(stack) >= before + 3, timeout=20)
    routed = [parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_ROUTED, idle_ms=1500)]
    assert len([r for r in routed if r["petition_id"] == pid]) == 1
    assert _get(client, pid)["department"]


def test_bad_http_input_gets_4xx(client: httpx.Client, stack: Stack) -> None:
    r = client.post("/v1/petitions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = client.post("/v1/petitions", json={"content": "x", "channel": "hotline"})
    assert r.status_code == 422
    assert "title" in [e["field"] for e in r.json()["errors"]]
    r = client.post("/v1/petitions", json=petition(channel="pigeon"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "channel"
    r = client.post("/v1/petitions", json=petition(persons=0))
    assert r.status_code == 422
    r = client.post("/v1/petitions", json=petition(petitioner={"id_number": "12345"}))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "petitioner.id_number"
    r = client.post("/v1/petitions", json=petition(received_at="2026-01-01T10:00:00"))
    assert r.status_code == 422
    r = client.post("/v1/petitions", json=petition(content="长" * 400_000))
    assert r.status_code == 413
    r = client.post("/v1/petitions", json=[1, 2])
    assert r.status_code == 422
    r = client.get("/v1/petitions/does-not-exist")
    assert r.status_code == 404
    r = client.post("/v1/petitions/does-not-exist/actions", json={"action": "accept", "department": "A-HOUSING"})
    assert r.status_code == 404
    pid = client.post("/v1/petitions", json=petition()).json()["id"]
    holder = _routed(client, pid)["department"]["code"]
    # another department's petition does not exist for its clerk
    r = client.post(f"/v1/petitions/{pid}/actions", json={"action": "accept", "department": "B-HOUSING"})
    assert r.status_code == 404
    r = client.post(f"/v1/petitions/{pid}/actions", json={"action": "return", "department": holder})
    assert r.status_code == 422  # a return needs a reason
    r = client.post(f"/v1/petitions/{pid}/actions", json={"action": "fly", "department": holder})
    assert r.status_code == 422


def test_idempotency_key_returns_the_same_petition(client: httpx.Client, stack: Stack) -> None:
    key = uuid.uuid4().hex
    body = petition()
    first = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": key})
    again = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/v1/petitions", json={**body, "title": "另一件事"}, headers={"Idempotency-Key": key})
    assert other.status_code == 409


def test_every_service_serves_health_readiness_and_metrics(stack: Stack) -> None:
    # readiness names each part it checks: the database, the broker, every background loop
    # and the consumer
    parts = {
        "intake": {"postgres", "kafka", "outbox-relay", "read-model", "consumer-lag", "read-model-consumer"},
        "router": {"postgres", "kafka", "outbox-relay", "consumer", "agent"},
        "escalation": {"postgres", "kafka", "outbox-relay", "timers", "consumer", "agent"},
    }
    for service in ("intake", "router", "escalation"):
        base = stack.health_url(service)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == dict.fromkeys(parts[service], True)
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200 and "petition_" in metrics.text
