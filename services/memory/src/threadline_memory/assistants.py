"""The assistant registry: each tenant's assistants, their versions, and the graphs the agents serve.

An assistant (LangGraph Platform's model) is a graph with its own config, context, name,
description and metadata, kept in numbered versions: an update adds a version and makes it the
latest, and any earlier one can be made the latest again. ``threadline_assistants`` holds each
assistant as its latest version says, ``threadline_assistant_versions`` every version, and
``threadline_graphs`` the schemas of each graph an agent announced (``RegisterGraphs``).

A graph's default assistant belongs to no tenant (its ``tenant_id`` is ``''``, which no tenant
id can be), so every tenant sees it; it is made by the system and never changed through the API.
The tables are created by the numbered migrations of :mod:`threadline_memory.threads`, on the
saver's connection, like the thread registry's. One implementation serves both back-ends: the
SQL is the same but for placeholders and types, and the filters a search applies beyond tenant
and graph (name, metadata) run here, since a tenant has tens of assistants, not millions.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from threadline.assistants import SYSTEM_METADATA, default_assistant_id

from threadline_memory.sql import Conn, PostgresBackend, SqlBackend, SqliteBackend

SYSTEM_TENANT = ""  # the owner of every graph's default assistant: no tenant id is empty
AssistantSortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]
SortOrder = Literal["asc", "desc"]
SCHEMA_KINDS = ("input", "output", "state", "config", "context", "graph")

_COLUMNS = (
    "assistant_id, graph_id, name, description, config, context, metadata, version, created_at, updated_at, tenant_id"
)
# A version is never changed: it was updated when it was made.
_VERSION_COLUMNS = (
    "assistant_id, graph_id, name, description, config, context, metadata, version, created_at,"
    " created_at AS updated_at, tenant_id"
)


class AssistantExists(Exception):
    """The assistant id is taken (by the tenant, or by a graph's default assistant)."""


class UnknownGraph(Exception):
    """No agent has registered a graph of that name."""


class ReadOnly(Exception):
    """A graph's default assistant is every tenant's, so no tenant may change it."""


@dataclass(frozen=True)
class AssistantRow:
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: str
    updated_at: str
    system: bool = False


@dataclass(frozen=True)
class Changes:
    """What an update changes; ``None`` keeps the previous version's value, metadata is merged."""

    graph_id: str | None = None
    name: str | None = None
    description: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphRow:
    graph_id: str
    schemas: dict[str, Any]  # kind (SCHEMA_KINDS) -> JSON object, or absent


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _matches(row: AssistantRow, metadata: Mapping[str, Any]) -> bool:
    return all(k in row.metadata and row.metadata[k] == v for k, v in metadata.items())


class SqlAssistants(SqlBackend):
    """The registry over one back-end; :class:`PostgresAssistants` and :class:`SqliteAssistants` say which."""

    def _row(self, row: tuple[Any, ...]) -> AssistantRow:
        def obj(v: Any) -> dict[str, Any]:
            return json.loads(v) if isinstance(v, str) else dict(v or {})

        def ts(v: Any) -> str:
            return v.isoformat() if isinstance(v, dt.datetime) else str(v)

        return AssistantRow(
            assistant_id=row[0],
            graph_id=row[1],
            name=row[2],
            description=row[3],
            config=obj(row[4]),
            context=obj(row[5]),
            metadata=obj(row[6]),
            version=row[7],
            created_at=ts(row[8]),
            updated_at=ts(row[9]),
            system=row[10] == SYSTEM_TENANT,
        )

    async def _visible(self, conn: Conn, tenant: str, assistant_id: str) -> AssistantRow | None:
        """The tenant's assistant or a default one, by id or by its graph's name."""
        ids = (assistant_id, default_assistant_id(assistant_id))
        rows = await conn.rows(
            f"SELECT {_COLUMNS} FROM threadline_assistants"
            " WHERE tenant_id IN (?, ?) AND (assistant_id = ? OR (tenant_id = ? AND assistant_id = ?))",
            (tenant, SYSTEM_TENANT, ids[0], SYSTEM_TENANT, ids[1]),
        )
        found = [self._row(r) for r in rows]
        # An id beats a graph's name: a graph may be named like another assistant's id.
        return next((r for r in found if r.assistant_id == assistant_id), found[0] if found else None)

    async def _own(self, conn: Conn, tenant: str, assistant_id: str) -> AssistantRow | None:
        """Like :meth:`_visible`, but a default assistant is :class:`ReadOnly`."""
        found = await self._visible(conn, tenant, assistant_id)
        if found is not None and found.system:
            raise ReadOnly(found.assistant_id)
        return found

    async def _insert_version(self, conn: Conn, tenant: str, row: AssistantRow, at: dt.datetime) -> None:
        await conn.execute(
            "INSERT INTO threadline_assistant_versions (tenant_id, assistant_id, version, graph_id, name,"
            " description, config, context, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant,
                row.assistant_id,
                row.version,
                row.graph_id,
                row.name,
                row.description,
                self._json(row.config),
                self._json(row.context),
                self._json(row.metadata),
                self._time(at),
            ),
        )

    async def _graph_known(self, conn: Conn, graph_id: str) -> bool:
        return bool(await conn.rows("SELECT 1 FROM threadline_graphs WHERE graph_id = ?", (graph_id,)))

    async def create(
        self, tenant: str, row: AssistantRow, *, if_exists_do_nothing: bool, owner: str | None = None
    ) -> AssistantRow:
        """Insert ``row`` (its version 1) for ``tenant`` (``owner`` overrides it: the system)."""
        owner = tenant if owner is None else owner
        at = _now()
        async with self._transaction() as conn:
            if not await self._graph_known(conn, row.graph_id):
                raise UnknownGraph(row.graph_id)
            taken = await conn.rows(
                f"SELECT {_COLUMNS} FROM threadline_assistants WHERE tenant_id IN (?, ?) AND assistant_id = ?",
                (owner, SYSTEM_TENANT, row.assistant_id),
            )
            if taken:
                if if_exists_do_nothing:
                    return self._row(taken[0])
                raise AssistantExists(row.assistant_id)
            await conn.execute(
                f"INSERT INTO threadline_assistants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.assistant_id,
                    row.graph_id,
                    row.name,
                    row.description,
                    self._json(row.config),
                    self._json(row.context),
                    self._json(row.metadata),
                    1,
                    self._time(at),
                    self._time(at),
                    owner,
                ),
            )
            created = replace(row, version=1)
            await self._insert_version(conn, owner, created, at)
            found = await self._visible(conn, owner, row.assistant_id)
        assert found is not None
        return found

    async def get(self, tenant: str, assistant_id: str) -> AssistantRow | None:
        async with self._transaction() as conn:
            return await self._visible(conn, tenant, assistant_id)

    async def update(self, tenant: str, assistant_id: str, changes: Changes) -> AssistantRow | None:
        at = _now()
        async with self._transaction() as conn:
            current = await self._own(conn, tenant, assistant_id)
            if current is None:
                return None
            if changes.graph_id and not await self._graph_known(conn, changes.graph_id):
                raise UnknownGraph(changes.graph_id)
            (top,) = await conn.rows(
                "SELECT max(version) FROM threadline_assistant_versions WHERE tenant_id = ? AND assistant_id = ?",
                (tenant, current.assistant_id),
            )
            new = AssistantRow(
                assistant_id=current.assistant_id,
                graph_id=changes.graph_id or current.graph_id,
                name=changes.name or current.name,
                description=current.description if changes.description is None else changes.description,
                config=current.config if changes.config is None else changes.config,
                context=current.context if changes.context is None else changes.context,
                metadata=current.metadata | changes.metadata,
                version=(top[0] or 0) + 1,
                created_at=current.created_at,
                updated_at=at.isoformat(),
            )
            await self._insert_version(conn, tenant, new, at)
            await self._make_latest(conn, tenant, new, at)
            return await self._visible(conn, tenant, current.assistant_id)

    async def _make_latest(self, conn: Conn, tenant: str, row: AssistantRow, at: dt.datetime) -> None:
        await conn.execute(
            "UPDATE threadline_assistants SET graph_id = ?, name = ?, description = ?, config = ?, context = ?,"
            " metadata = ?, version = ?, updated_at = ? WHERE tenant_id = ? AND assistant_id = ?",
            (
                row.graph_id,
                row.name,
                row.description,
                self._json(row.config),
                self._json(row.context),
                self._json(row.metadata),
                row.version,
                self._time(at),
                tenant,
                row.assistant_id,
            ),
        )

    async def set_latest(self, tenant: str, assistant_id: str, version: int) -> AssistantRow | None:
        """Make ``version`` the latest; None when the assistant or that version does not exist."""
        async with self._transaction() as conn:
            current = await self._own(conn, tenant, assistant_id)
            if current is None:
                return None
            rows = await conn.rows(
                f"SELECT {_VERSION_COLUMNS} FROM threadline_assistant_versions"
                " WHERE tenant_id = ? AND assistant_id = ? AND version = ?",
                (tenant, current.assistant_id, version),
            )
            if not rows:
                return None
            await self._make_latest(conn, tenant, self._row(rows[0]), _now())
            return await self._visible(conn, tenant, current.assistant_id)

    async def search(
        self,
        tenant: str,
        *,
        graph_id: str = "",
        name: str = "",
        metadata: Mapping[str, Any] | None = None,
        sort_by: AssistantSortBy = "updated_at",
        sort_order: SortOrder = "desc",
    ) -> list[AssistantRow]:
        """Every matching assistant the tenant sees, sorted; the caller pages."""
        # sort_by and sort_order are checked against their Literals by the caller; nothing else reaches the SQL.
        query = f"SELECT {_COLUMNS} FROM threadline_assistants WHERE tenant_id IN (?, ?)"
        params: tuple[Any, ...] = (tenant, SYSTEM_TENANT)
        if graph_id:
            query, params = query + " AND graph_id = ?", (*params, graph_id)
        async with self._transaction() as conn:
            rows = await conn.rows(query + f" ORDER BY {sort_by} {sort_order}, assistant_id", params)
        found = [self._row(r) for r in rows]
        needle = name.lower()
        return [r for r in found if needle in r.name.lower() and _matches(r, metadata or {})]

    async def delete(self, tenant: str, assistant_id: str) -> bool:
        async with self._transaction() as conn:
            current = await self._own(conn, tenant, assistant_id)
            if current is None:
                return False
            for table in ("threadline_assistant_versions", "threadline_assistants"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE tenant_id = ? AND assistant_id = ?", (tenant, current.assistant_id)
                )
        return True

    async def versions(self, tenant: str, assistant_id: str, metadata: Mapping[str, Any]) -> list[AssistantRow] | None:
        """Every version, newest first, whose metadata contains ``metadata``; None for no such assistant."""
        async with self._transaction() as conn:
            current = await self._visible(conn, tenant, assistant_id)
            if current is None:
                return None
            owner = SYSTEM_TENANT if current.system else tenant
            rows = await conn.rows(
                f"SELECT {_VERSION_COLUMNS} FROM threadline_assistant_versions"
                " WHERE tenant_id = ? AND assistant_id = ? ORDER BY version DESC",
                (owner, current.assistant_id),
            )
        return [r for r in map(self._row, rows) if _matches(r, metadata)]

    async def register_graph(self, graph: GraphRow) -> AssistantRow:
        """Store the graph's schemas (replacing older ones) and make its default assistant if missing."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO threadline_graphs (graph_id, schemas, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (graph_id) DO UPDATE SET schemas = excluded.schemas, updated_at = excluded.updated_at",
                (graph.graph_id, self._json(graph.schemas), self._time(_now())),
            )
        default = AssistantRow(
            assistant_id=default_assistant_id(graph.graph_id),
            graph_id=graph.graph_id,
            name=graph.graph_id,
            description=None,
            config={},
            context={},
            metadata=dict(SYSTEM_METADATA),
            version=1,
            created_at="",
            updated_at="",
        )
        try:
            return await self.create(SYSTEM_TENANT, default, if_exists_do_nothing=True, owner=SYSTEM_TENANT)
        except (psycopg.errors.UniqueViolation, sqlite3.IntegrityError):
            # Another replica registered it between the check and the insert: it exists, as wanted.
            found = await self.get(SYSTEM_TENANT, default.assistant_id)
            assert found is not None
            return found

    async def graph(self, graph_id: str) -> GraphRow | None:
        async with self._transaction() as conn:
            rows = await conn.rows("SELECT graph_id, schemas FROM threadline_graphs WHERE graph_id = ?", (graph_id,))
        if not rows:
            return None
        schemas = rows[0][1]
        return GraphRow(rows[0][0], json.loads(schemas) if isinstance(schemas, str) else dict(schemas))

    async def erase(self, tenant: str) -> int:
        """Delete every assistant of the tenant (never the default ones); how many there were."""
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM threadline_assistant_versions WHERE tenant_id = ?", (tenant,))
            return await conn.execute("DELETE FROM threadline_assistants WHERE tenant_id = ?", (tenant,))


class PostgresAssistants(PostgresBackend, SqlAssistants):
    """The registry in the saver's PostgreSQL database."""


