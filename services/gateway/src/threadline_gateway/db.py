"""The gateway's PostgreSQL: API keys and feedback, in tables of its own.

The pool opens lazily and the schema is created on first use, so a gateway starts (and serves
JWT callers) while PostgreSQL is still coming up; a call that cannot reach it is a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from threadline_gateway.errors import ApiError

log = structlog.get_logger("threadline.gateway")

SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_api_keys (
    id          text PRIMARY KEY,
    key_sha256  bytea NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    name        text NOT NULL DEFAULT '',
    roles       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE TABLE IF NOT EXISTS gateway_feedback (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    run_id      text NOT NULL,
    thread_id   text NOT NULL,
    subject     text NOT NULL,
    rating      smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- One opinion per caller and answer: sending feedback again replaces it.
CREATE UNIQUE INDEX IF NOT EXISTS gateway_feedback_once ON gateway_feedback (tenant_id, run_id, subject);
-- What was rated, kept with the rating: a run's events expire after an hour, an evaluation case must not.
ALTER TABLE gateway_feedback ADD COLUMN IF NOT EXISTS assistant_id text NOT NULL DEFAULT '';
ALTER TABLE gateway_feedback ADD COLUMN IF NOT EXISTS question text NOT NULL DEFAULT '';
ALTER TABLE gateway_feedback ADD COLUMN IF NOT EXISTS answer text NOT NULL DEFAULT '';
ALTER TABLE gateway_feedback ADD COLUMN IF NOT EXISTS citations jsonb NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS gateway_feedback_export ON gateway_feedback (tenant_id, id);
"""

# Several replicas may start at once; CREATE ... IF NOT EXISTS still races on the catalog without a lock.
_SCHEMA_LOCK_ID = 0x7468726C6E6777  # "thrlngw"


def database_unavailable() -> ApiError:
    return ApiError(503, "unavailable", "The database is unavailable; try again shortly.", headers={"Retry-After": "2"})


class Database:
    """A connection pool and the schema, made ready on first use."""

    def __init__(self, url: str, timeout_s: float, max_size: int = 10) -> None:
        self.timeout_s = timeout_s
        self.pool = AsyncConnectionPool(url, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True})
        self._opened = False
        self._schema_ready = False
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Create the schema now if PostgreSQL is up; if it is not, the first call that needs it will."""
        try:
            async with self.connection():
                pass
        except ApiError:
            log.warning("PostgreSQL is not reachable yet; API keys and feedback wait for it")

    async def close(self) -> None:
        if self._opened:
            await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection with the schema in place; PostgreSQL down or slow is the caller's 503."""
        try:
            async with self._lock:
                if not self._opened:
                    await self.pool.open(wait=False)
                    self._opened = True
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                if not self._schema_ready:
                    await create_schema(conn)
                    self._schema_ready = True
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("database unavailable", error=str(exc))
            raise database_unavailable() from exc


async def create_schema(conn: psycopg.AsyncConnection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
        await conn.execute(SCHEMA)
