"""The demo load generator's guard rails and its behaviour against a fake API."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import httpx
import pytest

from deploy import demo


def test_refuses_anything_but_loopback() -> None:
    assert demo.parse_args(["--base-url", "http://127.0.0.1:8080"]).base_url
    assert demo.parse_args(["--base-url", "http://localhost:18080"]).base_url
    for url in ("http://10.0.0.5:8080", "https://example.org"):
        with pytest.raises(SystemExit):
            demo.parse_args(["--base-url", url])
    with pytest.raises(SystemExit):
        demo.parse_args(["--kafka-bootstrap", "kafka.example.org:9092", "--poison", "1"])
    with pytest.raises(SystemExit):
        demo.parse_args(["--rate", "500"])


def test_period_ids_match_the_zero_report_api() -> None:
    day = date(2026, 11, 20)
    assert demo.period_id("daily", day) == "2026-11-20"
    assert demo.period_id("weekly", day) == "2026-W47"
    assert demo.period_id("half_monthly", day) == "2026-11-H2"
    assert demo.period_id("monthly", day) == "2026-11"


def test_written_examples_when_no_data(tmp_path: Path) -> None:
    assert demo.load_texts(tmp_path, 10, random.Random(1)) == list(demo.EXAMPLES)
    (tmp_path / "petitions-unlabeled.csv").write_text("id,title,content,received_at\n1,标题,内容,2019/1/1 10:00:00\n", "utf-8")  # noqa: E501 - Chinese text counts two columns a character
    assert demo.load_texts(tmp_path, 10, random.Random(1)) == [("标题", "内容")]


def test_departments_act_on_what_they_hold_and_missing_endpoints_are_tolerated() -> None:
    posted: list[tuple[str, dict]] = []
    petitions: dict[str, dict] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/petitions":
            pid = f"p{len(petitions)}"
            petitions[pid] = {"id": pid, "status": "assigned", "department": {"code": "A-HOUSING"}}
            return httpx.Response(202, json={"id": pid, "tracking_code": "XF", "status": "submitted"})
        if request.method == "GET" and path.startswith("/v1/petitions/"):
            return httpx.Response(200, json=petitions[path.rsplit("/", 1)[1]])
        if request.method == "POST" and path.endswith("/actions"):
            posted.append((path, json.loads(request.content)))
            return httpx.Response(202, json={})
        return httpx.Response(404, json={"error": "not_found"})

    with httpx.Client(base_url="http://127.0.0.1:1", transport=httpx.MockTransport(handler)) as client:
        d = demo.Demo(client=client, rng=random.Random(3), texts=list(demo.EXAMPLES), backdated_share=0.5)
        for i in range(30):
            d.submit(float(i))
        for _ in range(20):
            d.act(1000.0, budget=10)
        d.zero_reports(date(2026, 11, 20))
    assert d.tally["submitted"] == 30
    assert posted and all(body["department"] == "A-HOUSING" for _, body in posted)
    assert all(body["note"] for _, body in posted if body["action"] == "return")
    assert d.tally["zero_report:endpoint_missing"] == 1
