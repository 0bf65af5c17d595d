"""One shape for every refusal, and the handlers that produce it.

Every answer that is not a success is ``{"error": <stable code>, "message": <text>}``, with
``"errors": [{"field", "message", "type"}]`` when particular fields are at fault. The service
layer raises the families of :mod:`shared.errors` (:data:`STATUS_OF` maps each to its status:
``BadInput`` 422, ``NotFound`` 404, ``Conflict`` 409, ``Unavailable`` 503, ``Unauthenticated``
401 with ``WWW-Authenticate: Bearer`` (RFC 6750), ``Forbidden`` 403), and this module
answers the rest: invalid fields (422), a body that is not JSON (400) or cannot be read at all (400), an unknown path
(404), a method the path does not have (405, with ``Allow``), a body over the limit (413), a
database or broker outage (503 with ``Retry-After``: :func:`shared.errors.is_transient`
decides), a caller over its rate (429 with ``Retry-After``, :mod:`services.intake.api.ratelimit`)
and a defect (500, nothing more said). The OpenAPI document declares them per operation
(:data:`COMMAND_RESPONSES` and friends).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.intake import metrics
from services.intake.commands import ACTION_TAGS
from shared.errors import BadInput, Conflict, Forbidden, NotFound, PetitionError, Unauthenticated, Unavailable
from shared.outages import is_transient

log = logging.getLogger(__name__)

#: loc parts that are a tagged union's tag, not a field (the action models' discriminator)
UNION_TAGS = ACTION_TAGS

RETRY_AFTER = "5"


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every refusal: a stable code, a human message, and the fields at fault if any."""

    error: str
    message: str
    errors: list[FieldError] | None = None


#: the answer's status for each family of the error tree (shared.errors); a family missing
#: here is a defect (500)
STATUS_OF: dict[type[PetitionError], int] = {
    BadInput: 422, NotFound: 404, Conflict: 409, Unavailable: 503, Unauthenticated: 401, Forbidden: 403,
}


def status_of(exc: PetitionError) -> int:
    for family, status in STATUS_OF.items():
        if isinstance(exc, family):
            return status
    return 500


def _doc(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description, **extra}


_RETRY_HEADER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}}
R400: dict[int | str, dict[str, Any]] = {400: _doc("the body is not JSON, or cannot be read")}
R401: dict[int | str, dict[str, Any]] = {401: _doc(
    "no valid bearer token (`error` says why: missing_token, token_expired, bad_signature …)",
    headers={"WWW-Authenticate": {"description": "`Bearer`, with `error=\"invalid_token\"` when a token was given",
                                  "schema": {"type": "string"}}},
)}
R403: dict[int | str, dict[str, Any]] = {403: _doc("the caller's role may not do this")}
R404: dict[int | str, dict[str, Any]] = {404: _doc("no such petition / 督办")}
R409: dict[int | str, dict[str, Any]] = {409: _doc("the request conflicts with the current state")}
R413: dict[int | str, dict[str, Any]] = {413: _doc("the body is larger than the limit")}
R422: dict[int | str, dict[str, Any]] = {422: _doc("invalid fields; `errors` names each")}
R429: dict[int | str, dict[str, Any]] = {
    429: _doc("too many requests from this caller (its token's subject, else its address)", headers=_RETRY_HEADER)
}
R503: dict[int | str, dict[str, Any]] = {
    503: _doc("storage or broker unavailable; nothing was recorded", headers=_RETRY_HEADER)
}

