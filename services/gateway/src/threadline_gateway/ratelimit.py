"""Per-tenant and per-credential rate limits: a sliding window, shared by every replica through Redis.

The window is a log of request times (a sorted set per limited key), so a limit of N per W seconds
holds exactly: never more than N requests in any W-second span, whatever the concurrency, because
one Lua script checks and records all of a request's keys atomically, in one round trip (EVALSHA):
it is the only Redis work the gateway does per request. Without ``REDIS_URL`` the
same algorithm runs in process (exact for one replica). If Redis fails, requests are let through and
a warning is logged: the limiter guards the mesh, it must not become the reason it is down.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from threadline_gateway.auth import Principal
from threadline_gateway.errors import ApiError
from threadline_gateway.settings import GatewaySettings

log = structlog.get_logger("threadline.gateway")

# KEYS: the sorted sets; ARGV: window in ms, a unique member, then one limit per key.
# Returns 0 when the request is admitted (and recorded under every key), else the ms until it would be.
_SLIDING_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    key: str
    requests: int


class Limiter(Protocol):
    async def admit(self, limits: list[Limit], window_s: float) -> float:
        """0 if the request is admitted (and counted), else the seconds until it would be."""
        ...

    async def close(self) -> None: ...


POOL_CONNECTIONS = 4  # to Redis, per gateway process


class RedisLimiter:
    def __init__(self, url: str) -> None:
        # A short reply timeout: a slow Redis must not stall every request behind it. A few connections, waited
        # for: a burst of requests shares them (a check is one short script) instead of each opening its own.
        # Connecting, and waiting for a free connection, may take longer on a busy host: a refused connection
        # (Redis down) fails at once anyway, and a timeout there would let the whole burst through unchecked.
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_CONNECTIONS, timeout=2.0, socket_timeout=0.5, socket_connect_timeout=2.0
        )
        self.client = redis.Redis.from_pool(pool)
        self.script = self.client.register_script(_SLIDING_WINDOW)

    async def admit(self, limits: list[Limit], window_s: float) -> float:
        window_ms = max(1, int(window_s * 1000))
        try:
            wait_ms = await self.script(
                keys=[limit.key for limit in limits],
                args=[window_ms, uuid.uuid4().hex, *(limit.requests for limit in limits)],
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable; request let through", error=str(exc))
            return 0.0
        return int(wait_ms) / 1000

    async def close(self) -> None:
        await self.client.aclose()


class LocalLimiter:
    """The same sliding window in this process; it has no await, so each call is atomic on the event loop."""

    def __init__(self) -> None:
        self.logs: dict[str, deque[float]] = {}

    async def admit(self, limits: list[Limit], window_s: float) -> float:
        now = time.monotonic()
        wait = 0.0
        for limit in limits:
            entries = self.logs.setdefault(limit.key, deque())
            while entries and entries[0] <= now - window_s:
                entries.popleft()
            if len(entries) >= limit.requests:
                wait = max(wait, entries[0] + window_s - now)
        if wait > 0:
            return wait
        for limit in limits:
            self.logs[limit.key].append(now)
        return 0.0

    async def close(self) -> None:
        self.logs.clear()


def make_limiter(settings: GatewaySettings) -> Limiter:
    return RedisLimiter(settings.redis_url) if settings.redis_url else LocalLimiter()


def limits_for(principal: Principal, settings: GatewaySettings) -> list[Limit]:
    prefix = f"{settings.nats_namespace}:ratelimit"
    limits = []
    if settings.rate_limit_tenant > 0:
        limits.append(Limit(f"{prefix}:tenant:{principal.tenant_id}", settings.rate_limit_tenant))
    if settings.rate_limit_key > 0:
        limits.append(Limit(f"{prefix}:key:{principal.tenant_id}:{principal.subject}", settings.rate_limit_key))
    return limits


async def check(limiter: Limiter, principal: Principal, settings: GatewaySettings) -> None:
    """Count one request for the caller; a 429 with Retry-After when a limit is reached."""
    limits = limits_for(principal, settings)
    if not limits:
        return
    wait = await limiter.admit(limits, settings.rate_limit_window_s)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
