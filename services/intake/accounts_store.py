"""The console's accounts and sessions in PostgreSQL (schema ``intake``), by name.

:class:`AccountStore` is what :mod:`services.intake.accounts` uses; ``tests/fakes/accounts.py``
keeps the same operations in memory. A session is found by the SHA-256 of its cookie's secret,
never by the secret itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.intake.domain.accounts import Account
from shared.identity import Principal, Role
from shared.store import PgTransaction, Transaction

__all__ = ["AccountStore", "ApiClient", "PgAccountStore", "SessionRow"]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A live session: its account and the CSRF token its forms carry."""

    account: Account
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApiClient:
    """An Open311 client: its name, the channel its petitions arrive by, and whether its key
    still works."""

    name: str
    channel: str
    created_at: datetime
    revoked_at: datetime | None


class AccountStore(Transaction, Protocol):
    async def api_client_by_key(self, key_hash: str) -> ApiClient | None:
        """The client whose key has this SHA-256 (hex), unless revoked."""
        ...

    async def put_api_client(self, name: str, key_hash: str, channel: str, now: datetime) -> bool:
        """Issue `name` a key: False when it holds one still in force (nothing changes)."""
        ...

    async def revoke_api_client(self, name: str, now: datetime) -> bool: ...

    async def api_clients(self) -> list[ApiClient]: ...

    async def account(self, username: str, *, for_update: bool = False) -> Account | None: ...

    async def put_account(self, principal: Principal, password_hash: str, now: datetime) -> bool:
        """Create the account, or replace its role, scope and password (and unlock it).
        True when it was created."""
        ...

    async def set_failures(self, username: str, failures: int, locked_until: datetime | None,
                           now: datetime) -> None: ...

    async def add_session(self, secret_hash: bytes, username: str, csrf_token: str, now: datetime,
                          expires_at: datetime) -> None: ...

    async def session(self, secret_hash: bytes, now: datetime) -> SessionRow | None:
        """The session of this secret's hash, unless it has expired."""
        ...

    async def end_session(self, secret_hash: bytes) -> None: ...

    async def end_sessions_of(self, username: str) -> int:
        """End every session of an account (its password or role changed); how many."""
        ...

    async def forget_expired_sessions(self, now: datetime) -> int: ...


def _account(r: Any) -> Account:
    principal = Principal(r["username"], Role(r["role"]), frozenset(r["departments"] or ()), r["area"])
    return Account(principal, r["password_hash"], r["failed_logins"], r["locked_until"])


_ACCOUNT = ("SELECT username, password_hash, role, departments, area, failed_logins, locked_until"
            " FROM intake.console_user WHERE username = $1")


class PgAccountStore(PgTransaction):
    """:class:`AccountStore` on PostgreSQL."""

    __slots__ = ()

    async def api_client_by_key(self, key_hash: str) -> ApiClient | None:
        row = await self.conn.fetchrow(
            "SELECT name, channel, created_at, revoked_at FROM intake.api_client"
            " WHERE key_hash = $1 AND revoked_at IS NULL", key_hash)
        return ApiClient(row["name"], row["channel"], row["created_at"], row["revoked_at"]) if row else None

    async def put_api_client(self, name: str, key_hash: str, channel: str, now: datetime) -> bool:
        status = await self.conn.execute(
            """INSERT INTO intake.api_client (name, key_hash, channel, created_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash, channel = EXCLUDED.channel,
                 created_at = EXCLUDED.created_at, revoked_at = NULL
               WHERE intake.api_client.revoked_at IS NOT NULL""",
            name, key_hash, channel, now)
        return status.split()[-1] == "1"

    async def revoke_api_client(self, name: str, now: datetime) -> bool:
        status = await self.conn.execute(
            "UPDATE intake.api_client SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL", name, now)
        return status.split()[-1] == "1"

    async def api_clients(self) -> list[ApiClient]:
        rows = await self.conn.fetch(
            "SELECT name, channel, created_at, revoked_at FROM intake.api_client ORDER BY name")
        return [ApiClient(r["name"], r["channel"], r["created_at"], r["revoked_at"]) for r in rows]

    async def account(self, username: str, *, for_update: bool = False) -> Account | None:
        row = await self.conn.fetchrow(_ACCOUNT + (" FOR UPDATE" if for_update else ""), username)
        return _account(row) if row else None

    async def put_account(self, principal: Principal, password_hash: str, now: datetime) -> bool:
        return bool(await self.conn.fetchval(
            """INSERT INTO intake.console_user (username, password_hash, role, departments, area, failed_logins,
                 locked_until, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, 0, NULL, $6, $6)
               ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
                 departments = EXCLUDED.departments, area = EXCLUDED.area, failed_logins = 0, locked_until = NULL,
                 updated_at = EXCLUDED.updated_at
               RETURNING xmax = 0""",
            principal.subject, password_hash, principal.role.value, sorted(principal.departments), principal.area,
            now,
        ))

    async def set_failures(self, username: str, failures: int, locked_until: datetime | None,
                           now: datetime) -> None:
        await self.conn.execute(
            "UPDATE intake.console_user SET failed_logins = $2, locked_until = $3, updated_at = $4"
            " WHERE username = $1",
            username, failures, locked_until, now,
        )

    async def add_session(self, secret_hash: bytes, username: str, csrf_token: str, now: datetime,
                          expires_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO intake.console_session (secret_hash, username, csrf_token, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            secret_hash, username, csrf_token, now, expires_at,
        )

    async def session(self, secret_hash: bytes, now: datetime) -> SessionRow | None:
        row = await self.conn.fetchrow(
            """SELECT u.username, u.password_hash, u.role, u.departments, u.area, u.failed_logins, u.locked_until,
                      s.csrf_token, s.expires_at
                 FROM intake.console_session s JOIN intake.console_user u USING (username)
                WHERE s.secret_hash = $1 AND s.expires_at > $2""",
            secret_hash, now,
        )
        return SessionRow(_account(row), row["csrf_token"], row["expires_at"]) if row else None

    async def end_session(self, secret_hash: bytes) -> None:
        await self.conn.execute("DELETE FROM intake.console_session WHERE secret_hash = $1", secret_hash)

    async def end_sessions_of(self, username: str) -> int:
        status = await self.conn.execute("DELETE FROM intake.console_session WHERE username = $1", username)
        return int(status.split()[-1])

    async def forget_expired_sessions(self, now: datetime) -> int:
        status = await self.conn.execute("DELETE FROM intake.console_session WHERE expires_at <= $1", now)
        return int(status.split()[-1])
