"""Early warning (预警) through the real stack: the watch service on its broker and database.

The module runs a broker and a database of its own, so the watch can be given a policy whose
clock runs fast: a surge window of 4 seconds whose baseline warms up in 5 windows (the
shipped hourly window needs a day of history; the logic is the same, only the window's length
differs). Real citizen messages from ../shared/data are the background; a burst is paraphrases
of one complaint about one district.
"""

from __future__ import annotations

import concurrent.futures
import csv
import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.stack.testinfra import start_test_infra
from shared.identity import Principal, Role
from tests.integration.conftest import REPO, WITH_WATCH, Stack, new_stack, petition, routed, running, wait_for

pytestmark = pytest.mark.integration

POLICY = """
version: 1
surges:
  fast: {window_seconds: 4, min_count: 4, z: 5.0, alpha: 0.3, warmup_windows: 5}
  day: {window_seconds: 86400, min_count: 100000, z: 6.0, warmup_windows: 0}
clusters: {threshold: 0.4, shingle: 2, perm: 64, window_seconds: 259200, min_chars: 12, alert_size: 4}
"""

GAS = ["{place}最近几天一直有很浓的燃气味", "尤其是早上和晚上特别明显", "大家担心会发生燃气泄漏爆炸",
       "已经打过燃气公司电话但没人来查", "请相关部门尽快派人检查处理"]
WAGES = ["{place}的建筑工地老板拖欠我们农民工工资", "已经拖了三个多月", "我们几十个工人一直讨不到钱",
         "快过年了家里等着用钱", "请劳动部门帮我们讨回工资"]
OPENINGS = ["", "你好，", "领导好，", "我是附近的居民，", "反映一个问题："]


def paraphrases(template: list[str], place: str, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        clauses = [c.format(place=place) for c in template]
        rest = clauses[1:]
        rng.shuffle(rest)
        text = rng.choice(OPENINGS) + "，".join([clauses[0], *rest[: rng.randint(2, len(rest))]]) + "。"
        out.append(petition(title=clauses[0][:20], content=text))
    return out


def background(n: int, seed: int = 7) -> list[dict[str, Any]]:
    data = Path(os.environ.get("PETITION_DATA_DIR", REPO.parent / "shared" / "data"))
    path = data / "petitions-labeled.csv"
    if not path.exists():
        pytest.skip(f"no citizen messages at {path}")
    with path.open(encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("content") or "").strip()]
    rng = random.Random(seed)
    return [petition(title=(r["title"] or "来信")[:100], content=r["content"][:3000]) for r in rng.sample(rows, n)]


@pytest.fixture(scope="module")
def watch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    infra = start_test_infra(tmp_path_factory.mktemp("watch-infra"))
    run_dir = tmp_path_factory.mktemp("watch-run")
    policy = run_dir / "watch-policy.yaml"
    policy.write_text(POLICY)
    try:
        s = new_stack(infra, run_dir)
        s.env["PETITION_WATCH_POLICY_PATH"] = str(policy)
        s.env["PETITION_WATCH_TICK_SECONDS"] = "1"
        with running(s, WITH_WATCH):
            yield s
    finally:
        infra.stop()


def supervisor(stack: Stack, area: str = "430000") -> httpx.Client:
    token = stack.token(Principal("supervisor-province", Role.SUPERVISOR, area=area))
    return httpx.Client(base_url=stack.base_url, timeout=10, headers={"Authorization": f"Bearer {token}"})


def alerts(stack: Stack, state: str = "active") -> list[dict[str, Any]]:
    with supervisor(stack) as client:
        r = client.get("/v1/alerts", params={"state": state})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def post_all(client: httpx.Client, bodies: list[dict[str, Any]], pause: float = 0.0) -> list[str]:
    ids = []
    for body in bodies:
        r = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
        if pause:
            time.sleep(pause)
    return ids


def watch_keys(stack: Stack, area: str) -> dict[str, Any]:
    port = stack.ports["PETITION_WATCH_PORT"]
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/watch/keys", params={"area": area}, timeout=5).json()
    return body


def test_steady_background_from_many_places_raises_no_alert(watch_stack: Stack) -> None:
    """Real messages at a steady rate: the fast window's baseline warms up (5 windows), then
    another 40 s of background raise neither a surge nor an incident."""
    bodies = background(240)
    with watch_stack.client() as client:
        ids = post_all(client, bodies[:100], pause=0.2)  # 5 a second for 20 s: the warm-up
        ids += post_all(client, bodies[100:], pause=0.2)
        routed(client, ids[-1], timeout=60)
    time.sleep(3)  # the last windows close
    seen = {a["alert_id"] for a in alerts(watch_stack, "all")}
    assert seen == set(), f"background raised alerts: {seen}"


#: a gas complaint the router sends to B2's housing bureau; the paraphrases of GAS alone it finds
#: too vague and sends to the triage desk (confidence under the threshold)
HOLDER = petition(title="B2区幸福路小区燃气泄漏",
                  content="B2区幸福路小区的燃气管道老化漏气，最近几天一直有很浓的燃气味，大家担心会发生燃气泄漏爆炸，"
                          "小区物业不管，请相关部门尽快派人检查处理。")


