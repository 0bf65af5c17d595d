"""The console's accounts and sessions in memory (the operations of :class:`AccountStore`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from services.intake.accounts_store import ApiClient, SessionRow
from services.intake.domain.accounts import Account
from shared.identity import Principal
from tests.fakes import FakeDatabase, FakeTransaction


class AccountDb(FakeDatabase):
    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, Account] = {}
        self.sessions: dict[bytes, dict[str, Any]] = {}
        self.clients: dict[str, tuple[str, ApiClient]] = {}  # name -> (key hash, client)


class FakeAccountStore(FakeTransaction):
    db: AccountDb

    async def api_client_by_key(self, key_hash: str) -> ApiClient | None:
        self.db.maybe_fail()
        return next((c for h, c in self.db.clients.values() if h == key_hash and c.revoked_at is None), None)

    async def put_api_client(self, name: str, key_hash: str, channel: str, now: datetime) -> bool:
        found = self.db.clients.get(name)
        if found is not None and found[1].revoked_at is None:
            return False
        self.db.clients[name] = (key_hash, ApiClient(name, channel, now, None))
        return True

    async def revoke_api_client(self, name: str, now: datetime) -> bool:
        found = self.db.clients.get(name)
        if found is None or found[1].revoked_at is not None:
            return False
        self.db.clients[name] = (found[0], replace(found[1], revoked_at=now))
        return True

    async def api_clients(self) -> list[ApiClient]:
        return [c for _, c in sorted(self.db.clients.values(), key=lambda hc: hc[1].name)]

    async def account(self, username: str, *, for_update: bool = False) -> Account | None:
        self.db.maybe_fail()
        return self.db.accounts.get(username)

    async def put_account(self, principal: Principal, password_hash: str, now: datetime) -> bool:
        self.db.maybe_fail()
        created = principal.subject not in self.db.accounts
        self.db.accounts[principal.subject] = Account(principal, password_hash)
        return created

    async def set_failures(self, username: str, failures: int, locked_until: datetime | None,
                           now: datetime) -> None:
        self.db.maybe_fail()
        account = self.db.accounts[username]
        self.db.accounts[username] = replace(account, failed_logins=failures, locked_until=locked_until)

    async def add_session(self, secret_hash: bytes, username: str, csrf_token: str, now: datetime,
                          expires_at: datetime) -> None:
        self.db.maybe_fail()
        self.db.sessions[secret_hash] = {"username": username, "csrf_token": csrf_token, "expires_at": expires_at}

    async def session(self, secret_hash: bytes, now: datetime) -> SessionRow | None:
        self.db.maybe_fail()
        found = self.db.sessions.get(secret_hash)
        if found is None or found["expires_at"] <= now:
            return None
        return SessionRow(self.db.accounts[found["username"]], found["csrf_token"], found["expires_at"])

    async def end_session(self, secret_hash: bytes) -> None:
        self.db.sessions.pop(secret_hash, None)

    async def end_sessions_of(self, username: str) -> int:
        ended = [k for k, v in self.db.sessions.items() if v["username"] == username]
        for k in ended:
            del self.db.sessions[k]
        return len(ended)

    async def forget_expired_sessions(self, now: datetime) -> int:
        expired = [k for k, v in self.db.sessions.items() if v["expires_at"] <= now]
        for k in expired:
            del self.db.sessions[k]
        return len(expired)
