"""Several instances of every consuming service on one broker and database, one killed while
petitions flow: nothing is lost, nothing is done twice, repeats are still told apart.

Two routers, two escalation workers and two watchers share their consumer groups. Petitions of
one person land on different partitions, so on different routers: repeat detection is
serialised per petitioner (a transaction-scoped advisory lock, taken before the petitioner's
earlier petitions are read), so each person has exactly one original however the work is
spread.
"""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.stack.testinfra import start_test_infra
from shared import topics
from tests.integration.conftest import WITH_WATCH, Stack, consume_all, new_stack, petition, running, wait_for

pytestmark = pytest.mark.integration

COUNTS = {"router": 2, "escalation": 2, "watch": 2}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    infra = start_test_infra(tmp_path_factory.mktemp("scaled-infra"))
    try:
        with running(new_stack(infra, tmp_path_factory.mktemp("scaled-run")), WITH_WATCH, COUNTS) as s:
            yield s
    finally:
        infra.stop()


def post_many(stack: Stack, bodies: list[dict[str, Any]]) -> list[str]:
    def one(body: dict[str, Any]) -> str:
        with stack.client() as client:
            r = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, bodies))


def first_assignments(stack: Stack) -> Counter[str]:
    routed = [json.loads(m.value) for m in consume_all(stack.infra.admin, topics.PETITION_ROUTED, idle_ms=1500)]
    ids = {(e["petition_id"], e["assignment_no"]): e["event_id"] for e in routed}
    assert len(ids) == len({e["event_id"] for e in routed}), "one decision published under two ids"
    return Counter(pid for pid, no in ids if no == 1)


def all_routed(stack: Stack, ids: list[str]) -> Counter[str] | None:
    """The first-assignment counts once every one of `ids` has one."""
    counts = first_assignments(stack)
    return counts if set(ids) <= set(counts) else None


def people(n: int, each: int) -> list[dict[str, Any]]:
    """`each` petitions of the same complaint by each of `n` people, interleaved."""
    phones = [f"139{uuid.uuid4().int % 10**8:08d}" for _ in range(n)]
    return [petition(petitioner={"name": "李四", "phone": phones[i]}) for _ in range(each) for i in range(n)]


def test_every_instance_joins_and_each_person_has_one_original(scaled: Stack) -> None:
    for name in scaled.instances:
        assert scaled.procs[name].is_running(), name
    ids = post_many(scaled, people(12, 4))
    routed = wait_for(lambda: all_routed(scaled, ids), timeout=90)
    assert all(routed[pid] == 1 for pid in ids)
    with scaled.client() as client:
        views = [client.get(f"/v1/petitions/{pid}").json() for pid in ids]
    originals = Counter(v["id"] for v in views if v["repeat_of"] is None)
    assert len(originals) == 12, f"{len(originals)} originals for 12 people"
    assert {v["repeat_of"] for v in views if v["repeat_of"]} <= set(originals)


def test_killing_a_router_and_an_escalation_worker_loses_and_repeats_nothing(scaled: Stack) -> None:
    bodies = [petition() for _ in range(60)]
    with concurrent.futures.ThreadPoolExecutor(1) as background:
        posted = background.submit(post_many, scaled, bodies)
        scaled.kill("router-1")
        scaled.kill("escalation-2")
        ids = posted.result()
    scaled.start("router-1")
    scaled.start("escalation-2")
    routed = wait_for(lambda: all_routed(scaled, ids), timeout=120)
    assert all(routed[pid] == 1 for pid in ids)

    def armed() -> set[str] | None:
        sla = [json.loads(m.value) for m in consume_all(scaled.infra.admin, topics.PETITION_SLA, idle_ms=1500)]
        have = {e["petition_id"] for e in sla if e["event_type"] == "sla.clock_armed"}
        return have if set(ids) <= have else None

    wait_for(armed, timeout=90)
    dead = [m for t in (topics.DEAD_LETTER_ROUTER, topics.DEAD_LETTER_ESCALATION, topics.DEAD_LETTER_WATCH)
            for m in consume_all(scaled.infra.admin, t, idle_ms=500)]
    assert dead == []
