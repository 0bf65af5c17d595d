"""The intake API at its edges (the fuzzing report's findings), through the real stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, petition, wait_for

pytestmark = pytest.mark.integration

FORBIDDEN = ["\x00", "\x01", "\x1f", "\x7f", "\ufdd0", "\ufffe", "\U0001ffff", "\ud800"]


def _fields(r: httpx.Response) -> list[str]:
    body = r.json()
    assert set(body) >= {"error", "message"}, body
    return [e["field"] for e in body.get("errors") or []]


def _post_json(client: httpx.Client, url: str, body: Any, **kw: Any) -> httpx.Response:
    # json.dumps with ensure_ascii escapes a lone surrogate as \ud800: what a client can send
    import json

    return client.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"}, **kw)


def _routed(client: httpx.Client, pid: str) -> dict[str, Any]:
    return wait_for(lambda: (b := client.get(f"/v1/petitions/{pid}").json())["department"] and b, timeout=30)


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "1999-12-31T23:59:59+08:00", 0, 1700000000,
    "2026-01-01 10:00:00+08:00",
])
def test_received_at_outside_the_window_or_not_rfc3339_is_422(client: httpx.Client, value: Any) -> None:
    r = client.post("/v1/petitions", json=petition(received_at=value))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["received_at"]


def test_received_at_in_the_future_is_refused_and_inside_the_window_accepted(client: httpx.Client) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    r = client.post("/v1/petitions", json=petition(received_at=later))
    assert r.status_code == 422 and _fields(r) == ["received_at"], r.text
    for ok in ("2000-01-01T00:00:00+08:00", (datetime.now(UTC) + timedelta(seconds=60)).isoformat()):
        r = client.post("/v1/petitions", json=petition(received_at=ok))
        assert r.status_code == 202, r.text


@pytest.mark.parametrize("bad", FORBIDDEN)
def test_control_and_non_characters_in_stored_strings_are_422_naming_the_field(client: httpx.Client, bad: str) -> None:
    cases = {
        "title": petition(title=f"标题{bad}"),
        "content": petition(content=f"内容{bad}内容"),
        "petitioner.name": petition(petitioner={"name": f"张{bad}"}),
        "location.address": petition(location={"address": f"A3区{bad}"}),
    }
    for field, body in cases.items():
        r = _post_json(client, "/v1/petitions", body)
        assert r.status_code == 422, (field, r.text)
        assert _fields(r) == [field], r.text
    r = _post_json(client, "/v1/petitions/does-not-exist/actions",
                   {"action": "accept", "department": "A3-HOUSING", "note": f"已{bad}"})
    assert r.status_code == 422 and _fields(r) == ["note"], r.text
    r = _post_json(client, "/v1/petitions/does-not-exist/actions",
                   {"action": "assign", "department": "TRIAGE", "target_department": "A3-HOUSING", "category": f"城{bad}"})  # noqa: E501 - Chinese text counts two columns a character
    assert r.status_code == 422 and _fields(r) == ["category"], r.text
    r = _post_json(client, f"/v1/supervision/{uuid.uuid4()}/close", {"department": "A3-GOV", "note": f"x{bad}"})
    assert r.status_code == 422 and _fields(r) == ["note"], r.text
    r = _post_json(client, "/v1/zero-reports", {"unit": "A3-GOV", "period": "2026-W48", "incidents": [f"火{bad}"]})
    assert r.status_code == 422 and _fields(r) == ["incidents.0"], r.text


def test_control_characters_in_path_parameters_are_422(client: httpx.Client) -> None:
    for url in ("/v1/petitions/a%00b", "/v1/petitions/a%01b", "/v1/petitions/%7F"):
        r = client.get(url)
        assert r.status_code == 422 and _fields(r) == ["ref"], r.text
    r = client.post("/v1/petitions/a%00b/actions", json={"action": "accept", "department": "A3-HOUSING"})
    assert r.status_code == 422 and _fields(r) == ["ref"], r.text


def test_whitespace_only_title_is_refused_by_spec_and_server_alike(client: httpx.Client) -> None:
    import jsonschema_rs

    spec = client.get("/openapi.json").json()
    title = spec["components"]["schemas"]["PetitionIn"]["properties"]["title"]
    check = jsonschema_rs.validator_for(title)
    for value in (" ", "\u3000\t", "\n"):
        assert not check.is_valid(value)
        r = client.post("/v1/petitions", json=petition(title=value))
        assert r.status_code == 422 and _fields(r) == ["title"], r.text
    # what the pattern accepts the server accepts, and stores stripped; lengths count raw
    assert check.is_valid("  标题  ")
    r = client.post("/v1/petitions", json=petition(title="  A3区某小区拆迁安置房迟迟不能交房  "))
    assert r.status_code == 202, r.text
    r = client.post("/v1/petitions", json=petition(title="题" * 199 + "  "))
    assert r.status_code == 422 and _fields(r) == ["title"], r.text


def test_every_refusal_has_the_project_error_shape(client: httpx.Client) -> None:
    r = client.post("/v1/petitions", content=b'{"title": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_body", r.text
    r = client.post("/v1/petitions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_json", r.text
    r = client.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "detail" not in r.json()
    r = client.put("/v1/zero-reports", json={})
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed", r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}
    r = client.options("/v1/zero-reports")
    assert r.status_code == 204
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}
    r = client.options("/v1/petitions")
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"POST", "OPTIONS"}
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            takes_input = bool(op.get("parameters") or op.get("requestBody"))
            for status in ("413", "422", "503") if takes_input else ("413", "503"):
                assert status in op["responses"], (method, path, status)
                assert op["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"}


def test_a_10_mb_body_gets_a_readable_413(stack: Stack) -> None:
    body = b'{"title": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    with stack.client(timeout=60) as c:
        for extra in ({}, {"connection": "close"}):  # a closing client is the one that saw resets
            r = c.post("/v1/petitions", content=body, headers={"content-type": "application/json", **extra})
            assert r.status_code == 413 and r.json()["error"] == "body_too_large"

        def chunks() -> Any:  # no content-length: the limit is found while streaming
            for _ in range(10):
                yield b"x" * (1024 * 1024)

        r = c.post("/v1/petitions", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"
        assert c.get("/healthz").status_code == 200  # the server is fine (a new connection)
    # a plain socket client that writes everything, then reads (no early-response rescue), and
    # asks for the connection to close: a server that closes without reading the rest resets it
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(stack.base_url)
    with socket.create_connection((where.hostname, where.port), timeout=60) as sock:
        sock.sendall(b"POST /v1/petitions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"body_too_large" in answer, answer[:300]


def test_unknown_units_places_and_unowed_periods_are_422_with_the_field(client: httpx.Client, stack: Stack) -> None:
    pid = client.post("/v1/petitions", json=petition()).json()["id"]
    holder = _routed(client, pid)["department"]["code"]
    act = lambda **b: client.post(f"/v1/petitions/{pid}/actions", json=b)  # noqa: E731
    assert act(action="accept", department=holder).status_code == 202
    assert act(action="request_extension", department=holder, note="需现场勘验", extension_days=10).status_code == 202
    for action in ("approve_extension", "reject_extension"):
        r = act(action=action, department="ZZ9-NOPE", note="同意")
        assert r.status_code == 422 and _fields(r) == ["department"], r.text
    assert act(action="contact", department="ZZ9-NOPE").status_code == 422
    before = client.get(f"/v1/petitions/{pid}").json()
    assert not any(t["event"] == "approve_extension" for t in before["timeline"])
    r = act(action="assign", department="TRIAGE", target_department="ZZ9-NOPE")
    assert r.status_code == 422 and _fields(r) == ["target_department"], r.text
    # a ladder unit that is no department (the city 12345 office) may decide; a street office too
    assert act(action="approve_extension", department="A-12345", note="同意").status_code == 202

    for code in ("110101", "430199", "999999001"):
        r = client.post("/v1/petitions", json=petition(location={"admin_code": code}))
        assert r.status_code == 422 and _fields(r) == ["location.admin_code"], (code, r.text)
    assert client.post("/v1/petitions", json=petition(location={"admin_code": "430103001"})).status_code == 202

    r = client.post(f"/v1/supervision/{uuid.uuid4()}/close", json={"department": "ZZ9-NOPE"})
    assert r.status_code == 422 and _fields(r) == ["department"], r.text

    for body, field in (
        ({"unit": "A3-HOUSING", "period": "2026-11-20", "incidents": []}, "unit"),   # no obligation
        ({"unit": "A3-GOV", "period": "2026-11-20", "incidents": []}, "period"),     # a day, weekly unit
        ({"unit": "A3-S01", "period": "2026-W47", "incidents": []}, "period"),       # a week, daily unit
        ({"unit": "A3-S01", "period": "2027-06-30", "incidents": []}, "period"),     # not opened yet
        ({"unit": "A3-S01", "period": "2026-10-03", "incidents": []}, "period"),     # before `since`
        ({"unit": "ZZ9-NOPE", "period": "2026-11", "incidents": []}, "unit"),
    ):
        r = client.post("/v1/zero-reports", json=body)
        assert r.status_code == 422 and _fields(r) == [field], (body, r.text)
    assert client.get("/v1/zero-reports", params={"unit": "A3-S01", "period": "2027-06-30"}).json()["periods"] == []
