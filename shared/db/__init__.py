"""PostgreSQL helpers shared by the services: pools, migrations, the outbox, dedup.

Each service owns one schema; these helpers take the schema name and never touch another's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from shared.messages import OutboxMessage

log = logging.getLogger(__name__)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 5,
    command_timeout: float | None = None,
    connect_timeout: float = 10.0,
) -> asyncpg.Pool:
    """Open a pool; JSON/JSONB columns decode to Python objects.

    `command_timeout` bounds every statement on the client side (a frozen server raises
    ``TimeoutError`` instead of hanging); `connect_timeout` bounds opening a connection,
    which the pool does again after a database restart.
    """

    async def _init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)

    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init,
        command_timeout=command_timeout, timeout=connect_timeout,
    )
    assert pool is not None  # noqa: S101 - narrows the type: never None here
    return pool


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON and JSONB as Python objects, in binary format so COPY can carry them too."""
    await conn.set_type_codec(
        "json",
        encoder=lambda v: json.dumps(v, ensure_ascii=False).encode(),
        decoder=json.loads,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + json.dumps(v, ensure_ascii=False).encode(),
        decoder=lambda b: json.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def migrate(conn: asyncpg.Connection, schema: str, folder: Path) -> list[str]:
    """Apply the numbered ``NNN_name.sql`` files of `folder` not yet applied to `schema`.

    Safe to run from several processes at once: an advisory lock serialises them, and each
    file is applied in its own transaction together with its bookkeeping row.
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrate:{schema}")
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]
            for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        for path in sorted(folder.glob("[0-9][0-9][0-9]_*.sql")):  # noqa: ASYNC240 - a few migration files, read once at startup
            version = int(path.name[:3])
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    version,
                    path.name,
                )
            applied.append(path.name)
            log.info("applied migration %s.%s", schema, path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"migrate:{schema}")
    return applied


#: SQL shared by every service schema: the outbox and the processed-event ledger.
COMMON_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id            bigserial PRIMARY KEY,
    topic         text        NOT NULL,
    key           bytea,
    value         bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
-- The relay deletes what it published, so every row is pending and the primary key is the
-- relay's index; a second one (of the days rows were marked published) costs each write.
DROP INDEX IF EXISTS {schema}.outbox_pending;
-- A row lives for milliseconds, until the relay publishes it: compressing large payloads
-- (pglz, on rows over ~2 kB) would cost twice the CPU of the write and gain nothing.
DO $$ BEGIN
    IF (SELECT attstorage FROM pg_attribute
        WHERE attrelid = '{schema}.outbox'::regclass AND attname = 'value') <> 'e' THEN
        ALTER TABLE {schema}.outbox ALTER COLUMN value SET STORAGE EXTERNAL;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS {schema}.processed_event (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""


async def ensure_common_tables(conn: asyncpg.Connection, schema: str) -> None:
    """Create the outbox and processed-event tables of `schema` if missing.

    Serialised with :func:`migrate` (its advisory lock, for this transaction): two sessions
    running ``CREATE TABLE IF NOT EXISTS`` at once on a database without the table may both
    find it missing, and the second then fails on a duplicate catalogue row; several instances
    of a service (intake's workers) start at once on a fresh database."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(COMMON_DDL.format(schema=f'"{schema}"'))


async def open_schema(dsn: str, schema: str, migrations: Path, **pool: Any) -> asyncpg.Pool:
    """A pool on `dsn` with `schema` migrated and its outbox and processed-event tables in
    place: how every service opens its database. A start-up that fails halfway (the database
    went away during the migration) closes the pool, so the caller can try again from scratch.
    `pool` goes to :func:`create_pool`."""
    opened = await create_pool(dsn, **pool)
    try:
        async with opened.acquire() as conn:
            await migrate(conn, schema, migrations)
            await ensure_common_tables(conn, schema)
    except BaseException:
        await opened.close()
        raise
    return opened


async def add_to_outbox(
    conn: asyncpg.Connection, schema: str, messages: Sequence[OutboxMessage]
) -> None:
    """Write `messages` to the outbox in the caller's transaction."""
    if not messages:
        return
    if len(messages) >= 8 and not any(m.headers for m in messages):
        # COPY is several times cheaper than row-by-row inserts for a batch's messages
        await conn.copy_records_to_table(
            "outbox",
            schema_name=schema,
            columns=("topic", "key", "value"),
            records=[(m.topic, m.key, m.value) for m in messages],
        )
        return
    await conn.executemany(
        f'INSERT INTO "{schema}".outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)',
        [(m.topic, m.key, m.value, m.headers or {}) for m in messages],
    )


async def wait_for_postgres(dsn: str, timeout: float = 30.0) -> None:
    """Wait until PostgreSQL accepts a connection (start-up ordering in tests and scripts)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
            await conn.close()
            return
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
