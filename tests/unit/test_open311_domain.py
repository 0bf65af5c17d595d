"""Open311 as rules (services/intake/domain/open311.py), without a server: the catalogue against
the routing table, a posted form read into a petition, the filters of GET requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from services.intake.api.open311 import CATALOGUE as CATALOGUE_FILE
from services.intake.api.open311 import load_catalogue
from services.intake.commands import PetitionIn
from services.intake.domain.open311 import Catalogue, Open311Error, public_status, read_query, read_request
from shared.reference.files import ROUTING

CATALOGUE = load_catalogue()
NOW = datetime(2026, 12, 6, 10, tzinfo=UTC)


def form(**fields: str) -> dict[str, list[str]]:
    base = {"service_code": "environment", "description": "化工厂夜间偷排废气，气味刺鼻", "address_string": "A3区某路"}
    return {k: [v] for k, v in {**base, **fields}.items()}


def test_one_service_per_category_the_router_routes() -> None:
    routed = {rule["category"] for rule in yaml.safe_load(ROUTING.read_bytes())["rules"]}
    assert {s.category for s in CATALOGUE.services} == routed
    assert all(s.group == s.category for s in CATALOGUE.services)
    assert CATALOGUE.unlisted == ("纪检监察",)


def test_a_form_becomes_a_petition_the_json_api_would_take() -> None:
    read = read_request(form(first_name="小明", last_name="王", phone="139 1234 5678", email="w@example.com",
                             lat="28.1", long="112.9", **{"attribute[persons]": "12", "attribute[kind]": "claim"}),
                        CATALOGUE)
    body = PetitionIn.model_validate({**read.petition, "channel": "app"})
    assert body.title.startswith("环境保护：化工厂")
    assert body.petitioner is not None and body.petitioner.name == "王小明"
    assert body.persons == 12 and body.kind is not None and body.kind.value == "claim"
    assert (read.lat, read.long, read.email) == (28.1, 112.9, "w@example.com")
    long_text = read_request(form(description="长" * 300), CATALOGUE)
    assert len(long_text.petition["title"]) <= 70


@pytest.mark.parametrize(("change", "needle"), [
    ({"service_code": ""}, "service_code is required"),
    ({"service_code": "potholes"}, "no service"),
    ({"description": " "}, "description is required"),
    ({"description": "长" * 4001}, "4,000"),
    ({"lat": "28"}, "lat and long"),
    ({"lat": "nan", "long": "1"}, "lat"),
    ({"lat": "1", "long": "181"}, "long"),
    ({"address_string": "", "address_id": "43010"}, "address_id"),
    ({"address_string": ""}, "location is required"),
    ({"phone": "+86-abc"}, "phone"),
    ({"email": "a@b"}, "email"),
    ({"media_url": "ftp://x/y.jpg"}, "media_url"),
    ({"attribute[persons]": "2.5"}, "whole number"),
    ({"attribute[colour]": "red"}, "no attribute colour"),
])
def test_what_the_form_refuses(change: dict[str, str], needle: str) -> None:
    with pytest.raises(Open311Error) as refused:
        read_request(form(**change), CATALOGUE)
    assert refused.value.status == 400 and needle in refused.value.description


def test_a_field_given_twice_is_refused() -> None:
    with pytest.raises(Open311Error, match="more than once"):
        read_request({**form(), "description": ["一", "二"]}, CATALOGUE)


def test_the_filters_of_get_requests() -> None:
    plain = read_query({}, CATALOGUE, NOW)
    assert plain.start == NOW - timedelta(days=90) and plain.end is None and plain.limit == 1000
    ids = read_query({"service_request_id": ["a, b,a"], "status": ["nonsense"]}, CATALOGUE, NOW)
    assert ids.ids == ("a", "b") and ids.statuses is None  # the ids override every other filter
    q = read_query({"service_code": ["environment,transport"], "status": ["closed"],
                    "end_date": ["2026-11-30T00:00:00+08:00"]}, CATALOGUE, NOW)
    assert q.categories == ("环境保护", "交通运输") and q.statuses == ("closed",)
    assert q.end is not None and q.start == q.end - timedelta(days=90)
    for bad in ({"status": ["pending"]}, {"start_date": ["2026-13-01T00:00:00Z"]},
                {"start_date": ["2026-11-01"]}, {"service_code": ["potholes"]},
                {"start_date": ["2026-11-02T00:00:00Z"], "end_date": ["2026-11-01T00:00:00Z"]}):
        with pytest.raises(Open311Error):
            read_query(bad, CATALOGUE, NOW)


def test_status_in_the_standards_two_words() -> None:
    assert [public_status(s) for s in ("submitted", "assigned", "accepted", "resolved", "closed")] == [
        "open", "open", "open", "closed", "closed"]


def test_an_inconsistent_catalogue_is_refused() -> None:
    data = yaml.safe_load(CATALOGUE_FILE.read_bytes())
    data["services"].append(dict(data["services"][0]))
    with pytest.raises(ValueError, match="own code"):
        Catalogue.from_data(data)
