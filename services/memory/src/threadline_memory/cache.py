"""A read-through Redis cache of each thread's latest checkpoint, which a reader can never see stale.

Every write to a thread bumps the thread's generation number in Redis, and the latest checkpoint
is cached under a key that names the generation it was read at. A reader that fetched from the
database just before a write stores its copy under the old generation, where no one looks
again; no lock or compare-and-set is needed. Redis being down only costs the cache: every
error falls through to the database. A write whose invalidation could not reach Redis makes
this process read around the cache for a TTL; run the cache's Redis without persistence, so
that another replica cannot find a pre-write copy in a Redis that comes back with its data.
"""

from __future__ import annotations

import time
from typing import cast

import structlog
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("threadline_memory")


class LatestCheckpointCache:
    def __init__(self, url: str, prefix: str, ttl_s: float, registry: CollectorRegistry) -> None:
        # Short timeouts: a slow Redis must cost less than the database read it is there to save.
        self._redis = Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self._prefix, self._ttl_s = prefix, ttl_s
        self._bypass_until = 0.0
        self._lookups = Counter(
            "threadline_memory_cache_lookups",
            "Latest-checkpoint reads, by outcome: hit, miss, or error (Redis unavailable).",
            ["outcome"],
            registry=registry,
        )

    def _generation_key(self, thread: str) -> str:
        return f"{self._prefix}:gen:{thread}"

    async def get(self, thread: str, namespace: str) -> tuple[bytes | None, str | None]:
        """(the cached checkpoint tuple or None, the key to store one under, or None to read around the cache)."""
        if time.monotonic() < self._bypass_until:
            return None, None
        try:
            generation = int(await self._redis.get(self._generation_key(thread)) or 0)
            key = f"{self._prefix}:latest:{namespace}:{thread}:{generation}"
            # Without decode_responses, a value comes back as the bytes stored.
            cached = cast(bytes | None, await self._redis.get(key))
        except (RedisError, OSError) as exc:
            self._lookups.labels("error").inc()
            log.debug("checkpoint cache unavailable", error=str(exc))
            return None, None
        self._lookups.labels("hit" if cached is not None else "miss").inc()
        return cached, key

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._redis.set(key, value, ex=max(1, round(self._ttl_s)))
        except (RedisError, OSError) as exc:
            log.debug("checkpoint cache unavailable", error=str(exc))

    async def invalidate(self, thread: str) -> None:
        """After any write to the thread: readers move on to a new generation."""
        key = self._generation_key(thread)
        try:
            # The counter outlives every copy made under it (a TTL each), so it may expire: a thread
            # untouched that long starts again from generation 0 with nothing cached under it.
            async with self._redis.pipeline(transaction=True) as pipe:
                # A pipeline's commands return the pipeline, whatever the client's annotations say.
                await pipe.incr(key).expire(key, max(1, round(self._ttl_s * 10))).execute()  # type: ignore[attr-defined]
        except (RedisError, OSError) as exc:
            self._bypass_until = time.monotonic() + self._ttl_s
            log.warning("checkpoint cache not invalidated; reading around it for a while", error=str(exc))

    async def forget(self, tenant: str, threads: list[str]) -> int:
        """After erasing threads (scoped ids, ``tenant:thread``): move their readers on, then delete
        every copy cached of them, so no erased checkpoint outlives the erasure here; returns how many.
        Only the generation counters stay, numbers that expire by themselves (deleting them now could
        let a copy a reader is storing at this moment be found again)."""
        for thread in threads:
            await self.invalidate(thread)
        wanted = set(threads)
        start = len(f"{self._prefix}:latest:")
        doomed: list[bytes] = []
        try:
            # One pass over the tenant's copies (a tenant id has no glob characters); the key is
            # "latest:{namespace}:{thread}:{generation}" and a namespace may itself hold ":".
            async for key in self._redis.scan_iter(match=f"{self._prefix}:latest:*:{tenant}:*", count=1000):
                rest = key.decode()[start:].rsplit(":", 1)[0]
                if any(rest[i + 1 :] in wanted for i, c in enumerate(rest) if c == ":"):
                    doomed.append(key)
            for i in range(0, len(doomed), 500):
                await self._redis.delete(*doomed[i : i + 500])
        except (RedisError, OSError) as exc:
            # The generation moved on (or the cache is bypassed), so no reader sees them; they expire.
            log.warning("erased checkpoints left in the cache until they expire", error=str(exc))
        return len(doomed)

    async def close(self) -> None:
        await self._redis.aclose()
