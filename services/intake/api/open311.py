"""The Open311 GeoReport v2 facade, under ``/open311/v2/``: discovery, services, requests, tokens.

Every resource is served in both formats by its suffix, ``.xml`` (``text/xml``) and ``.json``
(``application/json``), UTF-8. Refusals are the standard's list of ``{code, description}`` in
the format asked for (an unknown suffix is answered in XML, the standard's required format),
with ``400`` (bad input), ``403`` (no or a bad ``api_key``), ``404`` (no such service, request,
token or jurisdiction) and ``429`` (a client over its rate). ``jurisdiction_id`` may be given
on every call; empty means absent, any value but this jurisdiction's is ``404``.

Reading is public (no key), as the standard intends. ``POST requests`` takes a form
(``application/x-www-form-urlencoded``, or ``multipart/form-data``) with the client's
``api_key`` (:mod:`services.intake.clients`): each client has its own token bucket
(``PETITION_OPEN311_RATE_PER_SECOND`` / ``_BURST``) besides the address-wide limiter.
The routes are left out of the OpenAPI document: GeoReport is their specification.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.intake import clients, handlers, metrics
from services.intake import open311 as service
from services.intake.accounts_store import AccountStore
from services.intake.api.ratelimit import Buckets
from services.intake.domain.open311 import Catalogue, Open311Error, read_query
from services.intake.store import IntakeStore
from shared.errors import PetitionError, Unavailable
from shared.events import utcnow
from shared.store import UnitOfWork

__all__ = ["CATALOGUE", "PREFIX", "load_catalogue", "router"]

PREFIX = "/open311/v2"
CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "open311.yaml"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MEDIA = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
#: the element of each item of a list, in XML
_ITEM = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
_MAX_FIELDS = 200


def load_catalogue(path: Path | None = None) -> Catalogue:
    return Catalogue.from_data(yaml.safe_load((path or CATALOGUE).read_bytes()))


# --------------------------------------------------------------------------- formats
def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _fill(parent: ElementTree.Element, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        element = ElementTree.SubElement(parent, name)
        if isinstance(value, Mapping):
            _fill(element, value)
        elif isinstance(value, list):
            for item in value:
                child = ElementTree.SubElement(element, _ITEM[name])
                if isinstance(item, Mapping):
                    _fill(child, item)
                else:
                    child.text = _text(item)
        else:
            element.text = _text(value)


def render(fmt: str, body: Any, *, root: str, item: str | None = None, status: int = 200) -> Response:
    """`body` (a list of items, or one object) in the format asked for: JSON as it is; XML as
    ``<root><item>…</item>…</root>`` (a list) or ``<root>…</root>`` (an object)."""
    if fmt == "json":
        content = json.dumps(body, ensure_ascii=False).encode()
    else:
        top = ElementTree.Element(root)
        if isinstance(body, list):
            for entry in body:
                _fill(ElementTree.SubElement(top, item or "item"), entry)
        else:
            _fill(top, body)
        content = ElementTree.tostring(top, encoding="utf-8", xml_declaration=True)
    return Response(content, status_code=status, media_type=MEDIA["json" if fmt == "json" else "xml"])


def refusal(fmt: str, status: int, description: str) -> Response:
    return render(fmt if fmt in MEDIA else "xml", [{"code": status, "description": description}],
                  root="errors", item="error", status=status)


# --------------------------------------------------------------------------- input
def _query(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        found.setdefault(name, []).append(value)
    return found


async def _form(request: Request) -> dict[str, list[str]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        found: dict[str, list[str]] = {}
        async with request.form(max_files=0, max_fields=_MAX_FIELDS) as form:
            for name, value in form.multi_items():
                if isinstance(value, str):
                    found.setdefault(name, []).append(value)
        return found
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise Open311Error(400, "POST requests takes a form: application/x-www-form-urlencoded or multipart/form-data")
    try:
        return parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                        max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise Open311Error(400, "the form is not UTF-8") from None
    except ValueError:
        raise Open311Error(400, f"a form of at most {_MAX_FIELDS} fields") from None


def _check_jurisdiction(catalogue: Catalogue, *sources: Mapping[str, Sequence[str]]) -> None:
    for source in sources:
        for value in source.get("jurisdiction_id", ()):
            if value.strip() and value.strip() != catalogue.jurisdiction_id:
                raise Open311Error(404, f"jurisdiction_id {value.strip()} is not served here "
                                        f"(this is {catalogue.jurisdiction_id})")


# --------------------------------------------------------------------------- routes
def router(
    uow: Callable[[], UnitOfWork[IntakeStore]], accounts: Callable[[], UnitOfWork[AccountStore]],
    ctx: handlers.Intake, catalogue: Catalogue, buckets: Buckets | None,
) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    async def answer(fmt: str, make: Callable[[], Awaitable[Response]]) -> Response:
        if fmt not in MEDIA:
            return refusal("xml", 404, f"no format {fmt}: ask for .xml or .json")
        try:
            return await make()
        except Open311Error as exc:
            return refusal(fmt, exc.status, exc.description)
        except Unavailable as exc:
            response = refusal(fmt, 503, exc.message)
            response.headers["Retry-After"] = "5"
            return response
        except PetitionError as exc:
            return refusal(fmt, 400, exc.message)

    @api.get(PREFIX + "/discovery.{fmt}")
    async def discovery(request: Request, fmt: str) -> Response:
        async def make() -> Response:
            base = str(request.base_url).rstrip("/") + PREFIX
            return render(fmt, {
                "changeset": catalogue.changeset, "contact": catalogue.contact, "key_service": catalogue.key_service,
                "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": catalogue.changeset,
                               "type": "production", "formats": ["text/xml", "application/json"]}],
            }, root="discovery")
        return await answer(fmt, make)

    @api.get(PREFIX + "/services.{fmt}")
    async def services(request: Request, fmt: str) -> Response:
        async def make() -> Response:
            _check_jurisdiction(catalogue, _query(request))
            return render(fmt, [{
                "service_code": s.code, "service_name": s.name, "description": s.description,
                "metadata": bool(s.attributes), "type": "realtime", "keywords": ", ".join(s.keywords),
                "group": s.group,
            } for s in catalogue.services], root="services", item="service")
        return await answer(fmt, make)

    @api.get(PREFIX + "/services/{service_code}.{fmt}")
    async def definition(request: Request, service_code: str, fmt: str) -> Response:
        async def make() -> Response:
            _check_jurisdiction(catalogue, _query(request))
            found = catalogue.service(service_code)
            if found is None:
                raise Open311Error(404, f"no service {service_code}")
            return render(fmt, {"service_code": found.code, "attributes": [{
                "variable": True, "code": a.code, "datatype": a.datatype, "required": a.required,
                "datatype_description": a.datatype_description, "order": a.order, "description": a.description,
                "values": [{"key": k, "name": n} for k, n in a.values],
            } for a in found.attributes]}, root="service_definition")
        return await answer(fmt, make)

    @api.post(PREFIX + "/requests.{fmt}")
    async def post_request(request: Request, fmt: str) -> Response:
        async def make() -> Response:
            form = await _form(request)
            query = _query(request)
            _check_jurisdiction(catalogue, query, form)
            keys = [*form.get("api_key", ()), *query.get("api_key", ())]
            if not keys:
                raise Open311Error(403, "api_key is required to post a request (ask the hotline centre for one)")
            client = await clients.verify_key(accounts(), keys[0].strip())
            if client is None or len(set(keys)) > 1:
                metrics.OPEN311.labels("api_key").inc()
                raise Open311Error(403, "api_key is not valid, or has been revoked")
            if buckets is not None and (wait := buckets.take(client.name)) > 0:
                metrics.OPEN311.labels("rate").inc()
                response = refusal(fmt, 429, f"{client.name} is over its rate; retry in {wait:.0f} s")
                response.headers["Retry-After"] = str(max(1, round(wait + 0.5)))
                return response
            try:
                accepted, body = await service.submit(uow(), ctx, client, catalogue, form, now=utcnow())
            except Open311Error:
                metrics.OPEN311.labels("invalid").inc()
                raise
            metrics.OPEN311.labels("accepted").inc()
            metrics.SUBMITTED.labels(body.channel.value, body.kind.value if body.kind else "unspecified").inc()
            return render(fmt, [{"service_request_id": accepted.id, "service_notice": service.NOTICE,
                                 "account_id": None}], root="service_requests", item="request")
        return await answer(fmt, make)

    @api.get(PREFIX + "/requests.{fmt}")
    async def get_requests(request: Request, fmt: str) -> Response:
        async def make() -> Response:
            query = _query(request)
            _check_jurisdiction(catalogue, query)
            found = await service.requests(uow(), catalogue, read_query(query, catalogue, utcnow()))
            return render(fmt, [service.fields_of(r, catalogue) for r in found], root="service_requests",
                          item="request")
        return await answer(fmt, make)

    @api.get(PREFIX + "/requests/{service_request_id}.{fmt}")
    async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
        async def make() -> Response:
            _check_jurisdiction(catalogue, _query(request))
            found = await service.request(uow(), catalogue, service_request_id)
            return render(fmt, [service.fields_of(found, catalogue)], root="service_requests", item="request")
        return await answer(fmt, make)

    @api.get(PREFIX + "/tokens/{token}.{fmt}")
    async def get_token(request: Request, token: str, fmt: str) -> Response:
        async def make() -> Response:
            _check_jurisdiction(catalogue, _query(request))
            request_id = await service.token(uow(), token)
            return render(fmt, [{"service_request_id": request_id, "token": token}], root="service_requests",
                          item="request")
        return await answer(fmt, make)

    @api.api_route(PREFIX + "/{rest:path}", methods=["GET", "POST"])
    async def unknown(rest: str) -> Response:
        fmt = rest.rpartition(".")[2] if "." in rest else "xml"
        return refusal(fmt, 404, f"no resource {PREFIX}/{rest}")

    return api
