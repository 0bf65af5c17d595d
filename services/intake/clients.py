"""Open311 clients and their API keys: the service layer behind ``petitionctl open311 keys``.

A client (a city app, a kiosk, a portal) is issued one key; the key is shown once and only its
SHA-256 is stored. The principal a key proves is an operator (``open311:<name>``) that can do
one thing, submit a request: the key is read only by the Open311 facade's ``POST requests``,
never accepted as a bearer token anywhere else. A revoked key stops working at once (each
request looks its key up). Its petitions arrive by the client's channel (``app`` or
``online``) with the client's name.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from services.intake.accounts_store import AccountStore, ApiClient
from shared.errors import BadInput, Conflict
from shared.identity import Principal, Role
from shared.store import UnitOfWork

__all__ = ["CHANNELS", "KEY_PREFIX", "issue_key", "key_hash", "principal_of", "revoke", "verify_key"]

KEY_PREFIX = "o311_"
CHANNELS = ("app", "online")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KEY = re.compile(r"^o311_[A-Za-z0-9_-]{43}$")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def principal_of(client: ApiClient) -> Principal:
    """Who a key's requests are made by: an operator named after the client."""
    return Principal(f"open311:{client.name}", Role.OPERATOR)


async def issue_key(uow: UnitOfWork[AccountStore], name: str, channel: str, *, now: datetime) -> str:
    """A new key for the client `name` (created, or re-issued after a revocation)."""
    if _NAME.fullmatch(name) is None:
        raise BadInput("a client's name is 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                       code="bad_client_name", field="name")
    if channel not in CHANNELS:
        raise BadInput(f"the channel is one of {', '.join(CHANNELS)}", code="bad_channel", field="channel")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with uow.begin() as store:
        if not await store.put_api_client(name, key_hash(key), channel, now):
            raise Conflict(f"{name} holds a key in force; revoke it first", code="client_exists")
    return key


async def verify_key(uow: UnitOfWork[AccountStore], key: str | None) -> ApiClient | None:
    """The client of a key in force; None for a missing, malformed, unknown or revoked key."""
    if not key or _KEY.fullmatch(key) is None:
        return None
    async with uow.begin() as store:
        return await store.api_client_by_key(key_hash(key))


async def revoke(uow: UnitOfWork[AccountStore], name: str, *, now: datetime) -> bool:
    async with uow.begin() as store:
        return await store.revoke_api_client(name, now)


async def clients(uow: UnitOfWork[AccountStore]) -> list[ApiClient]:
    async with uow.begin() as store:
        return await store.api_clients()
