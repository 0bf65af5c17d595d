"""Signing people in to the console: the service layer of accounts and sessions.

A person signs in with a username and a password; the session that follows carries the same
:class:`~shared.identity.Principal` an API token would (role, departments, area), so every page
goes through the same service layer and the same access checks as the API.

What must hold:

* passwords are stored as Argon2id hashes (pwdlib), hashed and checked off the event loop;
* a wrong password, an unknown username and a locked account get the same refusal, after the
  same work (an unknown username is checked against a dummy hash), so the answer does not tell
  which usernames exist;
* lock-out (:mod:`services.intake.domain.accounts`): wrong passwords are counted per account;
  a locked account refuses even its right password until the lock ends;
* the session's secret (the cookie) is 32 random bytes; only its SHA-256 is stored. Each
  session has its own CSRF token, which every form of the console carries;
* changing an account (``petitionctl users add`` again) ends its sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from services.intake.accounts_store import AccountStore
from services.intake.domain.accounts import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    LockoutPolicy,
    after_failure,
    is_locked,
    valid_username,
)
from shared.errors import BadInput, Unauthenticated
from shared.identity import Principal
from shared.store import UnitOfWork

__all__ = ["Session", "SignedIn", "add_user", "session_of", "sign_in", "sign_out"]

PASSWORDS = PasswordHash((Argon2Hasher(),))
REFUSED = "用户名或密码错误，或账号已暂时锁定"


@cache
def _dummy_hash() -> str:
    """A hash no password of anybody's matches (checked for unknown usernames: the same work)."""
    return PASSWORDS.hash(secrets.token_urlsafe(24))


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie's `secret`, the CSRF token of its forms, who and until when."""

    secret: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf_token: str
    expires_at: datetime


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadInput(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                       code="weak_password", field="password")


async def add_user(uow: UnitOfWork[AccountStore], principal: Principal, password: str, *, now: datetime) -> bool:
    """Create a person's account, or replace its role, scope and password (ending its sessions
    and lifting a lock). True when it was created."""
    if not valid_username(principal.subject):
        raise BadInput("a username has 2 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                       code="invalid_username", field="username")
    check_password_rules(password)
    hashed = await asyncio.to_thread(PASSWORDS.hash, password)
    async with uow.begin() as store:
        created = await store.put_account(principal, hashed, now)
        await store.end_sessions_of(principal.subject)
    return created


async def sign_in(uow: UnitOfWork[AccountStore], username: str, password: str, *, now: datetime,
                  policy: LockoutPolicy) -> SignedIn:
    """Check a username and password; a new session, or :class:`Unauthenticated` (one refusal
    for every reason)."""
    username = username.strip().lower()
    if not valid_username(username) or len(password) > MAX_PASSWORD_LENGTH:
        await asyncio.to_thread(PASSWORDS.verify, password[:MAX_PASSWORD_LENGTH], _dummy_hash())
        raise Unauthenticated(REFUSED, code="sign_in_refused")
    async with uow.begin() as store:
        account = await store.account(username)
    if account is None:
        await asyncio.to_thread(PASSWORDS.verify, password, _dummy_hash())
        raise Unauthenticated(REFUSED, code="sign_in_refused")
    good, new_hash = await asyncio.to_thread(PASSWORDS.verify_and_update, password, account.password_hash)
    async with uow.begin() as store:
        account = await store.account(username, for_update=True)  # counted under the row's lock
        if account is None:
            raise Unauthenticated(REFUSED, code="sign_in_refused")
        if is_locked(account, now):
            raise Unauthenticated(REFUSED, code="sign_in_refused")
        if not good:
            failures, locked_until = after_failure(account, now, policy)
            await store.set_failures(username, failures, locked_until, now)
    if not good:  # the failure is committed before the refusal leaves
        raise Unauthenticated(REFUSED, code="sign_in_refused")
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + policy.session_for
    async with uow.begin() as store:
        if account.failed_logins or account.locked_until is not None:
            await store.set_failures(username, 0, None, now)
        if new_hash is not None:  # the hasher's parameters changed since: keep the stronger hash
            await store.put_account(account.principal, new_hash, now)
        await store.add_session(secret_hash(secret), username, csrf, now, expires_at)
    return SignedIn(secret, csrf, account.principal, expires_at)


async def session_of(uow: UnitOfWork[AccountStore], secret: str | None, *, now: datetime) -> Session | None:
    """The live session of a cookie's secret (None: none, expired or ended)."""
    if not secret or len(secret) > 128:
        return None
    async with uow.begin() as store:
        row = await store.session(secret_hash(secret), now)
    return Session(row.account.principal, row.csrf_token, row.expires_at) if row else None


async def sign_out(uow: UnitOfWork[AccountStore], secret: str | None) -> None:
    if secret and len(secret) <= 128:
        async with uow.begin() as store:
            await store.end_session(secret_hash(secret))
