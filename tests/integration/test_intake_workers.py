"""Two intake workers on the one API port (``PETITION_INTAKE_WORKERS=2``), on a stack of this
module's own: each answers on its private port, they share the read model's consumer group
under ids of their own, only worker 1 collects the consumer lag, and petitions posted to the
shared port are accepted and routed exactly once while one worker is SIGKILLed (clients retry
a refused or reset connection with the same Idempotency-Key, as the API asks them to).
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient

from deploy.callers import OPERATOR
from deploy.stack.testinfra import start_test_infra
from shared import topics
from tests.integration.conftest import Stack, consume_all, new_stack, petition, running, wait_for

pytestmark = pytest.mark.integration

WORKERS = ("intake-1", "intake-2")
SUBMISSIONS = 120
KILL_AFTER = 40  # accepted petitions before intake-2 is killed
HELD = 12  # requests half sent when it is killed (each worker's with even odds)


@pytest.fixture(scope="module")
def workers_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    infra = start_test_infra(tmp_path_factory.mktemp("workers-infra"))
    try:
        s = new_stack(infra, tmp_path_factory.mktemp("workers-run"))
        # a static member killed without a goodbye holds its partitions until this runs out
        s.env["PETITION_CONSUMER_SESSION_TIMEOUT_SECONDS"] = "10"
        # the router's child processes (classifier, relay) are not what this module tests: with
        # none it starts in seconds on a busy machine
        s.env["PETITION_CLASSIFY_WORKERS"] = "0"
        s.env["PETITION_RELAY_PROCESS"] = "false"
        # a router on a fresh broker creates every department queue (2,313) before it is
        # ready: seconds on an idle machine, minutes on a busy one
        with running(s, ("intake", "router"), {"intake": len(WORKERS)}, ready_timeout=300):
            yield s
    finally:
        infra.stop()


def _metrics(stack: Stack, worker: str) -> str:
    return httpx.get(f"{stack.health_url(worker)}/metrics", timeout=5).text


def _submitted(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("petition_submitted_total{"))


def _static_ids(stack: Stack, group: str) -> list[str]:
    """The static member ids (group.instance.id) of the group's members, one per member."""
    admin = KafkaAdminClient(**stack.infra.admin.options())
    try:
        members = admin.describe_groups([group])[group]["members"]
        # a static member's member id is <group.instance.id>-<uuid>, should the answer lack the id
        return sorted(m.get("group_instance_id") or m["member_id"].rsplit("-", 5)[0] for m in members)
    finally:
        admin.close()


def test_each_worker_answers_on_its_private_port(workers_stack: Stack) -> None:
    stack = workers_stack
    pids = {stack.procs[w].pid for w in WORKERS}
    assert len(pids) == len(WORKERS) and None not in pids
    for worker in WORKERS:
        ready = httpx.get(f"{stack.health_url(worker)}/readyz", timeout=5)
        assert ready.status_code == 200, (worker, ready.text)
        assert stack.instances[worker].port != stack.ports["PETITION_HTTP_PORT"]
    assert httpx.get(f"{stack.base_url}/readyz", timeout=5).status_code == 200  # the shared port
    # the consumer-lag collector runs in worker 1 only
    lag_task = 'petition_background_task_up{service="intake",task="consumer-lag"}'
    assert lag_task in _metrics(stack, "intake-1")
    assert lag_task not in _metrics(stack, "intake-2")
    # both workers are members of the read model's group, each under its own static id (one
    # id for both would have the broker fence one of them)
    ids = wait_for(lambda: found if len(found := _static_ids(stack, "petition-intake")) == 2 else None, timeout=60)
    assert len(set(ids)) == 2, ids


@dataclass
class Clients:
    """Submissions to the shared port, each retried with its Idempotency-Key while the
    connection is refused or reset (or the answer is a 503) until it gets a final answer."""

    stack: Stack
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)  # tag -> (status, petition id)
    retries: int = 0
    accepted: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def body(tag: str) -> dict[str, Any]:
        return petition(content=f"我是A市A3区某小区的居民，楼下的餐馆每天深夜排放油烟，编号{tag}，请处理。")

    def submit(self, tag: str, key: str | None = None, body: dict[str, Any] | None = None) -> None:
        body, key = body or self.body(tag), key or uuid.uuid4().hex
        for _attempt in range(60):
            try:
                with self.stack.client(timeout=15) as client:  # a new connection each time
                    r = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code != 503:
                with self._lock:
                    self.answers[tag] = (r.status_code, r.json().get("id", "") if r.status_code == 202 else r.text)
                if r.status_code == 202:
                    self.accepted.release()
                return
            with self._lock:
                self.retries += 1
            time.sleep(0.25)
        raise AssertionError(f"{tag}: no answer after 60 attempts")


