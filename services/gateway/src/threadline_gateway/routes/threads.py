"""``/api/v1/threads/{thread_id}``: a conversation's state, its history of checkpoints, and its deletion.

A thread is created by its first run (``POST /api/v1/query`` without a ``thread_id`` answers
with a new one); its checkpoints live in the memory service, which scopes every call to the
caller's tenant, so another tenant's thread is simply not found.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from threadline_gateway.auth import caller
from threadline_gateway.errors import ApiError
from threadline_gateway.memory import Checkpoint, Memory
from threadline_gateway.schemas import ID_PATTERN, ThreadState, error_responses

router = APIRouter(prefix="/api/v1/threads", tags=["threads"])
log = structlog.get_logger("threadline.gateway")
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]


def _memory(request: Request) -> Memory:
    return request.app.state.memory


def _state(checkpoint: Checkpoint) -> ThreadState:
    return ThreadState(
        thread_id=checkpoint.thread_id,
        checkpoint_id=checkpoint.checkpoint_id,
        parent_checkpoint_id=checkpoint.parent_checkpoint_id,
        created_at=checkpoint.created_at,
        metadata=checkpoint.metadata,
        values=checkpoint.values,
    )


@router.get("/{thread_id}/state", response_model=ThreadState, responses=error_responses(404, 503))
async def thread_state(thread_id: ThreadId, request: Request) -> ThreadState:
    """The thread's latest state: its messages (the question, tool calls and results, answers) and metadata."""
    latest = await _memory(request).latest(caller(request).tenant_id, thread_id)
    if latest is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return _state(latest)


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def thread_history(
    thread_id: ThreadId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(pattern=ID_PATTERN, description="A checkpoint id: only older ones.")] = None,
) -> list[Any]:
    """The thread's checkpoints, newest first: every step of every run, to inspect or to fork from."""
    checkpoints = await _memory(request).history(caller(request).tenant_id, thread_id, limit=limit, before=before)
    states = [_state(c) for c in checkpoints]
    if not states and before is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return states


@router.delete("/{thread_id}", status_code=204, responses=error_responses(404, 503))
async def delete_thread(thread_id: ThreadId, request: Request) -> Response:
    """Erase the thread: every checkpoint and pending write of it."""
    tenant_id = caller(request).tenant_id
    if await _memory(request).latest(tenant_id, thread_id) is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    await _memory(request).delete_thread(tenant_id, thread_id)
    log.info("thread deleted", thread_id=thread_id)
    return Response(status_code=204)
