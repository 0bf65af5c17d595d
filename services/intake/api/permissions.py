"""Who may call each endpoint: one table, for people, for the published spec and for the tests.

The service layer enforces the rules (:mod:`services.intake.domain.access`,
:mod:`services.intake.handlers`); this table states, per endpoint and role, what a caller gets
for a target inside its scope and for one outside it, so that

* the OpenAPI document tells each operation's roles (:func:`describe`);
* the authorization matrix test calls every endpoint as every role, in and out of scope and
  anonymously, and expects exactly these answers — and fails for an endpoint that has no row
  here, so no endpoint is added without deciding who may call it.

``in scope``: the petition is one the caller sees (its department's, its area's …), the unit is
one of its own. A petition out of scope does not exist for the caller (``404``); a unit out of
scope is refused (``403``: naming a unit reveals nothing). A role that may never call an
endpoint gets ``403`` whatever the target; nobody without a valid token gets more than ``401``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.identity import Role

__all__ = ["ENDPOINTS", "OPEN311", "PAGES", "PUBLIC", "PUBLIC_PAGES", "Outcome", "describe"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A role's answer: for a target in its scope, and for one outside it."""

    in_scope: int
    out_of_scope: int


ALLOW_PETITION = Outcome(200, 404)  # a petition in scope, or one that does not exist for the caller
ACT_ON_PETITION = Outcome(202, 404)
ALLOW_UNIT = Outcome(200, 403)
ACT_FOR_UNIT = Outcome(202, 403)
ALWAYS = Outcome(200, 200)
NEVER = Outcome(403, 403)

#: endpoints anyone may call, without a token
PUBLIC: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
})


#: the Open311 GeoReport v2 facade: reading is public, as the standard intends (what it shows
#: of a petition is what the public tracking page shows); posting a request needs an Open311
#: client's `api_key` (services.intake.clients), which is no token and opens nothing else
OPEN311: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/open311/v2/discovery.{fmt}"), ("GET", "/open311/v2/services.{fmt}"),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"), ("GET", "/open311/v2/requests.{fmt}"),
    ("POST", "/open311/v2/requests.{fmt}"), ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"),
    ("GET", "/open311/v2/tokens/{token}.{fmt}"),
    # anything else under the prefix: the standard's 404
    ("GET", "/open311/v2/{rest:path}"), ("POST", "/open311/v2/{rest:path}"),
})


def _only(**roles: Outcome) -> dict[Role, Outcome]:
    return {role: roles.get(role.value, NEVER) for role in Role}


#: (method, path template) -> what each role gets
ENDPOINTS: dict[tuple[str, str], dict[Role, Outcome]] = {
    ("POST", "/v1/petitions"): _only(operator=Outcome(202, 202)),
    ("GET", "/v1/petitions/{ref}"): _only(operator=ALWAYS, department=ALLOW_PETITION, triage=ALLOW_PETITION,
                                          supervisor=ALLOW_PETITION),
    ("POST", "/v1/petitions/{ref}/actions"): _only(department=ACT_ON_PETITION, triage=ACT_ON_PETITION,
                                                   supervisor=ACT_ON_PETITION),
    # an operator sees every petition but the contacts of its own only (403 for another's)
    ("POST", "/v1/petitions/{ref}/contacts"): _only(operator=Outcome(200, 403), department=ALLOW_PETITION,
                                                    supervisor=ALLOW_PETITION),
    ("POST", "/v1/petitions/{ref}/supervision"): _only(supervisor=ACT_ON_PETITION),
    ("GET", "/v1/supervision"): _only(department=ALLOW_UNIT, supervisor=ALLOW_UNIT),
    ("POST", "/v1/supervision/{supervision_id}/close"): _only(department=Outcome(202, 404),
                                                              supervisor=Outcome(202, 404)),
    ("POST", "/v1/zero-reports"): _only(department=ACT_FOR_UNIT),
    ("GET", "/v1/zero-reports"): _only(department=ALLOW_UNIT, supervisor=ALLOW_UNIT),
    ("GET", "/v1/audit"): _only(auditor=ALWAYS),
    ("GET", "/v1/admin/reference"): _only(admin=ALWAYS),
    ("GET", "/v1/kpis"): _only(department=ALLOW_UNIT, supervisor=ALLOW_UNIT, auditor=ALWAYS, admin=ALWAYS),
    # early warning: a supervisor's area (an `area` outside it is refused); nobody else's
    ("GET", "/v1/alerts"): _only(supervisor=ALLOW_UNIT),
}


