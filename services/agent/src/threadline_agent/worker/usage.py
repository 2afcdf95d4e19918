"""Each run's tokens and cost, added to its tenant's counters for the day and the month (threadline.usage),
which the gateway reads to hold a tenant to its budget and to show usage.

A run's usage is added once its final event is out, in one Redis round trip. Redis down loses that
run's figures (logged), never the run: a budget is a brake on spending, not a bill.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from threadline.run_events import Usage
from threadline.usage import period_end, usage_key

log = structlog.get_logger("threadline.agent")
REDIS_TIMEOUT_S = 0.5
# Counters outlive their period by a little, so the gateway can still show last month's at the turn.
_KEPT_AFTER_END_S = 35 * 24 * 3600


class UsageLedger:
    def __init__(self, url: str, namespace: str) -> None:
        self._redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self._namespace = namespace

    async def add(self, tenant_id: str, usage: Usage, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for period in ("day", "month"):
                    key = usage_key(self._namespace, tenant_id, period, at)
                    pipe.hincrby(key, "runs", 1)
                    pipe.hincrby(key, "input_tokens", usage.input_tokens)
                    pipe.hincrby(key, "output_tokens", usage.output_tokens)
                    pipe.hincrbyfloat(key, "cost_usd", usage.cost_usd or 0.0)
                    pipe.expireat(key, int(period_end(period, at).timestamp()) + _KEPT_AFTER_END_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("run usage not recorded (check AGENT_USAGE_URL)", tenant=tenant_id, error=str(exc))

    async def close(self) -> None:
        await self._redis.aclose()
