"""People's accounts: usernames, lock-out, sessions and their CSRF tokens (on the fake store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake import accounts
from services.intake.accounts_store import AccountStore
from services.intake.domain.accounts import Account, LockoutPolicy, after_failure, is_locked, valid_username
from shared.errors import BadInput, Unauthenticated
from shared.identity import Principal, Role
from shared.store import UnitOfWork
from tests.fakes import FakeUnitOfWork
from tests.fakes.accounts import AccountDb, FakeAccountStore

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=3, lock_for=timedelta(minutes=15), session_for=timedelta(hours=12))
CLERK = Principal("clerk.wang", Role.DEPARTMENT, frozenset({"A3-HOUSING"}))
PASSWORD = "correct horse battery"  # noqa: S105 - a test account's


def uow(db: AccountDb) -> UnitOfWork[AccountStore]:
    return FakeUnitOfWork(db, FakeAccountStore)


@pytest.fixture
async def db() -> AccountDb:
    database = AccountDb()
    await accounts.add_user(uow(database), CLERK, PASSWORD, now=NOW)
    return database


@pytest.mark.parametrize(("name", "ok"), [
    ("clerk.wang", True), ("op-001", True), ("a1", True), ("A1", False), ("x", False), ("-x1", False),
    ("王", False), ("a b", False), ("a" * 64, True), ("a" * 65, False), ("x\n", False),
])
def test_usernames_are_staff_logins(name: str, ok: bool) -> None:
    assert valid_username(name) is ok


def test_the_lock_comes_with_the_last_allowed_failure_and_the_count_restarts_after_it() -> None:
    account = Account(CLERK, "h")
    assert after_failure(account, NOW, POLICY) == (1, None)
    account = Account(CLERK, "h", failed_logins=2)
    assert after_failure(account, NOW, POLICY) == (3, NOW + timedelta(minutes=15))
    locked = Account(CLERK, "h", failed_logins=3, locked_until=NOW + timedelta(minutes=15))
    assert is_locked(locked, NOW + timedelta(minutes=14)) and not is_locked(locked, NOW + timedelta(minutes=15))
    assert after_failure(locked, NOW + timedelta(minutes=16), POLICY) == (1, None)


async def test_the_password_is_stored_as_an_argon2_hash(db: AccountDb) -> None:
    stored = db.accounts["clerk.wang"].password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_signing_in_opens_a_session_with_the_accounts_principal_and_its_own_csrf_token(db: AccountDb) -> None:
    done = await accounts.sign_in(uow(db), "Clerk.Wang ", PASSWORD, now=NOW, policy=POLICY)
    assert done.principal == CLERK and done.expires_at == NOW + timedelta(hours=12)
    assert len(done.secret) >= 40 and len(done.csrf_token) >= 40 and done.secret != done.csrf_token
    assert done.secret.encode() not in b"".join(db.sessions)  # only its hash is kept
    session = await accounts.session_of(uow(db), done.secret, now=NOW + timedelta(hours=1))
    assert session is not None and session.principal == CLERK and session.csrf_token == done.csrf_token
    assert await accounts.session_of(uow(db), done.secret, now=NOW + timedelta(hours=12)) is None  # expired
    assert await accounts.session_of(uow(db), "forged", now=NOW) is None
    await accounts.sign_out(uow(db), done.secret)
    assert await accounts.session_of(uow(db), done.secret, now=NOW) is None


async def test_a_wrong_password_an_unknown_user_and_a_locked_account_get_one_refusal(db: AccountDb) -> None:
    refusals = []
    for username, password in (("clerk.wang", "wrong password!"), ("nobody", PASSWORD), ("王", PASSWORD)):
        with pytest.raises(Unauthenticated) as refused:
            await accounts.sign_in(uow(db), username, password, now=NOW, policy=POLICY)
        refusals.append((refused.value.code, refused.value.message))
    assert len(set(refusals)) == 1


async def test_repeated_failures_lock_the_account_even_against_its_right_password(db: AccountDb) -> None:
    for _ in range(POLICY.max_failures):
        with pytest.raises(Unauthenticated):
            await accounts.sign_in(uow(db), "clerk.wang", "wrong password!", now=NOW, policy=POLICY)
    assert db.accounts["clerk.wang"].locked_until == NOW + POLICY.lock_for
    with pytest.raises(Unauthenticated):
        await accounts.sign_in(uow(db), "clerk.wang", PASSWORD, now=NOW + timedelta(minutes=14), policy=POLICY)
    assert not db.sessions
    # the lock ends; the right password works and clears the count
    done = await accounts.sign_in(uow(db), "clerk.wang", PASSWORD, now=NOW + timedelta(minutes=16), policy=POLICY)
    assert done.principal == CLERK
    assert db.accounts["clerk.wang"].failed_logins == 0 and db.accounts["clerk.wang"].locked_until is None


async def test_a_good_sign_in_forgets_earlier_failures(db: AccountDb) -> None:
    for _ in range(POLICY.max_failures - 1):
        with pytest.raises(Unauthenticated):
            await accounts.sign_in(uow(db), "clerk.wang", "wrong password!", now=NOW, policy=POLICY)
    await accounts.sign_in(uow(db), "clerk.wang", PASSWORD, now=NOW, policy=POLICY)
    with pytest.raises(Unauthenticated):
        await accounts.sign_in(uow(db), "clerk.wang", "wrong password!", now=NOW, policy=POLICY)
    assert db.accounts["clerk.wang"].locked_until is None  # one failure, not the limit


async def test_replacing_an_account_ends_its_sessions_and_lifts_its_lock(db: AccountDb) -> None:
    done = await accounts.sign_in(uow(db), "clerk.wang", PASSWORD, now=NOW, policy=POLICY)
    moved = Principal("clerk.wang", Role.DEPARTMENT, frozenset({"A3-URBAN"}))
    assert await accounts.add_user(uow(db), moved, "another long password", now=NOW) is False
    assert await accounts.session_of(uow(db), done.secret, now=NOW) is None
    again = await accounts.sign_in(uow(db), "clerk.wang", "another long password", now=NOW, policy=POLICY)
    assert again.principal == moved


@pytest.mark.parametrize(("username", "password", "code"), [
    ("Bad Name", PASSWORD, "invalid_username"), ("ok.name", "short", "weak_password"),
])
async def test_an_account_needs_a_staff_login_and_a_long_enough_password(username: str, password: str,
                                                                        code: str) -> None:
    principal = Principal(username, Role.OPERATOR)
    with pytest.raises(BadInput) as refused:
        await accounts.add_user(uow(AccountDb()), principal, password, now=NOW)
    assert refused.value.code == code