#: the console's pages anyone may open (the sign-in form, the public tracking page, the
#: console's own style sheet and script)
PUBLIC_PAGES: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/track"), ("GET", "/console"), ("GET", "/console/login"), ("POST", "/console/login"),
    ("GET", "/console/static/{name}"), ("POST", "/track/rate"),
    # the public board (晒单) and its open data
    ("GET", "/public/cases"), ("GET", "/public/cases.json"), ("GET", "/public/cases.csv"),
    ("GET", "/public/stats"), ("GET", "/public/stats.json"), ("GET", "/public/stats.csv"),
})

_EVERYONE = frozenset(Role)
#: the console's pages for people signed in (a session cookie, not a token), and whose they
#: are; the service layer beneath checks scope exactly as for the API (another department's
#: petition is "not found" on a page too). Signing out needs a session, whatever its role.
PAGES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/console/"): _EVERYONE,
    ("POST", "/console/logout"): _EVERYONE,
    ("GET", "/console/open"): _EVERYONE,
    ("GET", "/console/desk"): frozenset({Role.OPERATOR}),
    ("POST", "/console/desk"): frozenset({Role.OPERATOR}),
    ("POST", "/console/desk/suggest"): frozenset({Role.OPERATOR}),
    ("GET", "/console/search"): frozenset({Role.OPERATOR}),
    ("POST", "/console/search"): frozenset({Role.OPERATOR}),
    ("GET", "/console/queue"): frozenset({Role.DEPARTMENT}),
    ("GET", "/console/events"): frozenset({Role.DEPARTMENT}),
    ("GET", "/console/overview"): frozenset({Role.SUPERVISOR}),
    ("GET", "/console/triage"): frozenset({Role.TRIAGE}),
    ("POST", "/console/supervision/{supervision_id}/close"): frozenset({Role.SUPERVISOR, Role.DEPARTMENT}),
    ("GET", "/console/petitions/{ref}"): frozenset({Role.OPERATOR, Role.DEPARTMENT, Role.TRIAGE, Role.SUPERVISOR}),
    ("POST", "/console/petitions/{ref}/supervise"): frozenset({Role.SUPERVISOR}),
    ("POST", "/console/petitions/{ref}/act"): frozenset({Role.DEPARTMENT, Role.TRIAGE, Role.SUPERVISOR}),
    ("POST", "/console/petitions/{ref}/follow-up"): frozenset({Role.OPERATOR}),
}


#: what a role's row cannot say: an operator takes one action only, the follow-up call (回访) on
#: a resolved petition (the matrix test's operator asks for another action, and is refused)
NOTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/petitions/{ref}/actions"): " An operator records follow-ups (`follow_up`) only; a supervisor"
                                              " decides extensions and unlinks a petition from its incident"
                                              " (`unlink`).",
}


def describe(method: str, path: str) -> str | None:
    """The roles that may call an endpoint, for its description in the spec (None: public or
    not in the table)."""
    rules = ENDPOINTS.get((method.upper(), path))
    if rules is None:
        return None
    allowed = [role.value for role, outcome in rules.items() if outcome.in_scope < 400]
    note = NOTES.get((method.upper(), path), "")
    return ("Roles: " + ", ".join(allowed) + "." if allowed else "No role may call it.") + note
