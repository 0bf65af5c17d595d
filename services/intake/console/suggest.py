"""The operator desk's live suggestion: it asks the router (``POST /v1/suggestions`` on the
router's port) where the petition being typed in would go, so the suggestion is the router's
own decision (its classifier, routing table and repeat check), not a second copy of it.

The desk calls as the signed-in operator: a token of the embedded issuer for that person,
short-lived and reused while it lasts. What must hold: a router that is down, slow or
refusing makes the desk show no suggestion, never an error (taking the call comes first);
no raw phone number leaves intake (the router gets the caller's pseudonym).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from shared.auth.issuer import issue_token
from shared.auth.settings import AuthSettings
from shared.identity import Principal

log = logging.getLogger(__name__)

TOKEN_SECONDS = 300


class RouterSuggestions:
    """Asks the router; `url` is its base (``http://127.0.0.1:8081``)."""

    def __init__(self, url: str, auth: AuthSettings, run_dir: Path, *, timeout: float = 1.5) -> None:
        self.url = url.rstrip("/")
        self.auth = auth
        self.folder = auth.key_folder(run_dir)
        self.timeout = timeout
        self._tokens: dict[Principal, tuple[str, float]] = {}
        self._client: httpx.AsyncClient | None = None

    def _token(self, principal: Principal) -> str | None:
        if not self.auth.jwt_embedded:
            return None  # tokens come from the city's provider: the desk cannot speak for the operator
        now = time.time()
        held = self._tokens.get(principal)
        if held is not None and held[1] > now + 30:
            return held[0]
        token = issue_token(self.folder, principal, issuer=self.auth.jwt_issuer, audience=self.auth.jwt_audience,
                            ttl_seconds=min(TOKEN_SECONDS, self.auth.jwt_max_ttl_seconds),
                            max_ttl_seconds=self.auth.jwt_max_ttl_seconds, now=int(now))
        if len(self._tokens) > 1000:
            self._tokens.clear()
        self._tokens[principal] = (token, now + TOKEN_SECONDS)
        return token

    async def ask(self, principal: Principal, petition: dict[str, Any]) -> dict[str, Any] | None:
        """The router's answer for `petition`, or None when it cannot give one now."""
        try:
            token = await asyncio.to_thread(self._token, principal)
        except (OSError, ValueError) as exc:
            log.warning("operator desk: no token to ask the router with (%s)", exc)
            return None
        if token is None:
            return None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            answer = await self._client.post(f"{self.url}/v1/suggestions", json=petition,
                                             headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.info("operator desk: the router did not answer a suggestion (%r)", exc)
            return None
        if answer.status_code != 200:
            log.info("operator desk: the router answered a suggestion with %s", answer.status_code)
            return None
        found = answer.json()
        return found if isinstance(found, dict) else None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
