"""The routed event says whether it went to the triage desk; intake's read model believes it.

The routing table configures the desk's code, so neither side may compare with "TRIAGE".
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from services.intake.readmodel.handlers import handlers as readmodel_handlers
from services.router.config import DATA
from services.router.domain.keywords import Prediction
from services.router.domain.routing import RoutingTable
from services.router.planning import encode, initial_decision, initial_routing
from shared.events import Channel, Location, PetitionRouted, PetitionSubmitted, parse_event
from shared.reference.places import Gazetteer
from tests.fakes.intake import FakeReadModelStore, IntakeDb

GOLDEN = Path(__file__).parent / "golden" / "petition.routed.json"
AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    """The demo table with its triage desk under another code."""
    data = copy.deepcopy(yaml.safe_load((DATA / "routing.yaml").read_text(encoding="utf-8")))
    data["triage_department"]["code"] = "DESK-9"
    gazetteer = Gazetteer.from_data(yaml.safe_load((DATA / "gazetteer.yaml").read_text(encoding="utf-8")))
    return RoutingTable.from_data(data, gazetteer, "v-desk-9")


def _routed(table: RoutingTable, prediction: Prediction) -> PetitionRouted:
    submitted = PetitionSubmitted(
        event_id=uuid.UUID(int=7), occurred_at=AT, petition_id="p-triage", tracking_code="XF-TRIAGE1",
        title="小区电梯坏了", content="A3区某小区电梯坏了三个月一直不修。", channel=Channel.HOTLINE,
        received_at=AT, location=Location(), kind=None, persons=1, petitioner_key=None,
    )
    decision, source = initial_decision(submitted, prediction, table, 0.5)
    encoded = encode(submitted, initial_routing(submitted, prediction, decision, source), AT, table)
    routed = parse_event(encoded.messages[0].value)
    assert isinstance(routed, PetitionRouted)
    return routed


def test_a_petition_routed_to_the_tables_triage_desk_says_so(table: RoutingTable) -> None:
    routed = _routed(table, Prediction("城乡建设", 0.1))  # below the threshold: the desk
    assert routed.department_code == "DESK-9"
    assert routed.triage is True


def test_a_petition_routed_to_a_department_says_it_is_not_triage(table: RoutingTable) -> None:
    routed = _routed(table, Prediction("城乡建设", 0.99))
    assert routed.department_code != "DESK-9"
    assert routed.triage is False


def test_a_routed_event_from_before_the_flag_still_parses_without_it() -> None:
    raw = json.loads(GOLDEN.read_text(encoding="utf-8"))
    del raw["triage"]
    routed = parse_event(json.dumps(raw))
    assert isinstance(routed, PetitionRouted)
    assert routed.triage is None


def _status_recorded(code: str, triage: bool | None) -> str:
    raw = json.loads(GOLDEN.read_text(encoding="utf-8"))
    raw.update(department_code=code, triage=triage, assignment_no=1)
    if triage is None:
        del raw["triage"]
    routed = parse_event(json.dumps(raw))
    assert isinstance(routed, PetitionRouted)
    db = IntakeDb()
    db.petitions[routed.petition_id] = {"assignment_no": 0, "status": "submitted"}
    handler = readmodel_handlers(triage_code=lambda: "TRIAGE")["petition.routed"]
    asyncio.run(handler(FakeReadModelStore(db), routed, None, None))  # type: ignore[arg-type]  # raw and result are not used
    status = db.petitions[routed.petition_id]["status"]
    assert isinstance(status, str)
    return status


@pytest.mark.parametrize(
    ("code", "triage", "status"),
    [
        ("DESK-9", True, "triage"),  # the flag, whatever the desk's code
        ("TRIAGE", False, "assigned"),  # the flag wins over the demo desk's code
        ("A-HOUSING", False, "assigned"),
        ("TRIAGE", None, "triage"),  # an event from before the flag: the code decides
        ("A-HOUSING", None, "assigned"),
    ],
)
def test_the_read_model_marks_a_petition_triage_from_the_flag(code: str, triage: bool | None, status: str) -> None:
    assert _status_recorded(code, triage) == status
