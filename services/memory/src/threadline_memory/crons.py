"""Scheduled runs (LangGraph Platform's crons): each tenant's crons and the claiming of their due ticks.

``threadline_crons`` holds one row per cron: its schedule (a cron expression, read by ``croniter``
in the cron's IANA timezone), the run to start at each tick (``payload``), and ``next_run_at``, the
next tick. The gateways start the runs; :meth:`SqlCrons.claim_due` hands each due tick to exactly one
of them: it selects the due rows and advances each one's ``next_run_at`` to its first tick after
``now`` in the same transaction, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a replica claiming at
the same moment skips the rows another holds) and under the saver's lock on SQLite (one writer).
Ticks missed while no gateway ran are not made up: a cron fires once, then goes on from now.

The table is created by the numbered migrations of :mod:`threadline_memory.threads`, on the saver's
connection, like the assistants'.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from threadline_memory.sql import Conn, PostgresBackend, SqlBackend, SqliteBackend

CronSortBy = Literal["created_at", "updated_at", "next_run_date", "cron_id", "assistant_id", "thread_id"]
_SORT_COLUMNS: dict[str, str] = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "next_run_date": "next_run_at",
    "cron_id": "cron_id",
    "assistant_id": "assistant_id",
    "thread_id": "thread_id",
}
_COLUMNS = (
    "tenant_id, cron_id, assistant_id, thread_id, schedule, timezone, payload, metadata, enabled, end_time,"
    " next_run_at, created_at, updated_at, user_id, on_run_completed"
)


class BadSchedule(ValueError):
    """A schedule or timezone that does not parse; the message says which and why."""


def zone(name: str) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadSchedule(f"timezone {name!r} is not an IANA time zone") from exc


def next_tick(schedule: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first tick of ``schedule`` (in ``timezone``) strictly after ``after``, in UTC."""
    try:
        if not croniter.is_valid(schedule):
            raise BadSchedule(f"schedule {schedule!r} is not a cron expression (minute hour day month weekday)")
        return croniter(schedule, after.astimezone(zone(timezone))).get_next(dt.datetime).astimezone(dt.UTC)
    except (CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError) as exc:
        raise BadSchedule(f"schedule {schedule!r}: {exc}") from exc


@dataclass(frozen=True)
class CronRow:
    tenant_id: str
    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    enabled: bool
    end_time: dt.datetime | None
    next_run_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    user_id: str | None = None
    on_run_completed: str = ""


@dataclass(frozen=True)
class CronChanges:
    """What an update changes; ``None`` keeps the value. ``end_time`` is changed when ``set_end_time``."""

    schedule: str | None = None
    timezone: str | None = None
    payload: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    enabled: bool | None = None
    set_end_time: bool = False
    end_time: dt.datetime | None = None
    on_run_completed: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _matches(row: CronRow, metadata: Mapping[str, Any]) -> bool:
    return all(k in row.metadata and row.metadata[k] == v for k, v in metadata.items())


