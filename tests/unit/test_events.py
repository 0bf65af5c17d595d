"""Event contracts: golden examples, round trips, and the rules every event must keep."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import events, topics
from shared.ids import derived_event_id

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_examples_parse_and_round_trip(path: Path) -> None:
    raw = path.read_bytes()
    event = events.parse_event(raw)
    assert event.event_type == path.stem
    again = events.parse_event(events.encode_event(event))
    assert again == event
    # the wire bytes are model_dump_json's, UTF-8 (the serializer's bytes, not re-encoded)
    assert events.encode_event(event) == event.model_dump_json().encode()
    assert isinstance(events.encode_event(event), bytes)


def test_golden_examples_cover_every_event_type() -> None:
    names = {p.stem for p in GOLDEN.glob("*.json")}
    declared = {
        m.model_fields["event_type"].default
        for m in (
            events.PetitionSubmitted, events.PetitionRouted, events.DepartmentAssignment,
            events.PetitionActionTaken, events.SlaClockArmed, events.SlaWarning,
            events.SlaBreached, events.SlaClockStopped,
        )
    }
    assert names == declared


def test_no_personal_data_fields_on_the_bus() -> None:
    forbidden = {"name", "phone", "id_number", "petitioner"}
    for model in (events.PetitionSubmitted, events.PetitionRouted, events.DepartmentAssignment):
        assert not forbidden & set(model.model_fields), model.__name__


def test_occurred_at_is_normalised_to_utc_and_naive_times_are_rejected() -> None:
    raw = json.loads((GOLDEN / "petition.submitted.json").read_text())
    raw["occurred_at"] = "2026-02-14T08:00:00+08:00"
    event = events.parse_event(json.dumps(raw))
    assert event.occurred_at == datetime(2026, 2, 14, 0, 0, tzinfo=UTC)
    raw["occurred_at"] = "2026-02-14T08:00:00"
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps(raw))


def test_unknown_schema_version_is_rejected_but_extra_fields_are_accepted() -> None:
    raw = json.loads((GOLDEN / "petition.routed.json").read_text())
    raw["added_later"] = "an additive change"
    events.parse_event(json.dumps(raw))
    raw["schema_version"] = 99
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps(raw))


def test_events_are_frozen() -> None:
    event = events.parse_event((GOLDEN / "sla.breached.json").read_bytes())
    with pytest.raises(ValidationError):
        event.clock = "other"


def test_derived_ids_are_deterministic_and_distinct() -> None:
    cause = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
    assert derived_event_id(cause, "routed:1") == derived_event_id(cause, "routed:1")
    assert derived_event_id(cause, "routed:1") != derived_event_id(cause, "routed:2")
    # never changes: replays must re-derive the ids already published (uuid5 of the namespace)
    from shared.ids import EVENT_NAMESPACE

    rng = random.Random(5)
    for what in ["routed:1", "assignment:12", "督办:3", ""] * 50:
        c = uuid.UUID(int=rng.getrandbits(128))
        ours = derived_event_id(c, what)
        assert ours == uuid.uuid5(EVENT_NAMESPACE, f"{c}:{what}")
        assert str(ours) == str(uuid.uuid5(EVENT_NAMESPACE, f"{c}:{what}")) and ours.version == 5
    assert str(derived_event_id(cause, "routed:1")) == "dfe787c1-5c09-583a-9034-5364457c815d"


def test_key_is_raw_utf8_petition_id() -> None:
    assert events.key_for("abc-1") == b"abc-1"


def test_department_topic_names() -> None:
    assert topics.department_topic("A3-GOV") == "dept.A3-GOV.assignments"
    for bad in ("a3-gov", "A_3", "", "A.B"):
        with pytest.raises(ValueError):
            topics.department_topic(bad)


def test_routed_rejects_assignment_zero() -> None:
    raw = json.loads((GOLDEN / "petition.routed.json").read_text())
    raw["assignment_no"] = 0
    with pytest.raises(ValidationError):
        events.parse_event(json.dumps(raw))


def test_other_offsets_are_accepted() -> None:
    moment = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    raw = json.loads((GOLDEN / "sla.warning.json").read_text())
    raw["occurred_at"] = moment.isoformat()
    assert events.parse_event(json.dumps(raw)).occurred_at == moment.astimezone(UTC)


def test_a_location_is_flat_so_its_field_dict_is_its_dump() -> None:
    # the router stores dict(vars(location)) (cheaper than model_dump): true only while flat
    from shared.events import Location

    for loc in (Location(), Location(admin_code="430103", address="A3区某路1号")):
        assert dict(vars(loc)) == loc.model_dump()
