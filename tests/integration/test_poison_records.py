"""Records no producer of ours writes (null values, null keys) on the router's input topics,
through the real broker: each is dead-lettered with its reason, the router goes on routing,
and its consumer group's committed offsets move past them.

(Before: a null value crashed the router's agent in ``raw_of`` with ``bytes(None)``; the
committed offset of a petition.actions partition stopped moving.)
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared import topics
from shared.kafka_client import KafkaAccess
from tests.integration.conftest import Stack, consume_all, parse, petition, wait_for

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"


def _event(name: str) -> bytes:
    body = json.loads((GOLDEN / f"{name}.json").read_text())
    body["event_id"] = str(uuid.uuid4())
    body["petition_id"] = f"P-POISON-{uuid.uuid4().hex[:8]}"
    return json.dumps(body).encode()


def _committed(kafka: KafkaAccess, group: str, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's committed offsets (read without joining the group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.options(), group_id=group, enable_auto_commit=False)
    try:
        return {(t, p): consumer.committed(TopicPartition(t, p)) or -1 for t, p in partitions}
    finally:
        consumer.close()


def test_null_values_and_null_keys_are_dead_lettered_and_the_router_goes_on(stack: Stack) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**stack.infra.admin.options())
    sent: dict[tuple[str, int, int], str] = {}  # (topic, partition, offset) -> expected reason
    try:
        for topic, valid in ((topics.PETITION_SUBMITTED, "petition.submitted"),
                             (topics.PETITION_ACTIONS, "petition.action_taken")):
            for key, value, reason in (
                (f"P-POISON-{uuid.uuid4().hex[:8]}".encode(), None, "null_value"),
                (None, _event(valid), "null_key"),
            ):
                meta = producer.send(topic, key=key, value=value).get(timeout=10)
                sent[(topic, meta.partition, meta.offset)] = reason
    finally:
        producer.close()

    def dead_lettered() -> dict[tuple[str, int, int], dict[str, Any]] | None:
        found = {}
        for record in consume_all(stack.infra.admin, topics.DEAD_LETTER_ROUTER, idle_ms=1000):
            body = parse(record)
            found[(body["source_topic"], body["partition"], body["offset"])] = body
        return found if set(sent) <= set(found) else None

    letters = wait_for(dead_lettered, timeout=60, interval=1.0)
    for where, reason in sent.items():
        body = letters[where]
        assert body["reason"] == reason, (where, body)
        assert body["service"] == "router"
        if reason == "null_value":
            assert body["value_b64"] is None  # null stays null
        else:
            assert body["key_b64"] is None
            assert json.loads(base64.b64decode(body["value_b64"]))["event_id"]  # the original bytes

    # the router still routes (its agent is alive) ...
    with stack.client(timeout=10) as client:
        r = client.post("/v1/petitions", json=petition())
        assert r.status_code == 202, r.text
        pid = r.json()["id"]
        body = wait_for(lambda: (b := client.get(f"/v1/petitions/{pid}").json())["department"] and b, timeout=30)
        assert body["status"] == "assigned"

    # ... and its consumer group committed past every poison record
    def committed_past() -> bool:
        offsets = _committed(stack.infra.admin, "petition-router", {(t, p) for t, p, _ in sent})
        print("committed", offsets, "poison at", sorted(sent))
        return all(offsets[(t, p)] > o for t, p, o in sent)

    wait_for(committed_past, timeout=30, interval=0.5)
    # escalation reads petition.actions too: it dead-letters the same records there
    escalation = {(b["source_topic"], b["partition"], b["offset"]): b["reason"]
                  for b in map(parse, consume_all(stack.infra.admin, topics.DEAD_LETTER_ESCALATION, idle_ms=1000))}
    for (t, p, o), reason in sent.items():
        if t == topics.PETITION_ACTIONS:
            assert escalation.get((t, p, o)) == reason
