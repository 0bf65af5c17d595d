"""Escalation event contracts (round trips, unit envelope) and the hotline tier policies."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.escalation.app import load_policies
from shared import events
from shared.events import escalation as esc

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SAMPLES = [
    esc.SlaEscalated(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", clock="resolution",
                     department_code="A3-HOUSING", step=2, level="superior_unit", target_unit="A3-GOV",
                     rule="ladder:superior_unit:bureau->government_of_area", due_at=NOW,
                     supervision_id=uuid.uuid4(), supervision_due_at=NOW),
    esc.SupervisionClosed(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", supervision_id=uuid.uuid4(),
                          target_unit="A3-GOV", closed_by="A3-GOV", note="已督促"),
    esc.SlaClockPaused(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", clock="resolution",
                       department_code="A3-HOUSING", due_at=NOW, remaining_seconds=3600.0),
    esc.SlaClockResumed(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", clock="resolution",
                        department_code="A3-HOUSING", previous_due_at=NOW, due_at=NOW, paused_seconds=5.0),
    esc.SlaDeadlineExtended(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", clock="resolution",
                            department_code="A3-HOUSING", approved_by="A3-GOV", days=20, previous_due_at=NOW,
                            due_at=NOW, rule="extension:requested_days"),
    esc.ZeroReportSubmitted(event_id=uuid.uuid4(), occurred_at=NOW, unit="A3-S01", period="2026-11-22",
                            incidents=(), submitted_at=NOW, submission_id=uuid.uuid4()),
    esc.ZeroReportStatus(event_id=uuid.uuid4(), occurred_at=NOW, unit="A3-S01", period="2026-11-21",
                         status="missing", rule="missing:regular:daily", due_at=NOW, escalated_to="A3-GOV"),
]

#: a 督办 as escalation opens it, and the events that carry one whole (or name the ones closed)
ORDER = esc.SupervisionOrder(id=uuid.uuid4(), subject="zero_report", step=1, level="zero_report",
                             target_unit="A3-GOV", supervised_unit="A3-S01", rule="zero_report:missing:regular:daily",
                             opened_at=NOW, due_at=NOW, report_unit="A3-S01", report_period="2026-11-21")
ABOVE = ORDER.model_copy(update={
    "id": uuid.uuid4(), "level": "overdue", "target_unit": "A-GOV", "supervised_unit": "A3-GOV",
    "rule": "overdue:superior_unit:government->government_above", "parent_id": ORDER.id})
WHOLE = [
    SAMPLES[-1].model_copy(update={"supervision_id": ORDER.id, "supervision_due_at": ORDER.due_at,
                                   "supervision": ORDER}),
    esc.ZeroReportStatus(event_id=uuid.uuid4(), occurred_at=NOW, unit="A3-S01", period="2026-11-21", status="late",
                         rule="late:after_close", submitted_at=NOW, escalated_to="A3-GOV",
                         closed_supervision_ids=(ORDER.id, ABOVE.id)),
    esc.ZeroReportSupervisionOverdue(event_id=uuid.uuid4(), occurred_at=NOW, unit="A3-S01", period="2026-11-21",
                                     supervision_id=ORDER.id, level="zero_report", target_unit="A3-GOV", due_at=NOW,
                                     rule=ABOVE.rule, escalated_to="A-GOV", escalated_supervision_id=ABOVE.id,
                                     escalated_due_at=NOW, escalated_supervision=ABOVE),
    esc.SupervisionOverdue(event_id=uuid.uuid4(), occurred_at=NOW, petition_id="p-1", clock="resolution",
                           supervision_id=uuid.uuid4(), level="city", target_unit="A-12345", due_at=NOW,
                           rule="overdue:superior_unit:no_area_in_code", escalated_to="A-GOV",
                           escalated_supervision_id=ABOVE.id, escalated_due_at=NOW,
                           escalated_supervision=ABOVE.model_copy(update={
                               "subject": "petition", "petition_id": "p-1", "clock": "resolution",
                               "report_unit": None, "report_period": None})),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event_type)
def test_round_trip_through_the_registry(event: object) -> None:
    assert events.parse_event(events.encode_event(event)) == event  # type: ignore[arg-type]  # SAMPLES are events typed as object by parametrize


@pytest.mark.parametrize("event", WHOLE, ids=lambda e: e.event_type)
def test_the_supervision_orders_an_event_carries_round_trip_and_an_event_without_them_still_parses(
    event: esc.ZeroReportStatus | esc.ZeroReportSupervisionOverdue | esc.SupervisionOverdue,
) -> None:
    assert events.parse_event(events.encode_event(event)) == event
    raw = json.loads(events.encode_event(event))
    for key in ("supervision", "closed_supervision_ids", "escalated_supervision"):
        raw.pop(key, None)
    older = events.parse_event(json.dumps(raw))  # as written before the fields existed
    assert getattr(older, "supervision", None) is None and getattr(older, "escalated_supervision", None) is None
    assert older.event_id == event.event_id


def test_unit_events_have_no_petition_and_are_keyed_by_unit() -> None:
    raw = json.loads(events.encode_event(SAMPLES[-1]))
    assert "petition_id" not in raw and raw["unit"] == "A3-S01"
    assert esc.key_for_unit("A3-S01") == b"A3-S01"
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps({**raw, "status": "sort_of"}))
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps({**raw, "occurred_at": "2026-11-22T10:00:00"}))


def test_a_caught_up_ladder_step_names_the_steps_it_stands_for() -> None:
    step = SAMPLES[0].model_copy(update={"step": 1804, "level": "city", "repeat": True, "missed_steps": 1803,
                                         "missed_from_step": 1, "missed_since": NOW, "missed_estimated": True})
    assert events.parse_event(events.encode_event(step)) == step
    # an sla.escalated written before the fields existed still parses: nothing missed
    raw = json.loads(events.encode_event(SAMPLES[0]))
    for key in ("missed_steps", "missed_from_step", "missed_since", "missed_estimated"):
        raw.pop(key)
    old = events.parse_event(json.dumps(raw))
    assert (old.missed_steps, old.missed_from_step, old.missed_since) == (0, None, None)
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps({**raw, "missed_steps": -1}))


@pytest.mark.parametrize(
    ("facts", "policy", "resolution"),
    [
        ({"channel": "hotline", "priority": "urgent"}, "hotline-urgent", (2, "hour")),
        ({"channel": "hotline", "priority": "normal", "category": "城乡建设/城市建设和市政管理/自来水供应"},
         "hotline-utilities", (24, "hour")),
        ({"channel": "hotline", "priority": "high", "category": "城乡建设"}, "hotline-complex", (15, "day")),
        ({"channel": "hotline", "priority": "normal", "category": "城乡建设"}, "hotline-ordinary", (7, "day")),
        ({"channel": "letter", "priority": "normal"}, "xinfang-default", (60, "day")),
    ],
)
def test_hotline_tiers_and_xinfang_defaults(facts: dict, policy: str, resolution: tuple[int, str]) -> None:
    book = load_policies()
    chosen = book.select(channel=facts["channel"], kind=None, priority=facts["priority"],
                         category=facts.get("category"))
    assert chosen.id == policy
    clocks = {c.name: c for c in chosen.clocks}
    assert (clocks["resolution"].amount, clocks["resolution"].unit) == resolution
    assert clocks["resolution"].pausable
    if policy == "xinfang-default":
        assert clocks["resolution"].extension_max_days == 30 and clocks["acceptance"].amount == 15
    else:
        assert "first_contact" in clocks and "contact" in clocks["first_contact"].stops_on
