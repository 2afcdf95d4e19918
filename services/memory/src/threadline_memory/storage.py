"""Where checkpoints and long-term memory live: the official LangGraph savers and
stores, on PostgreSQL or a SQLite file.

Reusing ``AsyncPostgresSaver``/``AsyncPostgresStore`` and ``AsyncSqliteSaver``/
``AsyncSqliteStore`` keeps their schemas and migrations;
:class:`~threadline_memory.serde.OpaqueSerde` lets the savers store the callers'
serialized values untouched. :class:`Storage` adds what a network
service needs on top: set-up that is retried until the database answers, and a
time limit on every call so an unreachable database is an error, never a hang.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import TypeVar

import aiosqlite
import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from opentelemetry import trace
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from threadline.grpc import Unavailable

from threadline_memory.assistants import assistants_for
from threadline_memory.crons import crons_for
from threadline_memory.serde import OpaqueSerde
from threadline_memory.settings import MemorySettings
from threadline_memory.threads import registry_for

T = TypeVar("T")
_Store = TypeVar("_Store", AsyncPostgresStore, AsyncSqliteStore)


_tracer = trace.get_tracer("threadline_memory")
# Items put with a TTL: reads restart it, expired items are hidden (PostgreSQL) and swept.
_TRY_SETUP_LOCK = "SELECT pg_try_advisory_lock(hashtext('threadline_memory_setup'))"
_STORE_TTL: TTLConfig = {"refresh_on_read": True, "omit_expired": True, "sweep_interval_minutes": 5}


class StorageUnavailable(Unavailable):
    """The database did not answer; the caller may retry later."""


class Storage:
    """A saver and a store, plus the guard rails every call goes through."""

    def __init__(
        self,
        saver: BaseCheckpointSaver,
        store: BaseStore,
        name: str,
        timeout_s: float,
        migrating: Callable[[], AbstractAsyncContextManager[None]] = nullcontext,
    ) -> None:
        self.saver = saver
        self.store = store
        self.threads = registry_for(saver)  # type: ignore[arg-type]
        self.assistants = assistants_for(saver)  # type: ignore[arg-type]  # its tables are migrated with the threads'
        self.crons = crons_for(saver)  # type: ignore[arg-type]  # so are the crons'
        self.name = name
        self.system = "postgresql" if isinstance(saver, AsyncPostgresSaver) else "sqlite"
        self._timeout_s = timeout_s
        self._setup_done = False
        self._setup_lock = asyncio.Lock()
        self._migrating = migrating

    async def setup(self) -> None:
        """Create or migrate the schema once; if the database is down, the next call tries again."""
        async with self._guard():
            await self._ensure_setup()

    async def run(self, what: str, op: Callable[[BaseCheckpointSaver], Awaitable[T]]) -> T:
        """Run ``op`` on the saver (after set-up) within the time limit, as a span named ``what``."""
        with _tracer.start_as_current_span(f"{self.system} {what}", attributes={"db.system": self.system}):
            async with self._guard():
                await self._ensure_setup()
                return await op(self.saver)

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Turn a database that is down or silent into StorageUnavailable, within the time limit."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except TimeoutError as exc:
            raise StorageUnavailable(f"{self.name} did not answer within {self._timeout_s:g}s") from exc
        except (psycopg.OperationalError, sqlite3.OperationalError) as exc:
            raise StorageUnavailable(f"{self.name} is unavailable: {exc}") from exc

    async def _ensure_setup(self) -> None:
        if self._setup_done:
            return
        async with self._setup_lock:
            if not self._setup_done:
                async with self._migrating():
                    await self.saver.setup()  # type: ignore[attr-defined]
                    await self.threads.setup()
                    await self.store.setup()  # type: ignore[attr-defined]
                self._setup_done = True


@asynccontextmanager
async def open_storage(settings: MemorySettings) -> AsyncIterator[Storage]:
    """PostgreSQL when ``DATABASE_URL`` is set, else the SQLite file; closed on exit."""
    if settings.database_url:
        url = settings.database_url
        async with _postgres(url, settings) as (saver, store):
            yield Storage(
                saver, store, "PostgreSQL", settings.db_timeout_s, partial(_one_at_a_time, url, settings.db_timeout_s)
            )
    else:
        async with _sqlite(settings) as (saver, store):
            yield Storage(saver, store, f"SQLite ({settings.sqlite_path})", settings.db_timeout_s)


@asynccontextmanager
async def _postgres(url: str, settings: MemorySettings) -> AsyncIterator[tuple[AsyncPostgresSaver, AsyncPostgresStore]]:
    pool = AsyncConnectionPool(
        url,
        # Typed as the savers want it, rows as dicts (the row_factory below).
        connection_class=psycopg.AsyncConnection[DictRow],
        min_size=1,
        max_size=settings.db_pool_size,
        # The saver's documented connection settings; connect_timeout bounds a dial into a black hole.
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            "connect_timeout": max(2, round(settings.db_timeout_s)),
        },
        # A connection the server dropped (restart, idle kill) is replaced instead of failing a call.
        check=AsyncConnectionPool.check_connection,
        timeout=settings.db_timeout_s,
        name="memory",
        open=False,
    )
    # Without waiting: the service starts (and answers UNAVAILABLE) while the database is down.
    await pool.open(wait=False)
    try:
        # One pool for both: the store's tables sit beside the saver's and share its limits.
        async with _sweeping(AsyncPostgresStore(pool, ttl=_STORE_TTL)) as store:
            yield AsyncPostgresSaver(pool, serde=OpaqueSerde()), store
    finally:
        await pool.close()


@asynccontextmanager
async def _sqlite(settings: MemorySettings) -> AsyncIterator[tuple[AsyncSqliteSaver, AsyncSqliteStore]]:
    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    # The store gets a connection of its own to the same file: it opens and commits transactions
    # itself (hence autocommit mode), which must not interleave with the saver's on one connection.
    async with (
        aiosqlite.connect(settings.sqlite_path) as conn,
        aiosqlite.connect(settings.sqlite_path, isolation_level=None) as store_conn,
        _sweeping(AsyncSqliteStore(store_conn, ttl=_STORE_TTL)) as store,
    ):
        yield AsyncSqliteSaver(conn, serde=OpaqueSerde()), store


@asynccontextmanager
async def _one_at_a_time(url: str, timeout_s: float) -> AsyncIterator[None]:
    """Replicas starting together migrate one at a time: the saver's and the store's own set-up
    would race (two CREATE TABLE IF NOT EXISTS collide in pg_type). A connection of its own holds
    the lock, so a pool of one connection cannot deadlock; closing it releases the lock. Waiters
    poll rather than block: a blocked statement keeps a snapshot open, which the saver's
    CREATE INDEX CONCURRENTLY, run by the lock's holder, would wait for forever."""
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=max(2, round(timeout_s))
    ) as conn:
        while True:
            if (await (await conn.execute(_TRY_SETUP_LOCK)).fetchone())[0]:  # type: ignore[index]
                break
            await asyncio.sleep(0.1)
        yield


@asynccontextmanager
async def _sweeping(store: _Store) -> AsyncIterator[_Store]:
    """The store, deleting expired items in the background until the block exits."""
    await store.start_ttl_sweeper()
    try:
        yield store
    finally:
        await store.stop_ttl_sweeper(timeout=1.0)
