"""The permissions table covers every endpoint the API serves, and the spec names each
operation's roles from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from services.intake.api.permissions import ENDPOINTS, OPEN311, PAGES, PUBLIC, PUBLIC_PAGES, describe
from services.intake.app import create_app
from shared.identity import Role
from shared.settings import Settings


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route of the app, into included routers (FastAPI includes them lazily)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        else:
            yield route


def served_endpoints() -> set[tuple[str, str]]:
    app = create_app(Settings(hmac_key="k" * 64))
    found = {(method, route.path) for route in _routes(app.routes)
             for method in (getattr(route, "methods", None) or ()) if method != "HEAD"}
    assert len(found) > 10  # the walk found the routers' routes
    return found


def test_every_endpoint_has_a_rule_and_every_rule_an_endpoint() -> None:
    served = served_endpoints()
    ruled = set(ENDPOINTS) | PUBLIC | set(PAGES) | PUBLIC_PAGES | OPEN311
    assert served - ruled == set(), "an endpoint without a rule in services/intake/api/permissions.py"
    assert (set(ENDPOINTS) | set(PAGES) | PUBLIC_PAGES | OPEN311) - served == set(), \
        "a rule for an endpoint that is not served"


def test_every_rule_names_every_role() -> None:
    for endpoint, rules in ENDPOINTS.items():
        assert set(rules) == set(Role), endpoint


def test_the_spec_names_the_roles_of_each_operation() -> None:
    assert describe("post", "/v1/petitions") == "Roles: operator."
    assert describe("GET", "/v1/audit") == "Roles: auditor."
    assert describe("GET", "/healthz") is None
