"""Demo load: a few minutes of realistic hotline traffic through the public HTTP API.

It plays the operators and the departments at once, so every dashboard has something to show:

* petitions on every channel, some with a kind, some group petitions (集体访), a few blank
  ones an operator sent by mistake (rejected with 422), and some entered late with an earlier
  ``received_at`` (letters and visits keyed in days after they
  came in: their deadlines are already close or past, so warnings and breaches happen now);
* department actions on what was routed to them: ``accept`` (签收), ``resolve`` (办结) and
  ``return`` (退单, with a reason), using the department ``GET /v1/petitions/{id}`` shows;
* zero reports (零报告) of the units that owe them, once ``POST /v1/zero-reports`` exists
  (a 404 or 405 from an endpoint that is not there yet is counted and tolerated);
* with ``--poison N`` (and ``--kafka-bootstrap``), N undecodable messages written straight to
  ``petition.submitted``, so the dead-letter path and its alert can be seen.

Texts come from the citizen messages in ``$PETITION_DATA_DIR`` (default ``../shared/data``),
read at run time and never copied; without them a handful of written examples are used.
Bounded in time (``--duration``) and count (``--max-petitions``), and it talks to loopback
addresses only.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from deploy.callers import NaturalCaller

REPO = Path(__file__).resolve().parent.parent
LOCAL = ZoneInfo("Asia/Shanghai")
MAX_DURATION_SECONDS = 3600
MAX_PETITIONS = 10_000
DATA_FILES = ("petitions-unlabeled.csv", "petitions-labeled.csv", "petitions-with-replies.csv")
OBLIGATIONS = REPO / "services" / "escalation" / "data" / "zero-report-obligations.yaml"

#: (channel, weight): most petitions come in by phone, few by fax.
CHANNELS = (("hotline", 50), ("online", 22), ("app", 12), ("letter", 8), ("visit", 6), ("fax", 2))
#: (kind, weight); None leaves the kind to the router.
KINDS = ((None, 70), ("suggestion", 12), ("claim", 12), ("accusation", 6))

#: Written for this demo (not taken from any data set): used when no CSV is available.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("A3区某小区电梯坏了三个月无人维修",
     "我是A市A3区某小区业主，电梯坏了三个月，物业一直不修，老人上下楼很困难，请督促物业尽快维修。"),
    ("K1区一所中学周末组织收费补课",
     "K市K1区某中学周末组织学生补课并按课时收费，家长负担重，请教育部门调查处理。"),
    ("A5区夜间渣土车噪音扰民",
     "A市A5区某路段每天夜里十一点以后渣土车来回行驶，噪音很大，附近居民无法休息，希望限制夜间通行。"),
    ("B2区公交站台被占用为临时停车场",
     "B市B2区某公交站台附近长期被私家车占用，乘客只能站在机动车道上候车，存在安全隐患。"),
    ("M市某工地拖欠农民工工资",
     "我们在M市某建筑工地干了半年活，包工头拖欠工资至今未付，多次讨要无果，请人社部门帮助追讨。"),
    ("A市某餐馆后厨卫生状况差",
     "A市A1区某餐馆后厨卫生条件很差，有老鼠出没，食材随意堆放在地上，请市场监管部门检查。"),
    ("D3区农村自来水经常停水",
     "D市D3区某村自来水经常无故停水，一停就是好几天，村民生活用水困难，希望尽快解决供水问题。"),
    ("建议在A2区学校门口增设人行横道",
     "A市A2区某小学门口车流量大，没有人行横道和信号灯，学生上下学过马路很危险，建议增设。"),
)

#: Too vague to place: the router sends these to the triage desk (人工分拨). Written for the demo.
VAGUE = (
    ("想问一下这个事情归谁管", "您好，我有个情况想反映，不太清楚应该找哪个部门，麻烦帮忙转给负责的单位。"),
    ("咨询", "请问怎么查询之前反映的问题的办理进度？"),
)

RETURN_NOTES = ("不属于本单位职责，请重新分派", "属地管理事项，应由所在区县办理", "诉求涉及多个部门，请协调分派")


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_texts(data_dir: Path, limit: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to `limit` (title, content) pairs sampled from the first data file found."""
    for name in DATA_FILES:
        path = data_dir / name
        if not path.is_file():
            continue
        try:
            with path.open(newline="", encoding="utf-8") as f:
                rows = [
                    (r["title"].strip()[:200], r["content"].strip()[:20000])
                    for r in csv.DictReader(f)
                    if (r.get("title") or "").strip() and (r.get("content") or "").strip()
                ]
        except (OSError, KeyError, csv.Error, UnicodeDecodeError):
            continue
        if rows:
            return rng.sample(rows, min(limit, len(rows)))
    return list(EXAMPLES)