class Held:
    """A submission whose headers are sent and whose body waits: a request a worker is in the
    middle of reading when it is killed (which worker took the connection is the kernel's choice)."""

    def __init__(self, stack: Stack, tag: str) -> None:
        self.tag, self.key, self.body = tag, uuid.uuid4().hex, Clients.body(tag)
        self.payload = json.dumps(self.body, ensure_ascii=False).encode()
        self.sock = socket.create_connection(("127.0.0.1", stack.ports["PETITION_HTTP_PORT"]), timeout=10)
        self.sock.sendall((
            "POST /v1/petitions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.payload)}\r\nIdempotency-Key: {self.key}\r\n"
            f"Authorization: Bearer {stack.token(OPERATOR)}\r\n\r\n").encode())

    def finish(self) -> int | None:
        """Send the body; the answer's status, None when the connection was reset or closed."""
        try:
            self.sock.sendall(self.payload)
            answer = self.sock.recv(4096)
        except OSError:
            return None
        finally:
            self.sock.close()
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _tag() -> str:
    """Letters only: the text is masked for personal numbers, and a tag must survive it."""
    return "".join(chr(ord("g") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def test_petitions_are_routed_once_while_a_worker_is_killed(workers_stack: Stack) -> None:
    stack = workers_stack
    clients = Clients(stack)
    tags = [_tag() for _ in range(SUBMISSIONS)]
    held_tags = [_tag() for _ in range(HELD)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(clients.submit, tag) for tag in tags]
        for _ in range(KILL_AFTER):
            assert clients.accepted.acquire(timeout=60), "petitions are not being accepted"
        # both workers have been taking petitions from the shared port
        served = {w: _submitted(_metrics(stack, w)) for w in WORKERS}
        assert all(served.values()), served
        held = [Held(stack, tag) for tag in held_tags]
        pid = stack.procs["intake-2"].pid
        assert pid is not None
        stack.kill("intake-2")  # SIGKILL by pid, in the middle of the load
        assert not stack.procs["intake-2"].is_running()
        outcomes = [h.finish() for h in held]
        for h in held:  # the client's retry, with the same key: a 202 answered already is replayed
            clients.submit(h.tag, h.key, h.body)
        for f in futures:
            f.result()
    reset = outcomes.count(None)
    assert reset >= 1, f"no held connection was the killed worker's: {outcomes}"
    assert set(outcomes) <= {None, 202}, outcomes
    tags += held_tags
    statuses = {tag: status for tag, (status, _) in clients.answers.items()}
    assert statuses == dict.fromkeys(tags, 202), {t: a for t, a in clients.answers.items() if a[0] != 202}
    ids = {tag: pid for tag, (_, pid) in clients.answers.items()}
    assert len(set(ids.values())) == len(tags)  # one petition per submission, retries included
    print(f"\nintake workers: {len(tags)} accepted; {reset} of {HELD} held connections reset by the kill,"
          f" {clients.retries} retries; before the kill {served}")

    # the killed worker's port is refused; the shared port still answers
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.health_url('intake-2')}/readyz", timeout=2)
    assert httpx.get(f"{stack.base_url}/readyz", timeout=5).status_code == 200

    accepted = set(ids.values())

    def routed_all() -> dict[str, set[str]] | None:
        firsts: dict[str, set[str]] = defaultdict(set)
        for record in consume_all(stack.infra.admin, topics.PETITION_ROUTED, idle_ms=2000):
            event = json.loads(record.value)
            if event["assignment_no"] == 1:
                firsts[event["petition_id"]].add(event["event_id"])
        return firsts if accepted <= set(firsts) else None

    firsts = wait_for(routed_all, timeout=180, interval=3)
    assert {pid for pid in accepted if len(firsts[pid]) != 1} == set(), "routed under more than one decision"
    submitted: dict[str, set[str]] = defaultdict(set)
    by_tag: dict[str, set[str]] = defaultdict(set)
    for record in consume_all(stack.infra.admin, topics.PETITION_SUBMITTED, idle_ms=2000):
        event = json.loads(record.value)
        submitted[event["petition_id"]].add(event["event_id"])
        for tag in tags:
            if tag in event["content"]:
                by_tag[tag].add(event["petition_id"])
    assert {pid for pid in accepted if len(submitted[pid]) != 1} == set(), "a petition submitted twice"
    assert by_tag == {tag: {ids[tag]} for tag in tags}

    # intake-2 comes back on its private port and the read model shows every petition routed
    stack.start("intake-2", 180)
    assert httpx.get(f"{stack.health_url('intake-2')}/readyz", timeout=5).status_code == 200
    assert stack.procs["intake-2"].pid != pid

    def projected() -> bool:
        with stack.client() as client:
            return all(client.get(f"/v1/petitions/{p}").json().get("department") for p in accepted)

    wait_for(projected, timeout=120, interval=2)