class SqliteAssistants(SqliteBackend, SqlAssistants):
    """The registry in the saver's SQLite file."""


def assistants_for(saver: AsyncPostgresSaver | AsyncSqliteSaver) -> SqlAssistants:
    if isinstance(saver, AsyncPostgresSaver):
        return PostgresAssistants(saver)
    return SqliteAssistants(saver)


PG_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_assistants (
        tenant_id text NOT NULL,
        assistant_id text NOT NULL,
        graph_id text NOT NULL,
        name text NOT NULL,
        description text,
        config jsonb NOT NULL DEFAULT '{}',
        context jsonb NOT NULL DEFAULT '{}',
        metadata jsonb NOT NULL DEFAULT '{}',
        version integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, assistant_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS threadline_assistant_versions (
        tenant_id text NOT NULL,
        assistant_id text NOT NULL,
        version integer NOT NULL,
        graph_id text NOT NULL,
        name text NOT NULL,
        description text,
        config jsonb NOT NULL DEFAULT '{}',
        context jsonb NOT NULL DEFAULT '{}',
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, assistant_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS threadline_graphs (
        graph_id text PRIMARY KEY,
        schemas jsonb NOT NULL DEFAULT '{}',
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_assistants (
        tenant_id TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        graph_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        context TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, assistant_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS threadline_assistant_versions (
        tenant_id TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        graph_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        context TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, assistant_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS threadline_graphs (
        graph_id TEXT PRIMARY KEY,
        schemas TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    )
    """,
)
