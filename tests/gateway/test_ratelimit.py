"""Rate limits on the machine's real Redis: exact under concurrency, per tenant and per key, 429 with Retry-After."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from threadline_gateway import apikeys
from threadline_gateway.ratelimit import Limit, LocalLimiter, RedisLimiter

from tests.conftest import REDIS_URL, free_port
from tests.gateway.conftest import services

UNKNOWN_RUN = "/api/v1/runs/no-such-run"  # cheap: authenticated, counted, then a 404


def _keys(*tenants: str) -> tuple[list[str], str]:
    """(one new API key per tenant given, the GATEWAY_API_KEYS value for them)."""
    keys = [apikeys.generate()[1] for _ in tenants]
    return keys, ",".join(f"{t}:{apikeys.digest(k).hex()}" for t, k in zip(tenants, keys, strict=True))


async def test_two_replicas_admit_exactly_the_limit_under_concurrent_load() -> None:
    # Two limiters are two gateway replicas sharing Redis; together they get twice the limit at once.
    replicas = [RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)]
    limit = Limit(f"test:{uuid.uuid4().hex}", 50)
    try:
        waits = await asyncio.gather(*(replicas[n % 2].admit([limit], 60) for n in range(2 * limit.requests)))
    finally:
        for replica in replicas:
            await replica.close()
    assert sum(1 for w in waits if w == 0) == limit.requests
    refused = [w for w in waits if w > 0]
    assert len(refused) == limit.requests
    assert all(0 < w <= 60 for w in refused)


async def test_a_refusal_under_one_key_does_not_use_up_the_other() -> None:
    limiter = RedisLimiter(REDIS_URL)
    tenant, key = Limit(f"test:{uuid.uuid4().hex}", 1), Limit(f"test:{uuid.uuid4().hex}", 5)
    try:
        assert await limiter.admit([tenant, key], 60) == 0
        assert await limiter.admit([tenant, key], 60) > 0
        # The refused request was not recorded under the key: it still has 4 of its 5 left.
        assert [await limiter.admit([key], 60) for _ in range(5)].count(0) == 4
    finally:
        await limiter.close()


async def test_twice_the_limit_fired_at_two_served_replicas_gets_exactly_the_limit_through(
    serve: Callable[..., str],
) -> None:
    (key,), static = _keys("acme")
    settings = {"GATEWAY_AUTH": "required", "GATEWAY_API_KEYS": static, "REDIS_URL": REDIS_URL}
    urls = [serve(**settings, GATEWAY_RATE_LIMIT_KEY=20), serve(**settings, GATEWAY_RATE_LIMIT_KEY=20)]
    async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30) as client:
        replies = await asyncio.gather(*(client.get(urls[n % 2] + UNKNOWN_RUN) for n in range(40)))
    statuses = Counter(r.status_code for r in replies)
    assert statuses == {404: 20, 429: 20}
    assert all(int(r.headers["retry-after"]) >= 1 for r in replies if r.status_code == 429)


def test_a_key_over_its_limit_gets_429_with_retry_after(make_gateway: Callable[..., TestClient]) -> None:
    (key, other), static = _keys("acme", "acme")
    gateway = make_gateway(
        GATEWAY_AUTH="required", GATEWAY_API_KEYS=static, REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_KEY=3
    )
    statuses = [gateway.get(UNKNOWN_RUN, headers={"X-API-Key": key}).status_code for _ in range(3)]
    assert statuses == [404, 404, 404]
    refused = gateway.get(UNKNOWN_RUN, headers={"X-API-Key": key})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    # Another key of the same tenant has its own budget.
    assert gateway.get(UNKNOWN_RUN, headers={"X-API-Key": other}).status_code == 404


def test_a_tenant_limit_covers_all_its_keys_and_only_that_tenant(make_gateway: Callable[..., TestClient]) -> None:
    (a1, a2, b), static = _keys("acme", "acme", "globex")
    gateway = make_gateway(
        GATEWAY_AUTH="required", GATEWAY_API_KEYS=static, REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_TENANT=4
    )
    statuses = Counter(gateway.get(UNKNOWN_RUN, headers={"X-API-Key": k}).status_code for k in [a1, a2] * 4)
    assert statuses == {404: 4, 429: 4}
    assert gateway.get(UNKNOWN_RUN, headers={"X-API-Key": b}).status_code == 404


def test_replicas_share_the_limit_through_redis(make_gateway: Callable[..., TestClient]) -> None:
    (key,), static = _keys("acme")
    settings = {"GATEWAY_AUTH": "required", "GATEWAY_API_KEYS": static, "REDIS_URL": REDIS_URL}
    first, second = (
        make_gateway(**settings, GATEWAY_RATE_LIMIT_KEY=4),
        make_gateway(**settings, GATEWAY_RATE_LIMIT_KEY=4),
    )
    statuses = Counter(g.get(UNKNOWN_RUN, headers={"X-API-Key": key}).status_code for g in [first, second] * 4)
    assert statuses == {404: 4, 429: 4}


def test_the_window_slides(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_KEY=2, GATEWAY_RATE_LIMIT_WINDOW_S=1)
    assert [gateway.get(UNKNOWN_RUN).status_code for _ in range(3)] == [404, 404, 429]
    time.sleep(1.2)
    assert gateway.get(UNKNOWN_RUN).status_code == 404


def test_without_redis_the_limit_holds_in_process(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_RATE_LIMIT_TENANT=2)
    assert isinstance(services(gateway).limiter, LocalLimiter)
    assert [gateway.get(UNKNOWN_RUN).status_code for _ in range(3)] == [404, 404, 429]
    # Health and metrics are never limited.
    assert gateway.get("/healthz").status_code == 200 and gateway.get("/metrics").status_code == 200


def test_an_unreachable_redis_lets_requests_through(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", GATEWAY_RATE_LIMIT_KEY=1)
    assert [gateway.get(UNKNOWN_RUN).status_code for _ in range(3)] == [404, 404, 404]


def test_websocket_questions_count_against_the_limit(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_KEY=1)
    with gateway.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"type": "query", "input": "one", "ref": "1"})
        assert ws.receive_json()["type"] == "accepted"
        ws.send_json({"type": "query", "input": "two", "ref": "2"})
        refused = ws.receive_json()
    assert refused["ref"] == "2" and refused["error"]["code"] == "rate_limited"
    assert refused["error"]["details"]["retry_after"] >= 1


def test_a_zero_limit_means_no_limit(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_KEY=0, GATEWAY_RATE_LIMIT_TENANT=0)
    assert {gateway.get(UNKNOWN_RUN).status_code for _ in range(20)} == {404}


async def test_a_request_checks_all_its_limits_in_one_round_trip_to_redis() -> None:
    """The gateway's only per-request Redis work is this check: one EVALSHA, whatever the number of limits."""
    limiter = RedisLimiter(REDIS_URL)
    prefix = f"rl-{uuid.uuid4().hex}"
    limits = [Limit(f"{prefix}:tenant", 100), Limit(f"{prefix}:key", 100)]
    assert await limiter.admit(limits, 60) == 0  # loads the script once
    monitor_client = Redis.from_url(REDIS_URL)
    seen: list[str] = []
    async with monitor_client.monitor() as monitor:
        watching = asyncio.create_task(_collect(monitor, prefix, seen))
        await asyncio.sleep(0.2)  # MONITOR is on before the request
        assert await limiter.admit(limits, 60) == 0
        marker = f"{prefix}:done"
        await monitor_client.get(marker)  # a command of our own, after the request's: everything before it is in
        await asyncio.wait_for(watching, 10)
    # From the gateway's connection: one command; the script's own ZADDs, run inside Redis, come from "lua".
    assert [line.split()[0].upper() for line in seen if not line.startswith("lua ")] == ["EVALSHA"]
    await monitor_client.aclose()
    await limiter.close()


async def _collect(monitor: Any, prefix: str, seen: list[str]) -> None:
    async for entry in monitor.listen():
        command = entry["command"]
        if f"{prefix}:done" in command:
            return
        if prefix in command:
            seen.append(f"{entry['client_type']} {command}" if entry.get("client_type") == "lua" else command)