#: what every operation that needs a principal may answer besides its own refusals
_CALLER = {**R401, **R403, **R429}
#: a command with a JSON body on a resource
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {**R400, **_CALLER, **R404, **R409, **R413, **R422, **R503}
#: a command with a JSON body that creates (no path parameter)
CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {**R400, **_CALLER, **R409, **R413, **R422, **R503}
#: a lookup of one resource
LOOKUP_RESPONSES: dict[int | str, dict[str, Any]] = {**_CALLER, **R404, **R413, **R422, **R503}
#: a listing by query parameters
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {**_CALLER, **R413, **R422, **R503}
#: a public document (no token, no parameters): what the middleware may still answer
PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {**R413, **R429, **R503}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    if parts and parts[0] in UNION_TAGS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def error_response(status: int, code: str, message: str, *, errors: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _unavailable(exc: BaseException) -> JSONResponse:
    log.warning("storage or broker unavailable: %r", exc)
    if isinstance(exc, Unavailable) and exc.code != Unavailable.code:  # a precise outage says which
        metrics.REJECTED.labels(exc.code).inc()
        return error_response(503, exc.code, exc.message, headers={"Retry-After": RETRY_AFTER})
    metrics.REJECTED.labels("unavailable").inc()
    return error_response(503, "unavailable", "storage unavailable, nothing was recorded; retry",
                          headers={"Retry-After": RETRY_AFTER})


#: what RFC 6750 lets an error_description hold (printable ASCII but `"` and `\`)
_NOT_IN_DESCRIPTION = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def authenticate_header(exc: PetitionError) -> str:
    """The ``WWW-Authenticate`` challenge of a 401 or 403 (RFC 6750 section 3)."""
    if isinstance(exc, Forbidden):
        return 'Bearer error="insufficient_scope"'
    if exc.code == "missing_token":
        return "Bearer"
    description = _NOT_IN_DESCRIPTION.sub("?", exc.message)
    return f'Bearer error="invalid_token", error_description="{description}"'


def _internal(exc: BaseException) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an internal error occurred; it has been logged")


_HTTP_CODES = {
    400: ("malformed_body", "the request body cannot be read"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "the resource does not support this method"),
    413: ("body_too_large", "the request body exceeds the limit"),
}


def allowed_methods(app: Any, scope: Any) -> str:
    """Every method some route serves at this path (asked of the router itself), and OPTIONS."""
    methods: list[str] = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            methods.append(method)
    return ", ".join([*methods, "OPTIONS"])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            metrics.REJECTED.labels("malformed_json").inc()
            return error_response(400, "malformed_json", "the body is not valid JSON")
        metrics.REJECTED.labels("validation").inc()
        fields = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
            for e in errors
        ]
        named = ", ".join(dict.fromkeys(f["field"] for f in fields))
        return error_response(422, "validation_failed", f"invalid fields: {named}", errors=fields)

    @app.exception_handler(PetitionError)
    async def _refused(request: Request, exc: PetitionError) -> JSONResponse:
        status = status_of(exc)
        if status == 503:
            return _unavailable(exc)
        if status == 500:
            return _internal(exc)
        metrics.REJECTED.labels(exc.code).inc()
        errors = [{"field": exc.field, "message": exc.message, "type": exc.code}] if exc.field else None
        headers = {"WWW-Authenticate": authenticate_header(exc)} if status in (401, 403) else None
        return error_response(status, exc.code, exc.message, errors=errors, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path; a path served
            # by several routes (GET and POST /v1/zero-reports) has all of theirs
            headers["Allow"] = allowed_methods(request.app, request.scope)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        code, default = _HTTP_CODES.get(exc.status_code, (f"http_{exc.status_code}", "the request was refused"))
        metrics.REJECTED.labels(code).inc()
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in (404, 405) else default
        return error_response(exc.status_code, code, detail, headers=headers)

    # Errors a route lets through: an outage is 503, anything else a defect (500). The
    # families below are handled where the route raised them; `Exception` catches the rest
    # (outages wrapped in another error, found through the `from` chain, included).
    async def _failure(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(exc) if is_transient(exc) else _internal(exc)

    for family in (OSError, TimeoutError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError,
                   asyncpg.exceptions.InternalClientError):
        app.add_exception_handler(family, _failure)
    app.add_exception_handler(Exception, _failure)
