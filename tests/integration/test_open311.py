"""The Open311 GeoReport v2 facade over HTTP, as a civic-tech client uses it: both formats, the
XML read by a real XML parser (expat, through ElementTree), the JSON checked against the
standard's schemas (tests/open311_schemas.py); a request posted with a key issued by
``petitionctl open311 keys add`` is routed, shows in the department's workbench, and after the
department's reply is ``closed`` with the reply in ``status_notes``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import httpx
import jsonschema
import pytest

from tests import open311_schemas as schemas
from tests.integration.conftest import Stack, wait_for
from tests.integration.test_console import add_user, browser, sign_in

pytestmark = pytest.mark.integration

V2 = "/open311/v2"
DESCRIPTION = "A3区某小区电梯停运一个多月，物业一直不维修，老人上下楼非常困难，请住建部门督促物业尽快修好。"


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    done = stack.petitionctl("open311", "keys", "add", "--name", f"city-app-{uuid.uuid4().hex[:6]}")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("o311_") and "\n" not in key
    return key


@pytest.fixture
def public(stack: Stack) -> Iterator[httpx.Client]:
    """A client without any token: Open311 clients have none."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as c:
        yield c


def xml(response: httpx.Response) -> ElementTree.Element:
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    assert "charset=utf-8" in response.headers["content-type"]
    return ElementTree.fromstring(response.content)  # noqa: S314 - our own server's answer, in a test


def as_json(response: httpx.Response, schema: dict[str, Any]) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    jsonschema.validate(body, schema)
    return body


def post(public: httpx.Client, key: str | None, fmt: str = "xml", **fields: str) -> httpx.Response:
    form = {"service_code": "urban-construction", "description": DESCRIPTION, "address_string": "A3区某小区",
            **fields}
    if key is not None:
        form["api_key"] = key
    return public.post(f"{V2}/requests.{fmt}", data=form)


def test_discovery_services_and_definitions_in_both_formats(public: httpx.Client) -> None:
    found = as_json(public.get(f"{V2}/discovery.json"), schemas.DISCOVERY)
    assert found["endpoints"][0]["url"].endswith(V2)
    assert xml(public.get(f"{V2}/discovery.xml")).find("endpoints/endpoint/formats/format") is not None

    services = as_json(public.get(f"{V2}/services.json"), schemas.SERVICES)
    by_code = {s["service_code"]: s for s in services}
    assert by_code["urban-construction"]["service_name"] == "城乡建设"
    assert by_code["urban-construction"]["group"] == "城乡建设"
    root = xml(public.get(f"{V2}/services.xml"))
    assert root.tag == "services"
    assert [e.findtext("service_code") for e in root.findall("service")] == list(by_code)
    assert root.findtext("service/metadata") in ("true", "false")

    definition = as_json(public.get(f"{V2}/services/urban-construction.json"), schemas.SERVICE_DEFINITION)
    assert {a["code"] for a in definition["attributes"]} == {"persons", "kind"}
    root = xml(public.get(f"{V2}/services/urban-construction.xml"))
    assert root.tag == "service_definition"
    assert root.findall("attributes/attribute/values/value/key")

    # an empty jurisdiction_id is absent; another one is not here
    assert public.get(f"{V2}/services.json", params={"jurisdiction_id": ""}).status_code == 200
    other = public.get(f"{V2}/services.xml", params={"jurisdiction_id": "elsewhere.example"})
    assert other.status_code == 404 and xml(other).findtext("error/code") == "404"
    missing = public.get(f"{V2}/services/no-such-service.json")
    assert missing.status_code == 404
    as_json(missing, schemas.ERRORS)
    assert public.get(f"{V2}/services.yaml").status_code == 404


def test_posting_needs_a_valid_key_and_a_well_formed_request(public: httpx.Client, api_key: str) -> None:
    for key in (None, "o311_" + "x" * 43, "not a key"):
        refused = post(public, key)
        assert refused.status_code == 403, refused.text
        assert xml(refused).findtext("error/code") == "403"
    refused = post(public, None, fmt="json")
    assert refused.status_code == 403
    assert as_json(refused, schemas.ERRORS)[0]["code"] == 403

    cases = {
        "service_code": {"service_code": "no-such-service"},
        "description": {"description": "x" * 4001},
        "lat": {"lat": "91", "long": "113"},
        "phone": {"phone": "call me"},
        "address_id": {"address_id": "999999"},  # no area of the gazetteer
        "attribute[kind]": {"attribute[kind]": "gossip"},
        "media_url": {"media_url": "javascript:alert(1)"},
    }
    for field, change in cases.items():
        refused = post(public, api_key, fmt="json", **change)
        assert refused.status_code == 400, (field, refused.text)
        errors = as_json(refused, schemas.ERRORS)
        assert errors[0]["code"] == 400 and field.split("[")[0] in errors[0]["description"], (field, errors)
    # no location at all
    refused = public.post(f"{V2}/requests.json", data={"api_key": api_key, "service_code": "environment",
                                                      "description": DESCRIPTION})
    assert refused.status_code == 400 and "location" in refused.json()[0]["description"]


