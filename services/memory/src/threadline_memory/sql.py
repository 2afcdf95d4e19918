"""The one connection shape the SQL registries (assistants, crons) write through, on PostgreSQL or SQLite."""

from __future__ import annotations

from typing import Any, Protocol

import aiosqlite
import psycopg


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
