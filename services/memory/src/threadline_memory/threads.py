"""The thread registry: which threads a tenant has, with their metadata and times.

The savers know checkpoints, not threads; listing a tenant's threads by metadata, newest
first, needs a table of its own. A thread is registered when it is created through the
API or when its first checkpoint is written, and every checkpoint bumps ``updated_at``.
The table sits next to the saver's, on the same connection, and is migrated by numbered
steps recorded in ``threadline_memory_migrations`` (the saver migrates its own tables).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiosqlite
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from threadline_memory import assistants, crons

SortBy = Literal["created_at", "updated_at", "thread_id"]
SortOrder = Literal["asc", "desc"]
# Checkpoint metadata a thread takes on when a run registers it, so it can be found by them.
INHERITED_KEYS = ("assistant_id", "graph_id", "user_id")


class ThreadExists(Exception):
    """A thread with that id is already registered for the tenant."""


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = field(default_factory=dict)


class ThreadRegistry(Protocol):
    async def setup(self) -> None: ...
    async def create(
        self, tenant: str, thread_id: str, metadata: dict[str, Any], *, if_exists_do_nothing: bool
    ) -> ThreadRow: ...
    async def get(self, tenant: str, thread_id: str) -> ThreadRow | None: ...
    async def merge_metadata(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> ThreadRow | None: ...
    async def touch(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> None: ...
    async def search(
        self,
        tenant: str,
        metadata: dict[str, Any],
        *,
        limit: int,
        offset: int,
        sort_by: SortBy,
        sort_order: SortOrder,
    ) -> list[ThreadRow]: ...
    async def delete(self, tenant: str, thread_id: str) -> None: ...
    async def ids(self, tenant: str, user_id: str | None) -> list[str]: ...


def registry_for(saver: AsyncPostgresSaver | AsyncSqliteSaver) -> ThreadRegistry:
    if isinstance(saver, AsyncPostgresSaver):
        return PostgresThreads(saver)
    return SqliteThreads(saver)


def _inherited(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: metadata[k] for k in INHERITED_KEYS if isinstance(metadata.get(k), str)}


_PG_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_threads (
        tenant_id text NOT NULL,
        thread_id text NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, thread_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS threadline_threads_updated ON threadline_threads (tenant_id, updated_at)",
    "CREATE INDEX IF NOT EXISTS threadline_threads_metadata ON threadline_threads USING gin (metadata)",
    # Threads whose checkpoints were written before the registry existed.
    """
    INSERT INTO threadline_threads (tenant_id, thread_id)
    SELECT DISTINCT split_part(thread_id, ':', 1), substr(thread_id, strpos(thread_id, ':') + 1)
    FROM checkpoints WHERE strpos(thread_id, ':') > 0
    ON CONFLICT DO NOTHING
    """,
    # 4-6: the assistant registry's tables (assistants.py). One numbered sequence: new steps go at the end.
    *assistants.PG_MIGRATIONS,
    # 7-8: the crons' table (crons.py).
    *crons.PG_MIGRATIONS,
)


class PostgresThreads:
    def __init__(self, saver: AsyncPostgresSaver) -> None:
        # open_storage gives the saver a pool, which this shares.
        assert isinstance(saver.conn, AsyncConnectionPool)
        self._pool: AsyncConnectionPool[AsyncConnection[DictRow]] = saver.conn

    async def setup(self) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            # Replicas starting together migrate one at a time.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('threadline_memory_migrations'))")
            await conn.execute("CREATE TABLE IF NOT EXISTS threadline_memory_migrations (v integer PRIMARY KEY)")
            cursor = await conn.execute("SELECT coalesce(max(v), -1) AS v FROM threadline_memory_migrations")
            row = await cursor.fetchone()
            assert row is not None  # an aggregate always has its one row
            done = row["v"]
            for version, statement in enumerate(_PG_MIGRATIONS):
                if version > done:
                    await conn.execute(statement)
                    await conn.execute("INSERT INTO threadline_memory_migrations (v) VALUES (%s)", (version,))

    async def _one(self, query: str, params: tuple[Any, ...]) -> ThreadRow | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(query, params)).fetchone()
        return _pg_row(row) if row else None

    async def create(
        self, tenant: str, thread_id: str, metadata: dict[str, Any], *, if_exists_do_nothing: bool
    ) -> ThreadRow:
        created = await self._one(
            "INSERT INTO threadline_threads (tenant_id, thread_id, metadata) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING *",
            (tenant, thread_id, Jsonb(metadata)),
        )
        if created is not None:
            return created
        existing = await self.get(tenant, thread_id)
        if existing is None or not if_exists_do_nothing:
            # Absent here means it was deleted in between; to the caller it was there.
            raise ThreadExists(thread_id)
        return existing

    async def get(self, tenant: str, thread_id: str) -> ThreadRow | None:
        return await self._one(
            "SELECT * FROM threadline_threads WHERE tenant_id = %s AND thread_id = %s", (tenant, thread_id)
        )

    async def merge_metadata(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> ThreadRow | None:
        return await self._one(
            "UPDATE threadline_threads SET metadata = metadata || %s, updated_at = now()"
            " WHERE tenant_id = %s AND thread_id = %s RETURNING *",
            (Jsonb(metadata), tenant, thread_id),
        )

    async def touch(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO threadline_threads (tenant_id, thread_id, metadata) VALUES (%s, %s, %s)"
                " ON CONFLICT (tenant_id, thread_id) DO UPDATE SET updated_at = now()",
                (tenant, thread_id, Jsonb(_inherited(metadata))),
            )

    async def search(
        self,
        tenant: str,
        metadata: dict[str, Any],
        *,
        limit: int,
        offset: int,
        sort_by: SortBy,
        sort_order: SortOrder,
    ) -> list[ThreadRow]:
        # sort_by and sort_order are checked against their Literals by the caller; nothing else reaches the SQL.
        query = (
            "SELECT * FROM threadline_threads WHERE tenant_id = %s AND metadata @> %s"
            f" ORDER BY {sort_by} {sort_order}, thread_id LIMIT %s OFFSET %s"
        )
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(query, (tenant, Jsonb(metadata), limit, offset))).fetchall()
        return [_pg_row(row) for row in rows]

    async def delete(self, tenant: str, thread_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM threadline_threads WHERE tenant_id = %s AND thread_id = %s", (tenant, thread_id)
            )

    async def ids(self, tenant: str, user_id: str | None) -> list[str]:
        query = "SELECT thread_id FROM threadline_threads WHERE tenant_id = %s"
        params: tuple[str, ...] = (tenant,)
        if user_id is not None:
            query, params = query + " AND metadata ->> 'user_id' = %s", (tenant, user_id)
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        return [row["thread_id"] for row in rows]


def _pg_row(row: dict[str, Any]) -> ThreadRow:
    return ThreadRow(
        thread_id=row["thread_id"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
        metadata=row["metadata"],
    )


_SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_threads (
        tenant_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, thread_id)
    )
    """,
    """
    INSERT OR IGNORE INTO threadline_threads (tenant_id, thread_id, created_at, updated_at)
    SELECT DISTINCT substr(thread_id, 1, instr(thread_id, ':') - 1), substr(thread_id, instr(thread_id, ':') + 1),
        strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')
    FROM checkpoints WHERE instr(thread_id, ':') > 0
    """,
    # 2-4: the assistant registry's tables (assistants.py). One numbered sequence: new steps go at the end.
    *assistants.SQLITE_MIGRATIONS,
    # 5-6: the crons' table (crons.py).
    *crons.SQLITE_MIGRATIONS,
)


