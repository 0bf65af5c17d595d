"""Who calls a local stack from the tools around it (the demo load, the integration tests):
tokens of the stack's own issuer, and the caller a request naturally comes from.

Tokens are issued with the stack's key ring (``<run dir>/secrets/jwt``, the folder intake
verifies with), in-process, as ``petitionctl token issue`` does. :class:`NaturalCaller` (an
``httpx.Auth``) signs each request as the person who would send it: an operator posts and looks
up petitions; a department's clerk acts for its department, files its zero reports and reads
its 督办; the triage desk assigns; a supervisor of the unit's area decides extensions and closes
or opens 督办; an auditor reads the audit log; an admin the reference data. Tests about who may
do what (the authorization matrix, the accusation test) choose their callers explicitly with
:func:`token_for`. Never used by the services: only a holder of the run folder's secrets can
issue tokens, which is what makes it a tool of the local stack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from functools import cache
from pathlib import Path

import httpx

from shared.auth.issuer import issue_token
from shared.auth.settings import AuthSettings
from shared.codes import is_department_code
from shared.identity import Principal, Role
from shared.reference.directory import area_token
from shared.reference.files import load_directory

AUTH = AuthSettings()
OPERATOR = Principal("op-test", Role.OPERATOR)
AUDITOR = Principal("auditor-test", Role.AUDITOR)
ADMIN = Principal("admin-test", Role.ADMIN)

_tokens: dict[tuple[Path, Principal], tuple[str, float]] = {}


def token_for(run_dir: Path, principal: Principal, ttl: int = 3600) -> str:
    """A token of the stack's issuer for `principal` (cached while it has minutes to live)."""
    key = (run_dir, principal)
    found = _tokens.get(key)
    now = time.time()
    if found is not None and found[1] - now > 300:
        return found[0]
    token = issue_token(AUTH.key_folder(run_dir), principal, issuer=AUTH.jwt_issuer, audience=AUTH.jwt_audience,
                        ttl_seconds=ttl, max_ttl_seconds=AUTH.jwt_max_ttl_seconds, now=int(now))
    _tokens[key] = (token, now + ttl)
    return token


@cache
def _area_codes(routing: Path | None, gazetteer: Path | None) -> dict[str, str]:
    """Area token (``A3``) -> gazetteer code (``430103``)."""
    return {a.token: a.code for a in load_directory(routing, gazetteer).gazetteer.areas()}


def clerk(*units: str) -> Principal:
    return Principal(f"clerk-{'+'.join(units)}", Role.DEPARTMENT, frozenset(units))


def supervisor_of(unit: str, *, routing: Path | None = None, gazetteer: Path | None = None) -> Principal:
    """A supervisor of the area the unit belongs to (``A3-GOV`` → the A3 district); of the
    province for a unit of no known area (a test naming a unit that does not exist)."""
    codes = _area_codes(routing, gazetteer)
    code = codes.get(area_token(unit), codes["P"])
    return Principal(f"supervisor-{area_token(unit)}", Role.SUPERVISOR, area=code)


class NaturalCaller(httpx.Auth):
    """Signs each request with the token of whoever would naturally send it (see the module)."""

    requires_request_body = True

    def __init__(self, run_dir: Path, *, triage_desk: str = "TRIAGE", routing: Path | None = None,
                 gazetteer: Path | None = None) -> None:
        self.run_dir, self.triage_desk = run_dir, triage_desk
        self._files = {"routing": routing, "gazetteer": gazetteer}

    def caller(self, request: httpx.Request) -> Principal:
        path, method = request.url.path, request.method
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        unit = body.get("department") if isinstance(body.get("department"), str) else None
        if unit is not None and not is_department_code(unit):
            unit = None  # no unit's clerk: the operator asks (and gets the validation error)
        if method == "POST" and path.endswith("/actions") and unit:
            if body.get("action") in ("approve_extension", "reject_extension", "unlink"):
                return supervisor_of(unit, **self._files)
            if body.get("action") == "assign" or unit == self.triage_desk:
                return Principal("desk-test", Role.TRIAGE, frozenset({unit}))
            return clerk(unit)
        if method == "POST" and (path.endswith(("/close", "/supervision"))) and unit:
            return supervisor_of(unit, **self._files)
        if path.startswith(("/v1/zero-reports", "/v1/supervision")):
            named = body.get("unit") or request.url.params.get("unit")
            if isinstance(named, str) and is_department_code(named):
                return clerk(named)
        if path.startswith("/v1/audit"):
            return AUDITOR
        if path.startswith("/v1/admin"):
            return ADMIN
        return OPERATOR

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token_for(self.run_dir, self.caller(request))}"
        yield request
