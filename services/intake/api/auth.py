"""The caller of a request, proven by its bearer token (placeholder wiring; see the identity work)."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from shared.errors import Unauthenticated
from shared.identity import Principal

__all__ = ["Caller", "Verifier", "current_principal"]


class Verifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


async def current_principal(request: Request) -> Principal:
    """The principal of the request's ``Authorization: Bearer`` token; 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required", code="missing_token")
    verifier: Verifier = request.app.state.verifier
    return await verifier.verify(token.strip())


#: a route's parameter: the caller
Caller = Annotated[Principal, Depends(current_principal)]