def weighted(rng: random.Random, options: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*options, strict=True)
    return rng.choices(values, weights=weights)[0]


def period_id(cadence: str, day: date) -> str:
    """The period of `cadence` containing `day`, in the ids the zero-report API takes."""
    if cadence == "daily":
        return day.isoformat()
    if cadence == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if cadence == "half_monthly":
        return f"{day:%Y-%m}-H{1 if day.day <= 15 else 2}"
    return f"{day:%Y-%m}"


def reporting_units() -> list[tuple[str, str]]:
    """(unit, cadence) of the zero-report obligations, from the escalation data when present."""
    try:
        import yaml

        data = yaml.safe_load(OBLIGATIONS.read_bytes())
        units = [(o["unit"], o.get("cadence", "daily")) for o in data.get("obligations", [])]
        if units:
            return units
    except (OSError, ImportError, AttributeError, KeyError, TypeError, ValueError):
        pass
    return [("A3-S01", "daily"), ("A3-GOV", "weekly"), ("A-HOUSING", "half_monthly")]


@dataclass
class Tracked:
    """A petition the demo submitted, and what its department has done so far."""

    id: str
    created: float
    act_after: float
    status: str = "submitted"
    department: str | None = None


@dataclass
class Demo:
    client: httpx.Client
    rng: random.Random
    texts: list[tuple[str, str]]
    backdated_share: float
    tally: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    open: list[Tracked] = field(default_factory=list)

    def submit(self, now: float) -> None:
        title, content = self.rng.choice(VAGUE if self.rng.random() < 0.05 else self.texts)
        channel = weighted(self.rng, CHANNELS)
        body: dict[str, Any] = {"title": title, "content": content, "channel": channel}
        kind = weighted(self.rng, KINDS)
        if kind:
            body["kind"] = kind
        if self.rng.random() < 0.05:
            body["persons"] = self.rng.randint(5, 40)
        if self.rng.random() < 0.6:
            body["petitioner"] = {"phone": f"138{self.rng.randrange(10**8):08d}"}
        if self.rng.random() < self.backdated_share:
            # keyed in late: received days ago, so its deadlines are near or past already
            days = self.rng.choice((3, 8, 20, 40, 70))
            body["received_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        self.attempts += 1
        if self.attempts % 25 == 3:  # the 3rd, 28th, ... form goes out blank by mistake: a 422
            body["content"] = "  "
        r = self.client.post("/v1/petitions", json=body, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"})
        if r.status_code == 202:
            self.tally["submitted"] += 1
            self.tally[f"submitted:{channel}"] += 1
            self.open.append(Tracked(r.json()["id"], now, now + self.rng.uniform(2.0, 8.0)))
        else:
            self.tally[f"submit:http_{r.status_code}"] += 1

    def act(self, now: float, budget: int = 3) -> None:
        """Let up to `budget` departments act on petitions that have waited long enough."""
        due = [t for t in self.open if t.act_after <= now][:budget]
        for item in due:
            r = self.client.get(f"/v1/petitions/{item.id}")
            if r.status_code != 200:
                self.tally[f"get:http_{r.status_code}"] += 1
                item.act_after = now + 5
                continue
            body = r.json()
            item.status = body["status"]
            item.department = (body.get("department") or {}).get("code")
            if item.status == "resolved" and item.department is not None:
                # the hotline calls back (回访): most are satisfied, some reopen (重办), a few unreachable
                roll = self.rng.random()
                call: dict[str, object] = (
                    {"reached": False} if roll < 0.1 else
                    {"resolved": roll < 0.85, "satisfaction": "satisfied" if roll < 0.65 else
                     "basically_satisfied" if roll < 0.85 else "unsatisfied"})
                r = self.client.post(f"/v1/petitions/{item.id}/actions", json={"action": "follow_up", **call})
                outcome = r.json().get("status") if r.status_code == 202 else f"http_{r.status_code}"
                self.tally[f"follow_up:{outcome}"] += 1
                if outcome in ("reopened", "resolved"):  # reopened: the department works on it again
                    item.act_after = now + self.rng.uniform(3.0, 10.0)
                else:
                    self.open.remove(item)
                continue
            if item.department is None or item.status not in ("assigned", "accepted"):
                if now - item.created > 180:
                    self.open.remove(item)
                else:
                    item.act_after = now + 3
                continue
            action = self._choose(item)
            if action is None:
                self.open.remove(item)  # left alone: its clocks run out on their own
                continue
            payload = {"action": action, "department": item.department, "note": ""}
            if action == "return":
                payload["note"] = self.rng.choice(RETURN_NOTES)
            elif action == "resolve":
                payload["note"] = "已联系诉求人并办结"
            else:
                payload["note"] = "已签收"
            r = self.client.post(f"/v1/petitions/{item.id}/actions", json=payload)
            self.tally[f"action:{action}" if r.status_code == 202 else f"action:{action}:http_{r.status_code}"] += 1
            if r.status_code == 202 and action == "return" and self.rng.random() < 0.3:
                # the returning department, not yet aware it lost the petition, tries again: 409
                late = self.client.post(f"/v1/petitions/{item.id}/actions",
                                        json={"action": "accept", "department": item.department, "note": "已签收"})
                self.tally[f"action:accept:stale_department:http_{late.status_code}"] += 1
            if r.status_code == 202:  # resolved: the follow-up call comes next
                item.act_after = now + self.rng.uniform(3.0, 10.0)
            else:
                self.open.remove(item)

    def _choose(self, item: Tracked) -> str | None:
        roll = self.rng.random()
        if item.status == "assigned":
            if item.department == "TRIAGE":
                return None  # the triage desk is a person; the demo leaves it to them
            if roll < 0.55:
                return "accept"
            if roll < 0.70:
                return "return"
            if roll < 0.85:
                return "resolve"
            return None
        return "resolve" if roll < 0.7 else None

    def zero_reports(self, today: date) -> None:
        units = reporting_units()
        for unit, cadence in units:
            body = {"unit": unit, "period": period_id(cadence, today), "incidents": []}
            r = self.client.post("/v1/zero-reports", json=body)
            if r.status_code in (404, 405):
                self.tally["zero_report:endpoint_missing"] += 1
                return
            self.tally["zero_report" if r.status_code < 300 else f"zero_report:http_{r.status_code}"] += 1
        # a supervisor looking at compliance and open 督办 (both lists need the unit)
        for unit, _cadence in units[:1]:
            for path in ("/v1/zero-reports", "/v1/supervision"):
                r = self.client.get(path, params={"unit": unit})
                self.tally[f"get {path}:{'ok' if r.status_code == 200 else r.status_code}"] += 1


def send_poison(bootstrap: str, count: int) -> int:
    """Write `count` undecodable messages to petition.submitted (they must be dead-lettered),
    as the broker's admin (its password file in the stack's secrets folder)."""
    from kafka import KafkaProducer

    from shared.kafka_client import admin_access, quiet_plaintext_sasl_warning
    from shared.settings import load_settings

    quiet_plaintext_sasl_warning()
    producer = KafkaProducer(**admin_access(load_settings(), bootstrap).options())
    try:
        for _ in range(count):
            producer.send("petition.submitted", key=b"demo-poison",
                          value=b"demo: not an event " + uuid.uuid4().hex.encode())
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)
    return count


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    data_dir = Path(args.data_dir)
    texts = load_texts(data_dir, 2000, rng)
    source = "written examples" if texts == list(EXAMPLES) else f"{len(texts)} messages from {data_dir}"
    duration = min(args.duration, MAX_DURATION_SECONDS)
    limit = min(args.max_petitions, MAX_PETITIONS)
    print(f"[demo] {args.base_url}: {duration:.0f}s at {args.rate}/s (at most {limit} petitions), texts: {source}",
          file=sys.stderr, flush=True)
    transport = httpx.HTTPTransport(retries=2)
    caller = NaturalCaller(Path(args.run_dir))
    with httpx.Client(base_url=args.base_url, timeout=10, transport=transport, trust_env=False,
                      auth=caller) as client:
        demo = Demo(client=client, rng=rng, texts=texts, backdated_share=args.backdated_share)
        if args.poison and args.kafka_bootstrap:
            demo.tally["poison"] += send_poison(args.kafka_bootstrap, args.poison)
        start = time.monotonic()
        end = start + duration
        next_submit = start
        next_zero = start + min(10.0, duration / 3)
        last_report = start
        while True:
            now = time.monotonic()
            if now >= end:
                break
            try:
                if now >= next_submit and demo.tally["submitted"] < limit:
                    demo.submit(now)
                    next_submit += rng.expovariate(args.rate)
                demo.act(now)
                if now >= next_zero:
                    demo.zero_reports(datetime.now(LOCAL).date())
                    next_zero = now + max(60.0, duration / 2)
            except httpx.HTTPError as exc:
                demo.tally[f"error:{type(exc).__name__}"] += 1
                time.sleep(1.0)
            if now - last_report >= 30:
                last_report = now
                print(f"[demo] {now - start:4.0f}s submitted={demo.tally['submitted']} open={len(demo.open)}",
                      file=sys.stderr, flush=True)
            wait = min(next_submit, end) - time.monotonic()
            time.sleep(min(max(wait, 0.0), 0.25))
    for key, value in sorted(demo.tally.items()):
        print(f"{key}\t{value}")
    return 0 if demo.tally["submitted"] else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--base-url", default=os.environ.get("PETITION_DEMO_BASE_URL", "http://127.0.0.1:8080"),
                   help="intake's HTTP API (loopback only)")
    p.add_argument("--duration", type=float, default=180.0, help=f"seconds to run (at most {MAX_DURATION_SECONDS})")
    p.add_argument("--rate", type=float, default=1.0, help="petitions per second (Poisson arrivals)")
    p.add_argument("--max-petitions", type=int, default=1000,
                   help=f"stop submitting after this many (at most {MAX_PETITIONS})")
    p.add_argument("--backdated-share", type=float, default=0.15,
                   help="share of petitions keyed in days after they were received")
    p.add_argument("--data-dir", default=os.environ.get("PETITION_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--kafka-bootstrap", default=None, help="broker for --poison (loopback only)")
    p.add_argument("--poison", type=int, default=0, help="undecodable messages to write to petition.submitted")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--run-dir", default=os.environ.get("PETITION_RUN_DIR", str(REPO / ".run")),
                   help="the stack's run folder: its key ring signs the demo's operators and departments")
    args = p.parse_args(argv)
    if not is_loopback_url(args.base_url):
        p.error("--base-url must be a loopback address (127.0.0.1, ::1 or localhost)")
    if args.kafka_bootstrap and not is_loopback_url(f"kafka://{args.kafka_bootstrap}"):
        p.error("--kafka-bootstrap must be a loopback address")
    if not 0 < args.rate <= 50:
        p.error("--rate must be in (0, 50]")
    if args.duration <= 0 or args.max_petitions <= 0 or not 0 <= args.poison <= 100:
        p.error("--duration and --max-petitions must be positive, --poison at most 100")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
