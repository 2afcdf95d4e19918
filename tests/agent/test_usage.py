"""A finished run's usage is added to its tenant's day and month counters in Redis, where the gateway's
budgets read it; the counters expire after their period, and Redis down costs the figures, not the run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from threadline.events import RunRequested
from threadline.run_events import Usage
from threadline.usage import period_end, usage_key
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.worker.usage import UsageLedger

from tests.agent.conftest import running_worker
from tests.agent.test_worker import run_and_collect
from tests.conftest import REDIS_URL, free_port


@pytest.fixture
async def redis(nats_namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{nats_namespace}:usage:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_each_finished_run_is_counted_for_its_tenant(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, redis: Redis
) -> None:
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), AGENT_USAGE_URL=REDIS_URL, AGENT_RETRY_ATTEMPTS=1
    ) as worker:
        for tenant in ("acme", "acme", "globex"):
            run = RunRequested(run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id=tenant, input="Hi?")
            final = (await run_and_collect(nc, worker.topology, run))[-1][0]
            assert final.kind == "end", final

    for tenant in ("acme", "globex"):  # and on the worker's /metrics, by tenant (once its runs have ended)
        assert (
            worker.metrics.registry.get_sample_value("threadline_agent_tenant_tokens_total", {"tenant": tenant})
            is not None
        )
    now = datetime.now(UTC)
    for period in ("day", "month"):
        acme = await redis.hgetall(usage_key(nats_namespace, "acme", period, now))
        assert acme["runs"] == "2" and {"input_tokens", "output_tokens", "cost_usd"} <= acme.keys()
        assert (await redis.hgetall(usage_key(nats_namespace, "globex", period, now)))["runs"] == "1"
        expires = await redis.expiretime(usage_key(nats_namespace, "acme", period, now))
        assert expires > period_end(period, now).timestamp()  # kept a little past its period, then gone


async def test_usage_adds_up_and_redis_down_loses_only_the_figures(nats_namespace: str, redis: Redis) -> None:
    ledger = UsageLedger(REDIS_URL, nats_namespace)
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    await ledger.add("acme", Usage(input_tokens=100, output_tokens=20, cost_usd=0.5), at)
    await ledger.add("acme", Usage(input_tokens=1, output_tokens=2), at)
    await ledger.close()
    counted = await redis.hgetall(usage_key(nats_namespace, "acme", "month", at))
    assert counted == {"runs": "2", "input_tokens": "101", "output_tokens": "22", "cost_usd": "0.5"}

    gone = UsageLedger(f"redis://127.0.0.1:{free_port()}/0", nats_namespace)
    await gone.add("acme", Usage(input_tokens=5), at)  # logged, not raised
    await gone.close()
