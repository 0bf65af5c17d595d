"""`petitionctl classify` answers what the router decides: the same petition, built here as the
router would receive it, decided by ``services.router.planning.initial_decision`` with the
router's classifier, table and threshold, gets the department, rule, category and confidence
the command prints (the command used to re-implement the rule and had drifted from it)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from petitionctl.cli import main
from services.router.config import GAZETTEER, ROUTING, load_classifier, load_routing_table
from services.router.domain.keywords import Prediction
from services.router.domain.routing import RoutingTable
from services.router.planning import initial_decision
from shared.events import Channel, Kind, Location, PetitionSubmitted
from shared.settings import load_settings

NOISE = ("小区噪音扰民", "夜间施工噪音严重，影响休息")


@pytest.fixture(scope="module")
def router() -> tuple[Any, RoutingTable, float]:
    """The router's classifier, routing table and triage threshold (as services/router/app.py)."""
    settings = load_settings()
    table = load_routing_table(settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER)
    threshold = table.triage_threshold if table.triage_threshold is not None else settings.triage_threshold
    return load_classifier(settings.classifier), table, threshold


def run_cli(lines: list[dict[str, Any] | str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[dict[str, Any]]]:
    text = "".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    monkeypatch.setattr("sys.stdout", out)
    rc = main(["classify"])
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


def routed(
    router: tuple[Any, RoutingTable, float], title: str, content: str, *, kind: Kind | None = None,
    admin_code: str | None = None, address: str | None = None, persons: int = 1,
    channel: Channel = Channel.HOTLINE,
) -> dict[str, Any]:
    """What the router decides for this petition, in the command's output shape."""
    classifier, table, threshold = router
    now = datetime.now(UTC)
    event = PetitionSubmitted(
        event_id=uuid.uuid4(), occurred_at=now, petition_id="p-1", tracking_code="XF-1", title=title,
        content=content, channel=channel, kind=kind, location=Location(admin_code=admin_code, address=address),
        persons=persons, received_at=now,
    )
    p = classifier.predict([(event.title, event.content)])[0]
    prediction = Prediction(p.category, float(p.confidence))
    decision, _source = initial_decision(event, prediction, table, threshold)
    return {"category": prediction.category, "confidence": round(prediction.confidence, 4),
            "department": decision.department.code, "rule": decision.rule}


def test_the_command_decides_as_the_router(
    router: tuple[Any, RoutingTable, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        # the jurisdiction only in location.address (the drift: the command left it out)
        ({"title": NOISE[0], "content": NOISE[1], "location": {"address": "A市A3区某路1号"}},
         {"address": "A市A3区某路1号"}),
        # an accusation of a bare unit name, its place in the address: never the accused unit
        ({"title": "举报住建局不作为", "content": "小区电梯长期故障，住建局收受开发商好处不处理",
          "kind": "accusation", "location": {"address": "A市A3区某小区"}},
         {"kind": Kind.ACCUSATION, "address": "A市A3区某小区"}),
        # a structured admin_code wins over the place in the text
        ({"title": f"A3区的{NOISE[0]}", "content": NOISE[1], "location": {"admin_code": "430205"}},
         {"admin_code": "430205"}),
        # a group petition by visit, and the plain case
        ({"title": "A3区某小区拆迁安置房迟迟不能交房", "content": "我们三十户拆迁户，安置房至今未建成",
          "persons": 30, "channel": "visit"},
         {"persons": 30, "channel": Channel.VISIT}),
        ({"title": NOISE[0], "content": NOISE[1]}, {}),
    ]
    rc, got = run_cli([{"id": f"c{n}", **line} for n, (line, _) in enumerate(cases)], monkeypatch)
    assert rc == 0
    for n, ((line, kwargs), result) in enumerate(zip(cases, got, strict=True)):
        assert result == {"id": f"c{n}", **routed(router, line["title"], line["content"], **kwargs)}, line
    address, accusation, code, group, plain = got
    # what the router decides here, spelled out (the command had answered otherwise)
    assert (address["department"], address["rule"]) == ("A3-ENVIRONMENT", "environment@district")
    assert (plain["department"], plain["rule"]) == ("P-ENVIRONMENT", "environment@province")
    assert (accusation["department"], accusation["rule"]) == ("A-GOV", "accusation:above:A3-HOUSING")
    assert code["department"] == "B5-ENVIRONMENT"
    assert group["department"] == "A3-HOUSING"


def test_a_top_level_admin_code_is_still_read(
    router: tuple[Any, RoutingTable, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = {"id": "x", "title": f"A3区的{NOISE[0]}", "content": NOISE[1], "admin_code": "430205"}
    rc, (result,) = run_cli([line], monkeypatch)
    assert rc == 0
    assert result == {"id": "x", **routed(router, line["title"], line["content"], admin_code="430205")}


def test_lines_the_router_could_not_receive_get_an_error_at_their_place(monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"id": "ok", "title": NOISE[0], "content": NOISE[1]}
    rc, got = run_cli([
        good,
        {"id": "k", "title": "x", "content": "y", "kind": "bogus"},
        {"id": "c", "title": "x", "content": "y", "channel": "pigeon"},
        {"id": "p", "title": "x", "content": "y", "persons": 0},
        {"id": "l", "title": "x", "content": "y", "location": {"admin_code": 5}},
        {"id": "s", "title": "x", "content": "y", "location": "A3区"},
        "not json",
        good,
    ], monkeypatch)
    assert rc == 1
    assert [r["id"] for r in got] == ["ok", None, None, None, None, None, None, "ok"]
    errors = [r["error"] for r in got[1:-1]]
    assert errors[0].startswith("line 2: kind:")
    assert errors[1].startswith("line 3: channel:")
    assert errors[2].startswith("line 4: persons")
    assert errors[3].startswith("line 5: location.admin_code:")
    assert errors[4].startswith("line 6: location")
    assert errors[5].startswith("line 7:")
    assert all("\n" not in e for e in errors)
