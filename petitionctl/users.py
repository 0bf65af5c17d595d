"""``petitionctl users add``: people's accounts for the console.

``users add --username <u> --role <role> [--department <code>]... [--area <code>] --password-stdin``
creates an account, or replaces an existing one's role, scope and password (which ends its
sessions and lifts a lock). The role and scope are checked as ``token issue`` checks them (the
same units and areas); the password is read from standard input, never from the command line
(where ``ps`` and the shell's history would show it), and stored as an Argon2id hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from petitionctl.tokens import USAGE_ERROR, Refused, principal_from
from shared.identity import ROLES
from shared.settings import load_settings


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise Refused("give the password on standard input with --password-stdin (never on the command line)")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise Refused("no password on standard input")
    return password


def _users_add(args: argparse.Namespace) -> int:
    from services.intake.accounts import add_user
    from services.intake.accounts_store import PgAccountStore
    from shared.db import create_pool
    from shared.errors import BadInput
    from shared.store import PgUnitOfWork

    try:
        settings = load_settings()
        args.subject = args.username
        principal = principal_from(args, settings)
        password = _read_password(args)
    except (Refused, ValueError) as exc:
        print(f"petitionctl users add: error: {exc}", file=sys.stderr)
        return USAGE_ERROR

    from shared.db import ensure_common_tables, migrate

    migrations = Path(__file__).resolve().parent.parent / "services" / "intake" / "migrations"

    async def run() -> bool:
        pool = await create_pool(args.dsn or settings.pg_dsn, max_size=1)
        try:
            async with pool.acquire() as conn:  # the accounts' table, if intake never ran here yet
                await migrate(conn, "intake", migrations)
                await ensure_common_tables(conn, "intake")
            return await add_user(PgUnitOfWork(pool, "intake", PgAccountStore), principal, password,
                                  now=datetime.now(UTC))
        finally:
            await pool.close()

    try:
        created = asyncio.run(run())
    except BadInput as exc:
        print(f"petitionctl users add: error: {exc.message}", file=sys.stderr)
        return USAGE_ERROR
    scope = (f", departments {', '.join(sorted(principal.departments))}" if principal.departments else "") + (
        f", area {principal.area}" if principal.area else "")
    print(f"{'created' if created else 'updated'} {principal.subject}: {principal.role.value}{scope}"
          f"{'' if created else ' (its sessions were ended)'}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="people's accounts for the console")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create or replace a person's account (password from stdin)")
    add.add_argument("--username", required=True, help="the staff login (a-z, 0-9, '.', '_', '-')")
    add.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    add.add_argument("--department", action="append", metavar="CODE",
                     help="a unit the department clerk acts for (repeat for several)")
    add.add_argument("--area", help="the supervisor's area: a 6-digit code or a token like A3, A, P")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--dsn", help="PostgreSQL (default PETITION_PG_DSN)")
    add.set_defaults(func=_users_add)
