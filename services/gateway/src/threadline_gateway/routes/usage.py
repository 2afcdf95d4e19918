"""``GET /api/v1/usage``: the caller's tenant's model usage this period, against its budget if it has one."""

from __future__ import annotations

from fastapi import APIRouter

from threadline_gateway.budgets import Usage
from threadline_gateway.deps import AppServices, Caller
from threadline_gateway.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["usage"])


@router.get("/usage", response_model=Usage, responses=error_responses(503))
async def usage(principal: Caller, services: AppServices) -> Usage:
    """Runs, tokens and cost the agent counted for the tenant since the period began, and when it resets."""
    return await services.budgets.usage(principal.tenant_id)
