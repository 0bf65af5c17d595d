"""Early warning on real data: surge detection and incident clustering over simulated days.

**Background**: the real citizen messages of ../shared/data (labelled, unlabelled and with
replies; never copied into the repo), classified by the router's own classifier and placed by
its gazetteer (the district or city named in the text, as the router does), replayed in a
random order as a Poisson stream of ``RATE`` petitions an hour over ``DAYS`` simulated days.

**Injected surges**: from day 3 on, bursts of paraphrased variants of one complaint in one
district (written templates: a gas smell, unpaid wages, demolition at night, a flooded road,
a school's fees; each variant reorders the complaint's clauses, swaps synonyms, changes the
opening, the details and the length), of sizes 4, 8, 16 and 32, each arriving within an hour.

**Measured**: for each threshold setting (hourly and daily windows, EWMA baseline, see
services/watch/domain/surges.py) the share of injected surges detected (an alert on the
surge's district or city and category, while it lasts), the detection delay (first petition →
alert), and false alarms per simulated day on the background alone; the clustering's pair
precision and recall on the injected variants (services/watch/domain/incidents.py); the
detector's and the clusterer's throughput (petitions/s, one process), and the memory of the
baselines per thousand keys.

Reproduce: ``.venv/bin/python -m bench watch`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.machine import describe

if TYPE_CHECKING:
    from services.watch.domain.surges import SurgePolicy

REPO = Path(__file__).resolve().parents[1]
DAYS = 7
RATE = 60.0  # background petitions per hour (about 1,400 a day, a mid-sized city's 12345)
SIZES = (4, 8, 16, 32)
PER_SIZE = 4

TEMPLATES = [
    ("燃气", ["{place}最近几天一直有很浓的燃气味", "尤其是早上和晚上特别明显", "大家担心会发生燃气泄漏爆炸",
              "已经打过燃气公司电话但没人来查", "请相关部门尽快派人检查处理"]),
    ("欠薪", ["{place}的建筑工地老板拖欠我们农民工工资", "已经拖了三个多月", "我们几十个工人一直讨不到钱",
              "快过年了家里等着用钱", "请劳动部门帮我们讨回工资"]),
    ("拆迁", ["{place}的拆迁工地每天晚上都在施工", "挖掘机和渣土车的噪音吵得居民无法休息", "还有强拆的情况",
              "补偿标准也没有公示", "请政府部门调查处理"]),
    ("积水", ["{place}门前的道路一下雨就严重积水", "积水深的地方能淹到膝盖", "行人和车辆都无法通行",
              "排水管道好像堵塞了", "希望市政部门尽快疏通排水"]),
    ("收费", ["{place}的学校违规向学生收取补课费和资料费", "每个学生要交好几百元", "不交就不让参加",
              "家长们意见很大", "请教育部门调查"]),
]
OPENINGS = ["", "你好，", "领导好，", "我是附近的居民，", "反映一个问题：", "您好，我想反映，"]
SYNONYMS = [("一直", "始终"), ("尽快", "赶紧"), ("处理", "解决"), ("请", "希望"), ("很浓的", "刺鼻的"),
            ("调查", "查处"), ("居民", "住户"), ("严重", "非常")]


def paraphrase(template: list[str], place: str, rng: random.Random) -> tuple[str, str]:
    clauses = [c.format(place=place) for c in template]
    head, rest = clauses[0], clauses[1:]
    rng.shuffle(rest)
    keep = [head, *rest[: rng.randint(2, len(rest))]]
    text = rng.choice(OPENINGS) + "，".join(keep) + "。"
    for a, b in SYNONYMS:
        if rng.random() < 0.4:
            text = text.replace(a, b)
    if rng.random() < 0.5:
        text += rng.choice(["已经反映多次了。", "希望尽快答复。", "谢谢！", f"我住在{rng.randint(1, 30)}栋。"])
    return keep[0][:20], text


@dataclass
class Item:
    at: float  # seconds since the start
    pid: str
    title: str
    content: str
    category: str | None
    areas: tuple[str, ...]  # the area tokens, lowest level first
    surge: int | None = None  # the injected surge it belongs to


def load_background(rng: random.Random) -> list[tuple[str, str]]:
    data = Path(os.environ.get("PETITION_DATA_DIR", REPO.parent / "shared" / "data"))
    texts: list[tuple[str, str]] = []
    for name in ("petitions-labeled.csv", "petitions-unlabeled.csv", "petitions-with-replies.csv"):
        path = data / name
        if path.exists():
            with path.open(encoding="utf-8-sig") as f:
                texts.extend((r["title"] or "", r["content"] or "") for r in csv.DictReader(f))
    rng.shuffle(texts)
    return texts


def build_stream(rng: random.Random, inject: bool) -> tuple[list[Item], list[dict]]:
    from services.router.config import GAZETTEER, ROUTING, load_classifier, load_routing_table

    table = load_routing_table(ROUTING, GAZETTEER)
    clf = load_classifier("model")
    texts = load_background(rng)
    items: list[Item] = []
    t, n = 0.0, 0
    horizon = DAYS * 86400
    while True:
        t += rng.expovariate(RATE / 3600)
        if t >= horizon:
            break
        title, content = texts[n % len(texts)]
        items.append(Item(t, f"b{n}", title, content, None, ()))
        n += 1
    surges = []
    if inject:
        districts = [a for a in table.gazetteer.areas() if a.level == "district"]
        k = 0
        for size in SIZES:
            for _ in range(PER_SIZE):
                topic, template = rng.choice(TEMPLATES)
                area = rng.choice(districts)
                start = rng.uniform(2 * 86400, horizon - 2 * 3600)
                street = rng.choice(["幸福", "和平", "建设", "人民"])
                place = f"{area.name}{street}路{rng.choice(['小区', '社区', '一带'])}"
                times = sorted(start + rng.uniform(0, 3600) for _ in range(size))
                for i, at in enumerate(times):
                    title, content = paraphrase(template, place, rng)
                    items.append(Item(at, f"s{k}-{i}", title, content, None, (), surge=k))
                surges.append({"id": k, "size": size, "topic": topic, "area": area.token, "start": times[0],
                               "end": times[-1]})
                k += 1
    items.sort(key=lambda x: x.at)
    predictions = clf.predict([(i.title, i.content) for i in items], with_scores=False)
    for item, p in zip(items, predictions, strict=True):
        item.category = p.category  # what petition.routed says, the triage desk's petitions too
        where, _ = table.gazetteer.resolve(None, f"{item.title} {item.content}")
        chain = []
        while where is not None:
            chain.append(where.token)
            where = table.gazetteer.by_code(where.parent) if where.parent else None
        item.areas = tuple(chain)
    for s in surges:
        members = [i for i in items if i.surge == s["id"]]
        s["category"] = max({i.category for i in members}, key=lambda c: sum(i.category == c for i in members))
    return items, surges


def detect(items: list[Item], policies: dict[str, SurgePolicy]) -> list[dict]:
    """The alerts the watch service raises on the stream: its own decisions
    (services.watch.domain.watcher: observe each petition; tick the keys with an open alert
    every ten simulated minutes, which is when the service's ticks can close one), the
    watch's origin at the stream's start."""
    from services.watch.domain.watcher import SurgeState, observe, tick

    alerts: list[dict] = []
    origin = 0.0

    def apply(changes: list, name: str, opened: dict[str, dict], token: str, category: str, at: float) -> None:
        for change in changes:
            aid = change.alert.alert_id
            if change.what == "opened":
                opened[aid] = {"window": name, "area": token, "category": category, "opened_at": at,
                               "count": change.alert.count, "expected": change.alert.expected}
                alerts.append(opened[aid])
            elif change.what == "closed" and aid in opened:
                opened.pop(aid)["closed_at"] = change.closed_at

    for name, policy in policies.items():
        states: dict[tuple[str, str], SurgeState] = {}
        opened: dict[str, dict] = {}
        next_tick = 600.0

        for item in items:
            while next_tick <= item.at:
                for key in [k for k, v in states.items() if v.alert is not None]:
                    state, change = tick(states[key], next_tick, policy, origin=origin, keep=True)
                    states[key] = state or states[key]
                    apply([change] if change else [], name, opened, key[0], key[1], next_tick)
                next_tick += 600.0
            for token in item.areas or ("P",):
                key = (token, item.category or "-")
                state, changes = observe(states.get(key, SurgeState()), item.pid, item.at, policy,
                                         key=f"{name}|{token}|{key[1]}", origin=origin)
                states[key] = state
                apply(changes, name, opened, token, key[1], item.at)
    return alerts


def score(alerts: list[dict], surges: list[dict]) -> tuple[float, list[float], int]:
    found, delays, true_alerts = 0, [], set[int]()
    for s in surges:
        hits = [a for a in alerts if a["category"] == s["category"] and a["area"] in (s["area"], s["area"][:1])
                and s["start"] <= a["opened_at"] <= s["end"] + 3600]
        if hits:
            found += 1
            delays.append(min(a["opened_at"] for a in hits) - s["start"])
            true_alerts.update(id(a) for a in hits)
    return found / len(surges) if surges else 0.0, delays, len(alerts) - len(true_alerts)


def clustering(items: list[Item], policy: object = None) -> tuple[float, float, float, float, float]:
    """Pair precision and recall on the injected variants, petitions/s, the share of injected
    surges that became an incident alert (``alert_size`` petitions of one incident) and the
    incident alerts per day made of background petitions alone."""
    from services.watch.domain.incidents import ClusterPolicy, Clusters

    policy = policy if isinstance(policy, ClusterPolicy) else ClusterPolicy()
    clusters = Clusters(policy)
    incident_of: dict[str, str] = {}
    started = time.perf_counter()
    for item in items:
        placed = clusters.place(item.pid, f"{item.title} {item.content}", item.at,
                                item.areas[0] if item.areas else None)
        if placed is not None:
            incident_of[item.pid] = placed.incident
            for moved in placed.moved:  # incidents this petition joined together
                incident_of[moved] = placed.incident
    rate = len(items) / (time.perf_counter() - started)
    injected = [i for i in items if i.surge is not None and i.pid in incident_of]
    same_pairs = together = 0
    for a_i, a in enumerate(injected):
        for b in injected[a_i + 1:]:
            if a.surge == b.surge:
                same_pairs += 1
                together += incident_of[a.pid] == incident_of[b.pid]
    recall = together / same_pairs if same_pairs else 0.0
    by_incident: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.pid in incident_of:
            by_incident[incident_of[item.pid]].append(item)
    linked = correct = 0
    for members in by_incident.values():
        if not any(m.surge is not None for m in members):
            continue
        for a_i, a in enumerate(members):
            for b in members[a_i + 1:]:
                linked += 1
                correct += a.surge is not None and a.surge == b.surge
    precision = correct / linked if linked else 0.0
    alerted = [m for m in by_incident.values() if len(m) >= policy.alert_size]
    surges = {i.surge for i in items if i.surge is not None}
    found = {m[0].surge for m in alerted if m[0].surge is not None and all(x.surge == m[0].surge for x in m)}
    noise = sum(all(x.surge is None for x in m) for m in alerted)
    return precision, recall, rate, len(found) / len(surges) if surges else 0.0, noise / DAYS


def main(argv: list[str]) -> int:
    from services.watch.config import load_policies
    from services.watch.domain.incidents import ClusterPolicy
    from services.watch.domain.surges import SurgePolicy
    from services.watch.domain.watcher import SurgeState, observe

    print(describe())
    if not load_background(random.Random(0)):
        print("skipped: no citizen messages in ../shared/data")
        return 0
    background, _ = build_stream(random.Random(1), inject=False)
    injected, surges = build_stream(random.Random(1), inject=True)
    print(f"background: {len(background)} petitions over {DAYS} simulated days ({RATE:.0f}/h); injected "
          f"{len(surges)} surges of sizes {', '.join(map(str, SIZES))} ({PER_SIZE} each), "
          f"{sum(i.surge is not None for i in injected)} petitions")
    shipped, _clusters = load_policies()
    print("\nsurges: hourly and daily windows, EWMA baseline (alpha 0.1), the watch service's own decisions "
          "(warm-up from the watch's origin; the first row is services/watch/data/watch.yaml):")
    print("| hourly z / min / warm-up | daily z / min / warm-up | found | found by size 4/8/16/32 "
          "| delay p50 / max (min) | false alarms per day, hourly + daily (background alone) |")
    print("|---|---|---|---|---|---|")
    rows = [shipped] + [
        {"hour": SurgePolicy(3600, m, z, warmup_windows=24), "day": SurgePolicy(86400, dm, dz, warmup_windows=4)}
        for z, m in ((4.0, 4), (5.0, 4), (5.0, 6), (6.0, 6)) for dz, dm in ((6.0, 15), (8.0, 20))
    ]
    for policies in rows:
        noise = detect(background, policies)
        alerts = detect(injected, policies)
        share, delays, _ = score(alerts, surges)
        by_size = [score(alerts, [s for s in surges if s["size"] == size])[0] for size in SIZES]
        delays.sort()
        p50 = delays[len(delays) // 2] / 60 if delays else float("nan")
        worst = delays[-1] / 60 if delays else float("nan")
        h, d = policies["hour"], policies["day"]
        print(f"| {h.z:g} / {h.min_count} / {h.warmup_windows} | {d.z:g} / {d.min_count} / {d.warmup_windows} "
              f"| {share:.0%} | {' / '.join(f'{x:.0%}' for x in by_size)} "
              f"| {p50:.1f} / {worst:.1f} | {sum(a['window'] == 'hour' for a in noise) / DAYS:.2f} + "
              f"{sum(a['window'] == 'day' for a in noise) / DAYS:.2f} |")

    print("\nincidents (MinHash, 64 permutations, LSH, 3-day window, one place per incident): pairs of the "
          "injected variants; an incident of `alert size` petitions is an alert. The background's incident alerts are "
          "the data's own repeated complaints (one text sent again and again, one group's many letters), which the "
          "replay brings days apart instead of the months the data spans:")
    print("| shingle | Jaccard threshold | alert size | precision | recall | surges found as incidents "
          "| incident alerts per day (background alone) | petitions/s (one process) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, threshold, size in ((2, 0.3, 3), (2, 0.4, 3), (2, 0.4, 4), (2, 0.4, 5), (2, 0.5, 3), (3, 0.4, 3)):
        policy = ClusterPolicy(threshold=threshold, shingle=k, alert_size=size)
        precision, recall, rate, found, incident_noise = clustering(injected, policy)
        print(f"| {k} | {threshold} | {size} | {precision:.3f} | {recall:.3f} | {found:.0%} | {incident_noise:.2f} "
              f"| {rate:,.0f} |")

    started = time.perf_counter()
    detect(injected, shipped)
    spent = time.perf_counter() - started
    updates = sum(max(len(i.areas), 1) for i in injected) * len(shipped)
    print(f"\nthroughput, one process: surge detector {len(injected) / spent:,.0f} petitions/s "
          f"({updates / spent:,.0f} window updates/s); incidents: the table's last column")
    from services.router.config import load_classifier

    clf = load_classifier("model")
    texts = [(i.title, i.content) for i in injected[:5000]]
    started = time.perf_counter()
    clf.predict(texts, with_scores=False)
    print(f"the router's classifier on the same texts: {len(texts) / (time.perf_counter() - started):,.0f} "
          "petitions/s (its CPU-bound stage, one process)")

    hour = shipped["hour"]
    tracemalloc.start()
    states = {}
    for i in range(1000):  # a key with a window of a few petitions, as most active keys are
        state = SurgeState()
        for j in range(i % 5 + 1):
            state, _ = observe(state, f"XF-{i}-{j}", 3600.0 * 100 + j, hour, key=f"hour|43{i:04d}|城乡建设", origin=0.0)
        states[f"hour|43{i:04d}|城乡建设"] = json.dumps(state.to_data(), separators=(",", ":")).encode()
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stored = sum(len(k) + len(v) for k, v in states.items())
    print(f"surge table: {stored / 1024:.0f} KiB of keys and values per 1,000 active keys "
          f"(what the changelog holds), {used / 1024:.0f} KiB in memory as the service's table holds them")
    return 0
