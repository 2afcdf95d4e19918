"""A tenant's model usage per period, kept in Redis: the agent adds each run's tokens and cost, the
gateway reads them to enforce budgets and to show usage. Both name the counters through here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Period = Literal["day", "month"]
FIELDS = ("runs", "input_tokens", "output_tokens", "cost_usd")


class Budget(BaseModel):
    """One tenant's allowance per period; a limit left out is not enforced."""

    model_config = ConfigDict(extra="forbid")

    period: Period = "month"
    tokens: int | None = Field(default=None, ge=0, description="Input and output tokens together.")
    cost_usd: float | None = Field(default=None, ge=0, description="From the agent's AGENT_MODEL_PRICES.")


def period_start(period: Period, at: datetime) -> datetime:
    """The start (UTC) of the period that holds ``at``."""
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: Period, at: datetime) -> datetime:
    """When the period that holds ``at`` ends and its budget starts afresh."""
    start = period_start(period, at)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def usage_key(namespace: str, tenant_id: str, period: Period, at: datetime) -> str:
    """The Redis hash of one tenant's usage in the period that holds ``at`` (fields: :data:`FIELDS`)."""
    return f"{namespace}:usage:{tenant_id}:{period}:{period_start(period, at):%Y-%m-%d}"