def test_a_burst_about_one_place_is_an_alert_and_one_incident_in_one_department(watch_stack: Stack) -> None:
    """Ten complaints about one gas smell within seconds: a surge and an incident, each an
    alert within two minutes; the incident is held by the department the router sent the
    clearest one to, and the nine it sent to the triage desk join it there (并案)."""
    bodies = [HOLDER, *paraphrases(GAS, "B2区幸福路小区", 9, seed=1)]
    started = time.monotonic()
    with watch_stack.client() as client:
        # at once, as a burst comes: all ten within one of the test's 4-second windows
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            ids = [i for chunk in pool.map(lambda b: post_all(client, [b]), bodies) for i in chunk]

        def both() -> dict[str, dict[str, Any]] | None:
            found = {a["kind"]: a for a in alerts(watch_stack) if set(a["petition_ids"]) & set(ids)}
            return found if {"surge", "cluster"} <= set(found) else None

        found = wait_for(both, timeout=120, interval=0.5)
        took = time.monotonic() - started
        assert took < 120
        surge, cluster = found["surge"], found["cluster"]
        assert surge["area"] in ("430202", "430200", "430000") and surge["count"] >= 4
        assert surge["expected"] is not None and surge["expected"] < surge["count"]
        assert cluster["area"] == "430202"

        def gathered() -> dict[str, Any] | None:
            alert = next((a for a in alerts(watch_stack) if a["alert_id"] == cluster["alert_id"]), None)
            return alert if alert is not None and set(ids) <= set(alert["petition_ids"]) else None

        cluster = wait_for(gathered, timeout=60, interval=0.5)
        assert cluster["count"] == len(ids) and cluster["department_code"] == "B2-HOUSING"

        def departments() -> set[str] | None:
            now = {(client.get(f"/v1/petitions/{pid}").json().get("department") or {}).get("code") for pid in ids}
            return now if now == {cluster["department_code"]} else None

        wait_for(departments, timeout=60, interval=0.5)
        moved = client.get(f"/v1/petitions/{ids[-1]}").json()
        assert moved["rule"].startswith("merge:") and moved["incidents"]
        assert [t["event"] for t in moved["timeline"]].count("reassigned") >= 1


def test_killing_the_watch_mid_window_loses_no_window_state(watch_stack: Stack) -> None:
    place, district = "C1区和平路社区", "430301"
    first, second = paraphrases(WAGES, place, 2, seed=3), paraphrases(WAGES, place, 3, seed=4)
    with watch_stack.client() as client:
        before = post_all(client, first)

        def counted() -> dict[str, Any] | None:
            keys = watch_keys(watch_stack, district)
            day = [w for w in keys["windows"] if w["window"] == "day" and set(before) <= set(w["petition_ids"])]
            return day[0] if day and keys["incidents"] else None

        day = wait_for(counted, timeout=60, interval=0.5)
        watch_stack.kill("watch")
        watch_stack.start("watch")
        restored = watch_keys(watch_stack, district)
        [again] = [w for w in restored["windows"] if w["window"] == "day" and w["category"] == day["category"]]
        assert again["count"] == day["count"] and again["petition_ids"] == day["petition_ids"]
        assert any(set(before) <= set(i["petition_ids"]) for i in restored["incidents"])
        after = post_all(client, second)

    def whole() -> dict[str, Any] | None:
        found = [a for a in alerts(watch_stack)
                 if a["kind"] == "cluster" and set(before + after) <= set(a["petition_ids"])]
        return found[0] if found else None

    cluster = wait_for(whole, timeout=60, interval=0.5)
    assert cluster["count"] == 5
    days = [w for w in watch_keys(watch_stack, district)["windows"] if w["window"] == "day"]
    seen = [p for w in days for p in w["petition_ids"]]
    # each counted once (the background may have written from C1区 today too)
    assert set(before + after) <= set(seen) and len(seen) == len(set(seen))
    assert all(w["count"] == len(w["petition_ids"]) for w in days)


def _keys_everywhere(stack: Stack, area: str, names: list[str]) -> list[dict[str, Any]]:
    """The day windows about `area` that each running watch instance holds (its partitions)."""
    found = []
    for name in names:
        try:
            body = httpx.get(f"{stack.health_url(name)}/watch/keys", params={"area": area}, timeout=5).json()
        except httpx.HTTPError:
            continue
        found += [w for w in body.get("windows", []) if w["window"] == "day"]
    return found


def test_window_state_moves_with_its_partitions_when_instances_join_and_leave(watch_stack: Stack) -> None:
    """A second watch instance joins (a rebalance hands it half the partitions, their state read
    back from the changelogs), then the first dies: the survivor holds every window, each
    petition counted once, and goes on counting."""
    place, district = "C1区建设路社区", "430301"
    first, second = paraphrases(WAGES, place, 2, seed=5), paraphrases(WAGES, place, 2, seed=6)
    with watch_stack.client() as client:
        before = post_all(client, first)
    counted = wait_for(lambda: [w for w in _keys_everywhere(watch_stack, district, ["watch"])
                                if set(before) <= set(w["petition_ids"])], timeout=60, interval=0.5)
    [window] = counted
    [joined] = watch_stack.add_instances("watch", 1)
    watch_stack.start(joined)
    try:
        def held_once(names: list[str]) -> list[dict[str, Any]] | None:
            days = [w for w in _keys_everywhere(watch_stack, district, names) if w["category"] == window["category"]]
            return days if len(days) == 1 and set(window["petition_ids"]) <= set(days[0]["petition_ids"]) else None

        # after the rebalance the window is on exactly one of the two, whole
        wait_for(lambda: held_once(["watch", joined]), timeout=90, interval=1)
        watch_stack.kill("watch")
        [survived] = wait_for(lambda: held_once([joined]), timeout=120, interval=1)
        assert survived["count"] == len(survived["petition_ids"])
        with watch_stack.client() as client:
            after = post_all(client, second)
        grown = wait_for(lambda: (d := held_once([joined])) and set(after) <= set(d[0]["petition_ids"]) and d,
                         timeout=90, interval=1)
        ids = grown[0]["petition_ids"]
        assert len(ids) == len(set(ids)) == grown[0]["count"]
        assert set(window["petition_ids"]) | set(after) <= set(ids)
    finally:
        watch_stack.kill(joined)
        watch_stack.start("watch")
