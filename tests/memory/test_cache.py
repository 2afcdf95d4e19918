"""The latest-checkpoint cache on the real Redis: hits after a read, never a stale state after a write,
nothing left of an erased thread, and no harm when Redis is away."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from langchain_core.messages import HumanMessage
from prometheus_client import CollectorRegistry
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_memory.cache import LatestCheckpointCache
from threadline_memory.server import serve

from tests.conftest import REDIS_URL, free_port
from tests.memory.conftest import memory_settings
from tests.memory.test_checkpoints import _graph, _thread


@pytest.fixture
async def cached_saver(tmp_path: Path, nats_namespace: str) -> AsyncIterator[tuple[RemoteCheckpointSaver, int]]:
    """A saver on a memory service (SQLite) with the cache on Redis; and the service's metrics port."""
    metrics_port = free_port()
    settings = memory_settings(
        database_url=None,
        sqlite_path=tmp_path / "checkpoints.sqlite",
        REDIS_URL=REDIS_URL,
        NATS_NAMESPACE=nats_namespace,
        MEMORY_METRICS_PORT=metrics_port,
    )
    async with serve(settings) as port:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        yield saver, metrics_port
        await saver.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    async for key in client.scan_iter(match=f"{nats_namespace}:memory:*"):
        await client.delete(key)
    await client.aclose()


def _lookups(metrics_port: int) -> dict[str, float]:
    page = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return {
        line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("threadline_memory_cache_lookups_total{")
    }


async def test_reads_hit_the_cache_and_every_write_is_seen_at_once(cached_saver) -> None:
    saver, metrics_port = cached_saver
    graph, thread = _graph(saver), _thread()
    await graph.ainvoke({"messages": [HumanMessage("one")]}, thread)
    first = await saver.aget_tuple(thread)
    assert (await saver.aget_tuple(thread)).checkpoint["id"] == first.checkpoint["id"]
    assert _lookups(metrics_port)["hit"] >= 1

    for n in range(3):  # each turn writes; the next read must see that write, not the cached copy
        await graph.ainvoke({"messages": [HumanMessage(f"turn {n}")]}, thread)
        latest = await saver.aget_tuple(thread)
        assert latest.checkpoint["channel_values"]["messages"][-2].content == f"turn {n}"
        assert (await saver.aget_tuple(thread)).checkpoint["id"] == latest.checkpoint["id"]

    await saver.adelete_thread(thread["configurable"]["thread_id"])
    assert await saver.aget_tuple(thread) is None


async def test_with_redis_away_reads_and_writes_go_on(tmp_path: Path) -> None:
    settings = memory_settings(
        database_url=None, sqlite_path=tmp_path / "c.sqlite", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    async with serve(settings) as port:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        graph, thread = _graph(saver), {"configurable": {"thread_id": uuid.uuid4().hex}}
        for text in ("one", "two"):
            await graph.ainvoke({"messages": [HumanMessage(text)]}, thread)
            assert (await saver.aget_tuple(thread)).checkpoint["channel_values"]["messages"][-2].content == text
        await saver.close()


async def test_a_copy_read_before_a_write_is_never_served_after_it(nats_namespace: str) -> None:
    cache = LatestCheckpointCache(REDIS_URL, f"{nats_namespace}:memory", 60, CollectorRegistry())
    try:
        cached, key = await cache.get("acme:t", "")
        assert cached is None and key is not None
        await cache.invalidate("acme:t")  # a write lands while the slow reader is still at the database
        await cache.put(key, b"the state before the write")
        assert (await cache.get("acme:t", ""))[0] is None
    finally:
        await cache.close()
        client = aioredis.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{nats_namespace}:memory:*"):
            await client.delete(key)
        await client.aclose()
