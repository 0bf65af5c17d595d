"""Who calls: the ``Caller`` a route takes, and the public keys of the platform's issuer.

A route that needs a principal takes a ``caller: Caller`` parameter. :func:`current_principal`
reads ``Authorization: Bearer <token>`` and asks ``app.state.verifier`` (set by
:func:`services.intake.app.create_app`; any object with ``async def verify(token) ->
Principal`` raising :class:`~shared.errors.Unauthenticated`) who it is. No header, or another
scheme, is ``401 missing_token``; a token that does not verify is ``401`` with its code and
``WWW-Authenticate: Bearer error="invalid_token"`` (:mod:`services.intake.api.errors`).

Declaring the bearer scheme through FastAPI's :class:`~fastapi.security.HTTPBearer` (with
``auto_error=False``: the refusal is ours, in the project's shape) makes the published spec
list the security requirement on exactly the operations that take a ``Caller``.

``GET /.well-known/jwks.json`` publishes the embedded issuer's public keys (public, no
token): the active key and the retired ones whose tokens may still be valid.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from services.intake.api.errors import PUBLIC_RESPONSES
from shared.auth.claims import refused
from shared.errors import PetitionError
from shared.identity import Principal

__all__ = ["VERIFIED", "Caller", "bearer_token", "current_principal", "router"]

#: the ASGI scope key under which the rate limiter leaves what it verified: (token, principal
#: or the refusal), so that a request's token is verified once
VERIFIED = "petition.verified"

_scheme = HTTPBearer(
    scheme_name="bearer", bearerFormat="JWT", auto_error=False,
    description="a token of `petitionctl token issue` or of the city's OIDC provider",
)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None for another scheme
    or none; ``""`` for the Bearer scheme without a token."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)] = None,
) -> Principal:
    """The verified principal of the request's bearer token; Unauthenticated otherwise."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise refused("missing_token", "this operation needs an Authorization: Bearer token")
    seen = request.scope.get(VERIFIED)
    if seen is not None and seen[0] == token:
        if isinstance(seen[1], PetitionError):
            raise seen[1]
        principal: Principal = seen[1]
        return principal
    verified: Principal = await request.app.state.verifier.verify(token)
    return verified


#: a route's parameter: ``caller: Caller``
Caller = Annotated[Principal, Depends(current_principal)]


class PublicKey(BaseModel):
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class KeySet(BaseModel):
    """A JSON Web Key Set (RFC 7517): the keys tokens of this platform's issuer verify with."""

    keys: list[PublicKey]


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/.well-known/jwks.json", response_model=KeySet, tags=["tokens"], responses=PUBLIC_RESPONSES,
             summary="the embedded issuer's public keys (JWKS)")
    async def jwks(request: Request) -> JSONResponse:
        # a client caches it briefly and fetches again when a token names a kid it lacks
        return JSONResponse(request.app.state.verifier.jwks(), headers={"Cache-Control": "public, max-age=60"})

    return api
