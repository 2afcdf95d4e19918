"""What the SQL registries (assistants, crons) write through: one connection shape and one transaction
per back-end, on the checkpoint saver's own PostgreSQL pool or SQLite connection."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiosqlite
import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


class Conn(Protocol):
    """A transaction's connection as the registries use it: rows of a query, or the rows a statement changed."""

    async def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int: ...


class PgConn:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = await self._conn.execute(query.replace("?", "%s"), params)
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in await cursor.fetchall()]

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        cursor = await self._conn.execute(query.replace("?", "%s"), params)
        return cursor.rowcount


class SqliteConn:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self._conn.execute(query, params) as cursor:
            return [tuple(r) for r in await cursor.fetchall()]

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        cursor = await self._conn.execute(query, params)
        return cursor.rowcount


class SqlBackend:
    """A registry's transactions and column encodings; :class:`PostgresBackend` and :class:`SqliteBackend` say how."""

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _json(self, value: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _time(self, value: dt.datetime | None) -> Any:
        raise NotImplementedError


class PostgresBackend(SqlBackend):
    def __init__(self, saver: AsyncPostgresSaver) -> None:
        assert isinstance(saver.conn, AsyncConnectionPool)
        self._pool: AsyncConnectionPool[Any] = saver.conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._pool.connection() as conn, conn.transaction():
            yield PgConn(conn)

    def _json(self, value: dict[str, Any]) -> Any:
        return Jsonb(value)

    def _time(self, value: dt.datetime | None) -> Any:
        return value


class SqliteBackend(SqlBackend):
    """On the saver's one connection, under its lock: a transaction commits or rolls back whole."""

    def __init__(self, saver: AsyncSqliteSaver) -> None:
        self._conn: aiosqlite.Connection = saver.conn
        self._lock = saver.lock

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._lock:
            try:
                yield SqliteConn(self._conn)
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    def _json(self, value: dict[str, Any]) -> Any:
        return json.dumps(value)

    def _time(self, value: dt.datetime | None) -> Any:
        # One fixed width, in UTC, so text order is time order (as the thread registry's).
        return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
