"""Budgets: a tenant whose counted usage reaches its token or cost budget gets a 429 saying what it used
and when the period resets; other tenants and the next period are not affected; usage is readable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from threadline.run_events import Usage
from threadline.usage import period_end
from threadline_agent.worker.usage import UsageLedger

from tests.conftest import REDIS_URL
from tests.gateway import auth_helpers as creds


@pytest.fixture
async def ledger(nats_namespace: str) -> AsyncIterator[UsageLedger]:
    """The agent's own writer of usage, on the gateway's namespace."""
    writer = UsageLedger(REDIS_URL, nats_namespace)
    yield writer
    await writer.close()
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{nats_namespace}:usage:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def _gateway(make_gateway: Callable[..., TestClient], budgets: dict) -> TestClient:
    return make_gateway(
        GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET, REDIS_URL=REDIS_URL, GATEWAY_BUDGETS=budgets
    )


async def test_a_tenant_over_its_token_budget_is_refused_until_the_period_turns(
    make_gateway: Callable[..., TestClient], ledger: UsageLedger
) -> None:
    gateway = _gateway(make_gateway, {"acme": {"period": "day", "tokens": 1000}})
    acme, globex = (creds.bearer(creds.hs256(tenant=t)) for t in ("acme", "globex"))

    await ledger.add("acme", Usage(input_tokens=600, output_tokens=300))
    assert gateway.post("/api/v1/runs", json={"input": "hi"}, headers=acme).status_code == 202
    shown = gateway.get("/api/v1/usage", headers=acme).json()
    assert (shown["runs"], shown["input_tokens"], shown["output_tokens"], shown["exceeded"]) == (1, 600, 300, False)
    assert shown["budget"] == {"period": "day", "tokens": 1000, "cost_usd": None}

    await ledger.add("acme", Usage(input_tokens=100))
    refused = gateway.post("/api/v1/runs", json={"input": "hi"}, headers=acme)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and "1,000 of 1,000 tokens this day" in error["message"]
    resets = period_end("day", datetime.now(UTC))
    assert error["details"]["resets_at"] == resets.isoformat()
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    assert gateway.get("/api/v1/usage", headers=acme).json()["exceeded"] is True

    # Another tenant has no budget; yesterday's usage does not count today.
    assert gateway.post("/api/v1/runs", json={"input": "hi"}, headers=globex).status_code == 202
    await ledger.add("globex", Usage(input_tokens=10**9), datetime(2020, 1, 1, tzinfo=UTC))
    assert gateway.get("/api/v1/usage", headers=globex).json()["input_tokens"] == 0


async def test_a_cost_budget_for_every_tenant(make_gateway: Callable[..., TestClient], ledger: UsageLedger) -> None:
    gateway = _gateway(make_gateway, {"*": {"cost_usd": 1.5}})
    acme = creds.bearer(creds.hs256(tenant="acme"))
    await ledger.add("acme", Usage(input_tokens=1, cost_usd=1.5))
    refused = gateway.post("/api/v1/query", json={"input": "hi"}, headers=acme)
    assert refused.status_code == 429 and "$1.50 of $1.50 this month" in refused.json()["error"]["message"]
    assert (
        gateway.post(
            "/api/v1/runs", json={"input": "hi"}, headers=creds.bearer(creds.hs256(tenant="globex"))
        ).status_code
        == 202
    )


def test_without_redis_usage_is_a_503_and_runs_are_not_held_back(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(
        GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET, GATEWAY_BUDGETS={"*": {"tokens": 1}}
    )
    acme = creds.bearer(creds.hs256(tenant="acme"))
    assert gateway.get("/api/v1/usage", headers=acme).status_code == 503
    assert gateway.post("/api/v1/runs", json={"input": "hi"}, headers=acme).status_code == 202