def _now() -> str:
    # One fixed width, so text order is time order.
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class SqliteThreads:
    """The embedded default: one connection, shared with the saver under its lock."""

    def __init__(self, saver: AsyncSqliteSaver) -> None:
        self._conn: aiosqlite.Connection = saver.conn
        self._lock = saver.lock

    async def setup(self) -> None:
        async with self._lock:
            await self._conn.execute("CREATE TABLE IF NOT EXISTS threadline_memory_migrations (v INTEGER PRIMARY KEY)")
            async with self._conn.execute("SELECT coalesce(max(v), -1) FROM threadline_memory_migrations") as cursor:
                (done,) = await cursor.fetchone()  # type: ignore[misc]
            for version, statement in enumerate(_SQLITE_MIGRATIONS):
                if version > done:
                    await self._conn.execute(statement)
                    await self._conn.execute("INSERT INTO threadline_memory_migrations (v) VALUES (?)", (version,))
            await self._conn.commit()

    async def _rows(self, query: str, params: tuple[Any, ...]) -> list[ThreadRow]:
        async with self._lock, self._conn.execute(query, params) as cursor:
            rows = await cursor.fetchall()
        return [ThreadRow(r[0], r[2], r[3], json.loads(r[1])) for r in rows]

    async def _write(self, query: str, params: tuple[Any, ...]) -> int:
        async with self._lock:
            cursor = await self._conn.execute(query, params)
            await self._conn.commit()
            return cursor.rowcount

    async def create(
        self, tenant: str, thread_id: str, metadata: dict[str, Any], *, if_exists_do_nothing: bool
    ) -> ThreadRow:
        now = _now()
        try:
            await self._write(
                "INSERT INTO threadline_threads (tenant_id, thread_id, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (tenant, thread_id, json.dumps(metadata), now, now),
            )
        except sqlite3.IntegrityError:
            existing = await self.get(tenant, thread_id)
            if existing is None or not if_exists_do_nothing:
                raise ThreadExists(thread_id) from None
            return existing
        return ThreadRow(thread_id, now, now, metadata)

    async def get(self, tenant: str, thread_id: str) -> ThreadRow | None:
        rows = await self._rows(
            "SELECT thread_id, metadata, created_at, updated_at FROM threadline_threads"
            " WHERE tenant_id = ? AND thread_id = ?",
            (tenant, thread_id),
        )
        return rows[0] if rows else None

    async def merge_metadata(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> ThreadRow | None:
        # json_patch would drop keys set to null; a merge keeps them, as PostgreSQL's || does.
        found = await self.get(tenant, thread_id)
        if found is None:
            return None
        merged = found.metadata | metadata
        await self._write(
            "UPDATE threadline_threads SET metadata = ?, updated_at = ? WHERE tenant_id = ? AND thread_id = ?",
            (json.dumps(merged), _now(), tenant, thread_id),
        )
        return await self.get(tenant, thread_id)

    async def touch(self, tenant: str, thread_id: str, metadata: dict[str, Any]) -> None:
        now = _now()
        await self._write(
            "INSERT INTO threadline_threads (tenant_id, thread_id, metadata, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, thread_id) DO UPDATE SET updated_at = excluded.updated_at",
            (tenant, thread_id, json.dumps(_inherited(metadata)), now, now),
        )

    async def search(
        self,
        tenant: str,
        metadata: dict[str, Any],
        *,
        limit: int,
        offset: int,
        sort_by: SortBy,
        sort_order: SortOrder,
    ) -> list[ThreadRow]:
        # The embedded store is small: the metadata match is made here rather than in SQL.
        rows = await self._rows(
            "SELECT thread_id, metadata, created_at, updated_at FROM threadline_threads"
            f" WHERE tenant_id = ? ORDER BY {sort_by} {sort_order}, thread_id",
            (tenant,),
        )
        matching = [r for r in rows if all(r.metadata.get(k, _ABSENT) == v for k, v in metadata.items())]
        return matching[offset : offset + limit]

    async def delete(self, tenant: str, thread_id: str) -> None:
        await self._write("DELETE FROM threadline_threads WHERE tenant_id = ? AND thread_id = ?", (tenant, thread_id))

    async def ids(self, tenant: str, user_id: str | None) -> list[str]:
        rows = await self._rows(
            "SELECT thread_id, metadata, created_at, updated_at FROM threadline_threads WHERE tenant_id = ?", (tenant,)
        )
        return [r.thread_id for r in rows if user_id is None or r.metadata.get("user_id") == user_id]


_ABSENT = object()
