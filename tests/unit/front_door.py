"""What the front door's tests share: tokens of the embedded issuer, and a small app of the
tests' own with a route that takes a `Caller` and one that does not."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI

from services.intake.api.auth import Caller
from services.intake.api.errors import install_error_handlers
from shared.auth.issuer import issue_token
from shared.auth.settings import AuthSettings
from shared.auth.verify import TokenVerifier
from shared.identity import Principal

AUTH = AuthSettings()


def token_for(run_dir: Path, principal: Principal, ttl: int = 600) -> str:
    return issue_token(AUTH.key_folder(run_dir), principal, issuer=AUTH.jwt_issuer, audience=AUTH.jwt_audience,
                       ttl_seconds=ttl, max_ttl_seconds=AUTH.jwt_max_ttl_seconds, now=int(time.time()))


def small_app(verifier: TokenVerifier) -> FastAPI:
    """An app of the test's own: one route that needs a principal, one that does not."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = verifier

    @app.get("/whoami")
    async def whoami(caller: Caller) -> dict[str, object]:
        return {"subject": caller.subject, "role": caller.role.value, "departments": sorted(caller.departments)}

    @app.get("/open")
    async def open_route() -> dict[str, str]:
        return {"ok": "yes"}

    return app