def _request(public: httpx.Client, request_id: str) -> dict[str, Any]:
    found = as_json(public.get(f"{V2}/requests/{request_id}.json"), schemas.REQUESTS)
    assert len(found) == 1
    return found[0]


def test_a_request_is_routed_worked_on_and_closed_with_its_reply(
    public: httpx.Client, client: httpx.Client, stack: Stack, api_key: str
) -> None:
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    posted = post(public, api_key, first_name="小明", last_name="王", phone=phone, email="wang@example.com",
                  lat="28.19", long="112.97", media_url="https://img.example.com/lift.jpg",
                  **{"attribute[persons]": "3", "jurisdiction_id": ""})
    assert posted.status_code == 200, posted.text
    root = xml(posted)
    request_id = root.findtext("request/service_request_id")
    assert request_id and root.findtext("request/service_notice")

    routed = wait_for(lambda: (r := _request(public, request_id))["agency_responsible"] and r, timeout=30)
    assert routed["agency_responsible"] == "A3区住房和城乡建设局"
    assert routed["status"] == "open" and routed["service_code"] == "urban-construction"
    assert routed["lat"] == pytest.approx(28.19) and routed["media_url"] == "https://img.example.com/lift.jpg"
    assert routed["expected_datetime"]

    # the department sees it in its workbench (the console), as any petition
    petition = client.get(f"/v1/petitions/{request_id}").json()
    assert petition["channel"] == "app" and petition["department"]["code"] == "A3-HOUSING"
    assert petition["timeline"][0]["client"].startswith("city-app-")
    clerk_name = f"open311-clerk-{uuid.uuid4().hex[:6]}"
    add_user(stack, clerk_name, "--role", "department", "--department", "A3-HOUSING")
    with browser(stack) as clerk:
        assert sign_in(clerk, clerk_name).url.path == "/console/queue"
        wait_for(lambda: petition["tracking_code"] in clerk.get("/console/queue").text, timeout=30)

    for action, note in (("accept", ""), ("resolve", f"已督促物业更换电梯主板，电梯已恢复运行。联系电话{phone}")):
        done = client.post(f"/v1/petitions/{request_id}/actions",
                           json={"action": action, "department": "A3-HOUSING", "note": note})
        assert done.status_code == 202, done.text
    closed = wait_for(lambda: (r := xml(public.get(f"{V2}/requests/{request_id}.xml")).find("request")) is not None
                      and r.findtext("status") == "closed" and r, timeout=30)
    assert closed.findtext("agency_responsible") == "A3区住房和城乡建设局"
    assert "电梯已恢复运行" in (closed.findtext("status_notes") or "")

    # the filters find it; nothing personal is ever in an answer
    answers = [
        public.get(f"{V2}/requests.json", params={"service_request_id": f"{request_id},XF-NOPE"}),
        public.get(f"{V2}/requests.json", params={"status": "closed", "service_code": "urban-construction"}),
        public.get(f"{V2}/requests.xml"),
        public.get(f"{V2}/requests/{request_id}.xml"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for secret in (phone, "王小明", "小明", "wang@example.com", "老人上下楼"):
            assert secret not in answer.text
    assert [r["service_request_id"] for r in answers[0].json()] == [request_id]
    assert request_id in [r["service_request_id"] for r in as_json(answers[1], schemas.REQUESTS)]
    open_only = as_json(public.get(f"{V2}/requests.json", params={"status": "open"}), schemas.REQUESTS)
    assert request_id not in [r["service_request_id"] for r in open_only]
    future = public.get(f"{V2}/requests.json", params={"start_date": "2099-01-01T00:00:00Z"})
    assert future.status_code == 200 and future.json() == []
    bad_date = public.get(f"{V2}/requests.json", params={"start_date": "yesterday"})
    assert bad_date.status_code == 400 and "start_date" in bad_date.json()[0]["description"]

    # the token of a request is its tracking code
    token = petition["tracking_code"]
    tokens = as_json(public.get(f"{V2}/tokens/{token}.json"), schemas.TOKENS)
    assert tokens == [{"service_request_id": request_id, "token": token}]
    assert public.get(f"{V2}/tokens/XF-0000000000.json").status_code == 404


def test_accusations_are_not_public_and_a_revoked_key_stops_at_once(
    public: httpx.Client, stack: Stack
) -> None:
    name = f"kiosk-{uuid.uuid4().hex[:6]}"
    done = stack.petitionctl("open311", "keys", "add", "--name", name, "--channel", "online")
    key = done.stdout.strip()
    again = stack.petitionctl("open311", "keys", "add", "--name", name)
    assert again.returncode != 0 and "revoke it first" in again.stderr

    posted = post(public, key, fmt="json", **{"attribute[kind]": "accusation"})
    assert posted.status_code == 200, posted.text
    accusation = as_json(posted, schemas.POSTED)[0]["service_request_id"]
    assert public.get(f"{V2}/requests/{accusation}.json").status_code == 404
    assert accusation not in public.get(f"{V2}/requests.json").text

    listed = stack.petitionctl("open311", "keys", "list")
    assert f"{name}\tonline" in listed.stdout and key not in listed.stdout
    assert stack.petitionctl("open311", "keys", "revoke", "--name", name).returncode == 0
    assert post(public, key).status_code == 403
