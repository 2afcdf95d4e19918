"""``/langgraph/threads``: create, find, read, change, copy and delete threads, and read their state and history.

Threads live in the memory service, scoped to the caller's tenant: another tenant's thread is a 404.
A thread's status is ``busy`` while its latest run is pending or running, else ``idle``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from threadline_gateway import memory
from threadline_gateway.auth import caller
from threadline_gateway.errors import ApiError
from threadline_gateway.langgraph_compat.schemas import (
    CheckpointRef,
    HistoryRequest,
    StateAtCheckpoint,
    Thread,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
    ThreadState,
)
from threadline_gateway.routes.threads import thread_status
from threadline_gateway.schemas import ID_PATTERN, error_responses

router = APIRouter(prefix="/threads")
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]


def _memory(request: Request) -> memory.Memory:
    return request.app.state.memory


def state_of(thread_id: str, checkpoint: memory.Checkpoint | None) -> ThreadState:
    """A checkpoint as LangGraph's thread state; a thread without one has empty values."""
    if checkpoint is None:
        return ThreadState(values={}, checkpoint=CheckpointRef(thread_id=thread_id))
    parent = checkpoint.parent_checkpoint_id
    return ThreadState(
        values=checkpoint.values,
        checkpoint=CheckpointRef(thread_id=thread_id, checkpoint_id=checkpoint.checkpoint_id),
        metadata=checkpoint.metadata,
        created_at=checkpoint.created_at,
        parent_checkpoint=CheckpointRef(thread_id=thread_id, checkpoint_id=parent) if parent else None,
        interrupts=checkpoint.interrupts,
    )


async def _thread(request: Request, found: memory.Thread) -> Thread:
    status = await thread_status(request, found.thread_id)
    latest = await _memory(request).latest(caller(request).tenant_id, found.thread_id)
    return Thread(
        thread_id=found.thread_id,
        created_at=found.created_at,
        updated_at=found.updated_at,
        metadata=found.metadata,
        status=status,
        values=latest.values if latest else None,
    )


@router.post("", response_model=Thread, responses=error_responses(409, 503))
async def create_thread(body: ThreadCreate, request: Request) -> Thread:
    """A new thread (a new id unless one is given); an existing id is a 409 unless ``if_exists`` is ``do_nothing``."""
    created = await _memory(request).create_thread(
        caller(request).tenant_id,
        body.thread_id or "",
        body.metadata,
        if_exists_do_nothing=body.if_exists == "do_nothing",
    )
    return await _thread(request, created)


@router.post("/search", response_model=list[Thread], responses=error_responses(503))
async def search_threads(body: ThreadSearch, request: Request) -> list[Thread]:
    """The tenant's threads whose metadata holds every given key and value, newest first by default."""
    found = await _memory(request).list_threads(
        caller(request).tenant_id,
        metadata=body.metadata or {},
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    threads = await asyncio.gather(*(_thread(request, t) for t in found))
    return [t for t in threads if body.status is None or t.status == body.status]


@router.get("/{thread_id}", response_model=Thread, responses=error_responses(404, 503))
async def get_thread(thread_id: ThreadId, request: Request) -> Thread:
    return await _thread(request, await _memory(request).get_thread(caller(request).tenant_id, thread_id))


@router.patch("/{thread_id}", response_model=Thread, responses=error_responses(404, 503))
async def update_thread(thread_id: ThreadId, body: ThreadPatch, request: Request) -> Thread:
    """Merge ``metadata`` into the thread's."""
    updated = await _memory(request).update_thread(caller(request).tenant_id, thread_id, body.metadata)
    return await _thread(request, updated)


@router.delete("/{thread_id}", status_code=204, responses=error_responses(404, 503))
async def delete_thread(thread_id: ThreadId, request: Request) -> Response:
    tenant_id = caller(request).tenant_id
    await _memory(request).get_thread(tenant_id, thread_id)
    await _memory(request).delete_thread(tenant_id, thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy", response_model=Thread, responses=error_responses(404, 503))
async def copy_thread(thread_id: ThreadId, request: Request) -> Thread:
    """A new thread with the same history, to branch a conversation off."""
    return await _thread(request, await _memory(request).copy_thread(caller(request).tenant_id, thread_id))


async def _state(request: Request, thread_id: str, checkpoint_id: str = "") -> ThreadState:
    tenant_id = caller(request).tenant_id
    checkpoint = await _memory(request).latest(tenant_id, thread_id, checkpoint_id)
    if checkpoint is None:
        await _memory(request).get_thread(tenant_id, thread_id)  # a 404 for a thread that does not exist
        if checkpoint_id:
            raise ApiError(404, "not_found", f"No checkpoint {checkpoint_id!r} in thread {thread_id!r}.")
    return state_of(thread_id, checkpoint)


@router.get("/{thread_id}/state", response_model=ThreadState, responses=error_responses(404, 503))
async def get_state(thread_id: ThreadId, request: Request) -> ThreadState:
    return await _state(request, thread_id)


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=ThreadState, responses=error_responses(404, 503))
async def get_state_at(
    thread_id: ThreadId, checkpoint_id: Annotated[str, Path(pattern=ID_PATTERN)], request: Request
) -> ThreadState:
    return await _state(request, thread_id, checkpoint_id)


@router.post("/{thread_id}/state/checkpoint", response_model=ThreadState, responses=error_responses(404, 503))
async def post_state_at(thread_id: ThreadId, body: StateAtCheckpoint, request: Request) -> ThreadState:
    return await _state(request, thread_id, body.checkpoint.checkpoint_id or "")


async def _history(request: Request, thread_id: str, limit: int, before: str | None) -> list[ThreadState]:
    tenant_id = caller(request).tenant_id
    checkpoints = await _memory(request).history(tenant_id, thread_id, limit=limit, before=before)
    if not checkpoints:
        await _memory(request).get_thread(tenant_id, thread_id)
    return [state_of(thread_id, c) for c in checkpoints]


@router.post("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def post_history(thread_id: ThreadId, body: HistoryRequest, request: Request) -> list[ThreadState]:
    """The thread's states, newest first; ``metadata`` keeps those whose metadata holds every given key and value."""
    before = body.before if isinstance(body.before, str) or body.before is None else body.before.checkpoint_id
    states = await _history(request, thread_id, body.limit, before)
    if body.metadata:
        states = [s for s in states if all(s.metadata.get(k) == v for k, v in body.metadata.items())]
    return states


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def get_history(
    thread_id: ThreadId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> list[ThreadState]:
    return await _history(request, thread_id, limit, before)
