"""Budgets: a tenant over its tokens or cost for the period gets a clear 429 until the period turns.

The agent adds each finished run's usage to the tenant's counters (``threadline.usage``); a new run
is refused once the counters reach the budget (``GATEWAY_BUDGETS``). A run already started runs to
its end, so a tenant can overshoot by the runs in flight: a budget is a brake, not a meter. Only a
tenant with a budget costs a Redis read per run, and Redis down lets runs through (logged), like
the rate limiter.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from threadline.usage import FIELDS, Budget, Period, period_end, period_start, usage_key

from threadline_gateway.errors import ApiError

log = structlog.get_logger("threadline.gateway")
REDIS_TIMEOUT_S = 0.5


class Usage(BaseModel):
    """A tenant's usage in the current period, and its budget if it has one."""

    tenant_id: str
    period: Period
    starts_at: datetime
    resets_at: datetime
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    budget: Budget | None = None
    exceeded: bool = False


class Budgets:
    """Reads the usage counters the agent writes, and holds tenants to ``budgets`` (tenant, or "*" for all)."""

    def __init__(self, redis_url: str | None, namespace: str, budgets: dict[str, Budget]) -> None:
        self._redis = (
            Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self._namespace = namespace
        self._budgets = budgets

    def of(self, tenant_id: str) -> Budget | None:
        return self._budgets.get(tenant_id, self._budgets.get("*"))

    async def usage(self, tenant_id: str, at: datetime | None = None) -> Usage:
        """The tenant's usage this period (the budget's period, else the month); 503 if it cannot be read."""
        at = at or datetime.now(UTC)
        budget = self.of(tenant_id)
        period: Period = budget.period if budget else "month"
        shown = Usage(
            tenant_id=tenant_id,
            period=period,
            starts_at=period_start(period, at),
            resets_at=period_end(period, at),
            budget=budget,
        )
        if self._redis is None:
            raise ApiError(503, "not_configured", "Usage is not counted: the gateway has no REDIS_URL.")
        try:
            values = await self._redis.hmget(usage_key(self._namespace, tenant_id, period, at), list(FIELDS))
        except (RedisError, OSError) as exc:
            log.warning("usage unreadable (check REDIS_URL)", error=str(exc))
            raise ApiError(503, "unavailable", "Usage cannot be read right now.", headers={"Retry-After": "2"}) from exc
        runs, input_tokens, output_tokens, cost = (v.decode() if isinstance(v, bytes) else v or "0" for v in values)
        shown = shown.model_copy(
            update={
                "runs": int(runs),
                "input_tokens": int(input_tokens),
                "output_tokens": int(output_tokens),
                "cost_usd": round(float(cost), 6),
            }
        )
        return shown.model_copy(update={"exceeded": _exceeded(shown)})

    async def check(self, tenant_id: str) -> None:
        """A 429 ``budget_exceeded``, saying what was used and when it resets, for a tenant over its budget."""
        if self.of(tenant_id) is None or self._redis is None:
            return
        try:
            used = await self.usage(tenant_id)
        except ApiError:  # counters unreadable: let the run through, as the rate limiter does
            return
        if not used.exceeded:
            return
        assert used.budget is not None  # exceeded implies a budget
        wait_s = max(1, int((used.resets_at - datetime.now(UTC)).total_seconds()))
        spent = []
        if used.budget.tokens is not None:
            spent.append(f"{used.input_tokens + used.output_tokens:,} of {used.budget.tokens:,} tokens")
        if used.budget.cost_usd is not None:
            spent.append(f"${used.cost_usd:,.2f} of ${used.budget.cost_usd:,.2f}")
        raise ApiError(
            429,
            "budget_exceeded",
            f"Tenant {tenant_id!r} has used {' and '.join(spent)} this {used.period}; "
            f"its budget resets at {used.resets_at:%Y-%m-%dT%H:%MZ}.",
            headers={"Retry-After": str(wait_s)},
            resets_at=used.resets_at.isoformat(),
            period=used.period,
        )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _exceeded(used: Usage) -> bool:
    budget = used.budget
    if budget is None:
        return False
    over_tokens = budget.tokens is not None and used.input_tokens + used.output_tokens >= budget.tokens
    over_cost = budget.cost_usd is not None and used.cost_usd >= budget.cost_usd
    return over_tokens or over_cost