class SqlCrons(SqlBackend):
    """The crons over one back-end; :class:`PostgresCrons` and :class:`SqliteCrons` say which."""

    _lock_due = ""  # what a claim's SELECT ends with

    def _row(self, row: tuple[Any, ...]) -> CronRow:
        def obj(v: Any) -> dict[str, Any]:
            return json.loads(v) if isinstance(v, str) else dict(v or {})

        def ts(v: Any) -> dt.datetime | None:
            if v is None or v == "":
                return None
            return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))

        created, updated = ts(row[11]), ts(row[12])
        assert created is not None and updated is not None
        return CronRow(
            tenant_id=row[0],
            cron_id=row[1],
            assistant_id=row[2],
            thread_id=row[3] or None,
            schedule=row[4],
            timezone=row[5] or "",
            payload=obj(row[6]),
            metadata=obj(row[7]),
            enabled=bool(row[8]),
            end_time=ts(row[9]),
            next_run_at=ts(row[10]),
            created_at=created,
            updated_at=updated,
            user_id=row[13] or None,
            on_run_completed=row[14] or "",
        )

    async def _get(self, conn: Conn, tenant: str, cron_id: str) -> CronRow | None:
        rows = await conn.rows(
            f"SELECT {_COLUMNS} FROM threadline_crons WHERE tenant_id = ? AND cron_id = ?", (tenant, cron_id)
        )
        return self._row(rows[0]) if rows else None

    def _next(self, row: CronRow, after: dt.datetime) -> dt.datetime | None:
        """The cron's next tick after ``after``; None when disabled or past its end."""
        if not row.enabled:
            return None
        tick = next_tick(row.schedule, row.timezone, after)
        return None if row.end_time is not None and tick > row.end_time else tick

    async def create(self, row: CronRow) -> CronRow:
        """Insert ``row`` (its times are set here); :class:`BadSchedule` for a schedule that does not parse."""
        at = _now()
        row = replace(row, created_at=at, updated_at=at, next_run_at=None)
        row = replace(row, next_run_at=self._next(row, at))
        async with self._transaction() as conn:
            await conn.execute(
                f"INSERT INTO threadline_crons ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._params(row),
            )
            found = await self._get(conn, row.tenant_id, row.cron_id)
        assert found is not None
        return found

    def _params(self, row: CronRow) -> tuple[Any, ...]:
        return (
            row.tenant_id,
            row.cron_id,
            row.assistant_id,
            row.thread_id or "",
            row.schedule,
            row.timezone,
            self._json(row.payload),
            self._json(row.metadata),
            row.enabled,
            self._time(row.end_time),
            self._time(row.next_run_at),
            self._time(row.created_at),
            self._time(row.updated_at),
            row.user_id or "",
            row.on_run_completed,
        )

    async def get(self, tenant: str, cron_id: str) -> CronRow | None:
        async with self._transaction() as conn:
            return await self._get(conn, tenant, cron_id)

    async def update(self, tenant: str, cron_id: str, changes: CronChanges) -> CronRow | None:
        at = _now()
        async with self._transaction() as conn:
            current = await self._get(conn, tenant, cron_id)
            if current is None:
                return None
            new = replace(
                current,
                schedule=current.schedule if changes.schedule is None else changes.schedule,
                timezone=current.timezone if changes.timezone is None else changes.timezone,
                payload=current.payload if changes.payload is None else changes.payload,
                metadata=current.metadata | changes.metadata,
                enabled=current.enabled if changes.enabled is None else changes.enabled,
                end_time=changes.end_time if changes.set_end_time else current.end_time,
                on_run_completed=(
                    current.on_run_completed if changes.on_run_completed is None else changes.on_run_completed
                ),
                updated_at=at,
            )
            new = replace(new, next_run_at=self._next(new, at))
            await conn.execute(
                "UPDATE threadline_crons SET schedule = ?, timezone = ?, payload = ?, metadata = ?, enabled = ?,"
                " end_time = ?, next_run_at = ?, updated_at = ?, on_run_completed = ?"
                " WHERE tenant_id = ? AND cron_id = ?",
                (
                    new.schedule,
                    new.timezone,
                    self._json(new.payload),
                    self._json(new.metadata),
                    new.enabled,
                    self._time(new.end_time),
                    self._time(new.next_run_at),
                    self._time(at),
                    new.on_run_completed,
                    tenant,
                    cron_id,
                ),
            )
            return await self._get(conn, tenant, cron_id)

    async def delete(self, tenant: str, cron_id: str) -> bool:
        async with self._transaction() as conn:
            return (
                await conn.execute(
                    "DELETE FROM threadline_crons WHERE tenant_id = ? AND cron_id = ?", (tenant, cron_id)
                )
                > 0
            )

    async def search(
        self,
        tenant: str,
        *,
        assistant_id: str = "",
        thread_id: str = "",
        enabled: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[CronRow]:
        """The tenant's crons that match, sorted (limit and offset are the caller's, after the metadata filter)."""
        where, params = ["tenant_id = ?"], [tenant]
        if assistant_id:
            where.append("assistant_id = ?")
            params.append(assistant_id)
        if thread_id:
            where.append("thread_id = ?")
            params.append(thread_id)
        column = _SORT_COLUMNS.get(sort_by, "created_at")
        order = "ASC" if sort_order == "asc" else "DESC"
        async with self._transaction() as conn:
            rows = await conn.rows(
                f"SELECT {_COLUMNS} FROM threadline_crons WHERE {' AND '.join(where)}"
                f" ORDER BY {column} {order}, cron_id {order}",
                tuple(params),
            )
        found = [self._row(r) for r in rows]
        return [
            r for r in found if (enabled is None or r.enabled == enabled) and (not metadata or _matches(r, metadata))
        ]

    async def claim_due(self, now: dt.datetime, limit: int) -> list[tuple[CronRow, dt.datetime]]:
        """The crons due at ``now`` (at most ``limit``) with the tick each was claimed for, each already
        advanced to its next tick after ``now`` (or disabled, past its end) in this one transaction."""
        claimed: list[tuple[CronRow, dt.datetime]] = []
        async with self._transaction() as conn:
            rows = await conn.rows(
                f"SELECT {_COLUMNS} FROM threadline_crons WHERE enabled = ? AND next_run_at <= ?"
                f" ORDER BY next_run_at LIMIT ?{self._lock_due}",
                (True, self._time(now), limit),
            )
            for raw in rows:
                row = self._row(raw)
                assert row.next_run_at is not None
                following = self._next(row, now)
                await conn.execute(
                    "UPDATE threadline_crons SET next_run_at = ?, enabled = ? WHERE tenant_id = ? AND cron_id = ?",
                    (self._time(following), following is not None, row.tenant_id, row.cron_id),
                )
                claimed.append((replace(row, next_run_at=following, enabled=following is not None), row.next_run_at))
        return claimed

    async def erase(self, tenant: str, user_id: str | None = None) -> int:
        """Delete the tenant's crons (or those one user made); how many there were."""
        async with self._transaction() as conn:
            if user_id is None:
                return await conn.execute("DELETE FROM threadline_crons WHERE tenant_id = ?", (tenant,))
            return await conn.execute(
                "DELETE FROM threadline_crons WHERE tenant_id = ? AND user_id = ?", (tenant, user_id)
            )


class PostgresCrons(PostgresBackend, SqlCrons):
    _lock_due = " FOR UPDATE SKIP LOCKED"  # replicas claiming at once each take other rows


class SqliteCrons(SqliteBackend, SqlCrons):
    """One writer (the saver's lock), so a claim is never shared."""


def crons_for(saver: AsyncPostgresSaver | AsyncSqliteSaver) -> SqlCrons:
    if isinstance(saver, AsyncPostgresSaver):
        return PostgresCrons(saver)
    return SqliteCrons(saver)


PG_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_crons (
        tenant_id text NOT NULL,
        cron_id text NOT NULL,
        assistant_id text NOT NULL,
        thread_id text NOT NULL DEFAULT '',
        schedule text NOT NULL,
        timezone text NOT NULL DEFAULT '',
        payload jsonb NOT NULL DEFAULT '{}',
        metadata jsonb NOT NULL DEFAULT '{}',
        enabled boolean NOT NULL DEFAULT true,
        end_time timestamptz,
        next_run_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        user_id text NOT NULL DEFAULT '',
        on_run_completed text NOT NULL DEFAULT '',
        PRIMARY KEY (tenant_id, cron_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS threadline_crons_due ON threadline_crons (next_run_at) WHERE enabled",
)

SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS threadline_crons (
        tenant_id TEXT NOT NULL,
        cron_id TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        thread_id TEXT NOT NULL DEFAULT '',
        schedule TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        enabled INTEGER NOT NULL DEFAULT 1,
        end_time TEXT,
        next_run_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        user_id TEXT NOT NULL DEFAULT '',
        on_run_completed TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (tenant_id, cron_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS threadline_crons_due ON threadline_crons (next_run_at) WHERE enabled",
)
