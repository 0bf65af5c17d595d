"""People's accounts for the console: who may sign in, when an account locks, how long a
session lasts. Pure: no database, no hashing library, no web framework.

What must hold:

* a username is a staff login (lower-case ASCII letters, digits, ``.``, ``_``, ``-``; 2 to 64
  characters, starting with a letter or digit), so it is safe in logs, in the audit log and as
  a token's subject;
* after ``max_failures`` wrong passwords in a row an account is locked for ``lock_for``; while
  it is locked even the right password is refused (an attacker learns nothing from trying),
  and the count starts again after the lock ends or after a good sign-in;
* a session lasts at most ``session_for`` from its sign-in (a shift), whatever its use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.identity import Principal

__all__ = ["USERNAME", "Account", "LockoutPolicy", "after_failure", "is_locked", "valid_username"]

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
#: the shortest password accepted for an account (a passphrase is better; the length is what counts)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


def valid_username(name: str) -> bool:
    return USERNAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)
    session_for: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Account:
    """A person's account: its principal (role and scope, as a token would carry them), its
    password's hash and its lock-out state."""

    principal: Principal
    password_hash: str
    failed_logins: int = 0
    locked_until: datetime | None = None

    @property
    def username(self) -> str:
        return self.principal.subject


def is_locked(account: Account, now: datetime) -> bool:
    return account.locked_until is not None and now < account.locked_until


def after_failure(account: Account, now: datetime, policy: LockoutPolicy) -> tuple[int, datetime | None]:
    """The failure count and lock of `account` after one more wrong password at `now`: a lock
    that has ended starts the count again; the count reaching the policy's limit locks it."""
    failures = 1 if account.locked_until is not None and now >= account.locked_until else account.failed_logins + 1
    if failures >= policy.max_failures:
        return failures, now + policy.lock_for
    return failures, None
