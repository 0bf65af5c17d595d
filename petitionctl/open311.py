"""``petitionctl open311 keys add|list|revoke``: the API keys of Open311 clients.

``keys add --name <client> [--channel app|online]`` prints a new key alone on standard output
(shown once: only its SHA-256 is stored); the client's requests arrive by that channel with its
name. ``keys revoke --name <client>`` stops a key at once; ``keys add`` may then issue the
client a new one. ``keys list`` prints the clients, never their keys.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from petitionctl.tokens import USAGE_ERROR
from shared.settings import load_settings

T = TypeVar("T")


def _with_accounts(args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]) -> T:
    from services.intake.accounts_store import PgAccountStore
    from shared.db import create_pool, ensure_common_tables, migrate
    from shared.store import PgUnitOfWork

    migrations = Path(__file__).resolve().parent.parent / "services" / "intake" / "migrations"

    async def run() -> T:
        pool = await create_pool(args.dsn or load_settings().pg_dsn, max_size=1)
        try:
            async with pool.acquire() as conn:  # the clients' table, if intake never ran here yet
                await migrate(conn, "intake", migrations)
                await ensure_common_tables(conn, "intake")
            return await work(PgUnitOfWork(pool, "intake", PgAccountStore))
        finally:
            await pool.close()

    return asyncio.run(run())


def _add(args: argparse.Namespace) -> int:
    from services.intake.clients import issue_key
    from shared.errors import BadInput, Conflict

    try:
        key = _with_accounts(args, lambda uow: issue_key(uow, args.name, args.channel, now=datetime.now(UTC)))
    except (BadInput, Conflict) as exc:
        print(f"petitionctl open311 keys add: error: {exc.message}", file=sys.stderr)
        return USAGE_ERROR
    print(key)
    print(f"issued a key to {args.name} (channel {args.channel}); it is shown only now", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from services.intake.clients import revoke

    if not _with_accounts(args, lambda uow: revoke(uow, args.name, now=datetime.now(UTC))):
        print(f"petitionctl open311 keys revoke: error: {args.name} holds no key in force", file=sys.stderr)
        return USAGE_ERROR
    print(f"revoked the key of {args.name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from services.intake.clients import clients

    for client in _with_accounts(args, clients):
        state = f"revoked {client.revoked_at.isoformat()}" if client.revoked_at else "in force"
        print(f"{client.name}\t{client.channel}\tissued {client.created_at.isoformat()}\t{state}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    open311 = sub.add_parser("open311", help="the Open311 GeoReport v2 facade")
    open311_sub = open311.add_subparsers(dest="open311_command", required=True)
    keys = open311_sub.add_parser("keys", help="Open311 clients' API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="issue a client a key (printed alone on stdout, once)")
    add.add_argument("--name", required=True, help="the client (a-z, 0-9, '.', '_', '-')")
    add.add_argument("--channel", default="app", choices=("app", "online"),
                     help="the channel its requests arrive by (default app)")
    add.set_defaults(func=_add)
    revoke = keys_sub.add_parser("revoke", help="stop a client's key at once")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(func=_revoke)
    listing = keys_sub.add_parser("list", help="the clients, their channels and whether their keys are in force")
    listing.set_defaults(func=_list)
    for parser in (add, revoke, listing):
        parser.add_argument("--dsn", help="PostgreSQL (default PETITION_PG_DSN)")
