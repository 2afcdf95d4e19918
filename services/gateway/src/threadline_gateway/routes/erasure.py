"""``POST /api/v1/erasure``: forget a person (their conversations and long-term memories), or a whole tenant.

A person may erase their own data (a JWT's subject); an admin (role ``admin``) may erase any
user of the tenant, or, naming none, the whole tenant. With authentication off everyone is the
local admin. The memory service erases and then announces it on NATS (``DataErased``), so the
other services drop their copies (the agent's answer cache does). Safe to repeat.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter

from threadline_gateway.auth import Principal
from threadline_gateway.deps import Caller, MemoryClient
from threadline_gateway.errors import ApiError
from threadline_gateway.schemas import Erasure, ErasureRequest, error_responses

router = APIRouter(prefix="/api/v1", tags=["erasure"])
log = structlog.get_logger("threadline.gateway")


def _whose(principal: Principal, asked: str | None) -> str | None:
    """The user to erase (None: the tenant), or a 403 if the caller may not."""
    if principal.kind == "anonymous" or "admin" in principal.roles:
        return asked
    if principal.user_id is not None and asked in (None, principal.user_id):
        return principal.user_id
    raise ApiError(403, "forbidden", "Only an admin may erase another user's data or a whole tenant.")


@router.post("/erasure", response_model=Erasure, responses=error_responses(403, 503))
async def erase(body: ErasureRequest, principal: Caller, memory: MemoryClient) -> Erasure:
    """Erase the user's (or the tenant's) threads, checkpoints and long-term memories."""
    user_id = _whose(principal, body.user_id)
    threads, store_items = await memory.erase(principal.tenant_id, user_id)
    log.info("data erased", user_id=user_id, whole_tenant=user_id is None, threads=threads, store_items=store_items)
    return Erasure(user_id=user_id, threads=threads, store_items=store_items)
