"""``/api/v1/threads``: conversations — create, list, read, their state and history, delete.

A thread is created outright (to give it metadata) or by its first run (``POST /api/v1/query``
without a ``thread_id`` answers with a new one); threads and their checkpoints live in the
memory service, which scopes every call to the caller's tenant, so another tenant's thread is
simply not found.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from threadline.ids import ID_PATTERN

from threadline_gateway.auth import Principal
from threadline_gateway.deps import Bus, Caller, MemoryClient
from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.memory import Checkpoint, Memory, Thread
from threadline_gateway.run_bus import RunBus
from threadline_gateway.schemas import (
    THREAD_PAGE_MAX,
    SortOrder,
    ThreadCreate,
    ThreadInfo,
    ThreadPage,
    ThreadSearch,
    ThreadSortBy,
    ThreadState,
    error_responses,
)

router = APIRouter(prefix="/api/v1/threads", tags=["threads"])
log = structlog.get_logger("threadline.gateway")
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]


def _state(checkpoint: Checkpoint) -> ThreadState:
    return ThreadState(
        thread_id=checkpoint.thread_id,
        checkpoint_id=checkpoint.checkpoint_id,
        parent_checkpoint_id=checkpoint.parent_checkpoint_id,
        created_at=checkpoint.created_at,
        metadata=checkpoint.metadata,
        values=checkpoint.values,
        interrupts=checkpoint.interrupts,
    )


async def thread_status(bus: RunBus, tenant_id: str, thread_id: str) -> Literal["idle", "busy", "interrupted"]:
    """``busy`` while the thread's latest run is pending or running, ``interrupted`` while it awaits a decision."""
    with nats_errors_as_503():
        return await bus.thread_status(tenant_id, thread_id)


async def _info(bus: RunBus, tenant_id: str, thread: Thread) -> ThreadInfo:
    return ThreadInfo(
        thread_id=thread.thread_id,
        created_at=thread.created_at,
        updated_at=thread.updated_at,
        metadata=thread.metadata,
        status=await thread_status(bus, tenant_id, thread.thread_id),
    )


@router.post("", status_code=201, response_model=ThreadInfo, responses=error_responses(409, 503))
async def create_thread(body: ThreadCreate, principal: Caller, memory: MemoryClient, bus: Bus) -> ThreadInfo:
    """A new thread with metadata to find it by; a 409 if one with that id exists."""
    created = await memory.create_thread(
        principal.tenant_id, body.thread_id or "", body.metadata, if_exists_do_nothing=False
    )
    return await _info(bus, principal.tenant_id, created)


@router.get("", response_model=ThreadPage, responses=error_responses(503))
async def list_threads(
    principal: Caller,
    memory: MemoryClient,
    bus: Bus,
    limit: Annotated[int, Query(ge=1, le=THREAD_PAGE_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort_by: ThreadSortBy = "updated_at",
    sort_order: SortOrder = "desc",
) -> ThreadPage:
    """The caller's threads, most recently active first, a page at a time."""
    search = ThreadSearch(limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order)
    return await _page(memory, bus, principal, search)


@router.post("/search", response_model=ThreadPage, responses=error_responses(503))
async def search_threads(body: ThreadSearch, principal: Caller, memory: MemoryClient, bus: Bus) -> ThreadPage:
    """The caller's threads whose metadata holds every given key and value, a page at a time."""
    return await _page(memory, bus, principal, body)


async def _page(memory: Memory, bus: RunBus, principal: Principal, search: ThreadSearch) -> ThreadPage:
    # One more than asked for tells whether a next page exists.
    found = await memory.list_threads(
        principal.tenant_id,
        metadata=search.metadata,
        limit=search.limit + 1,
        offset=search.offset,
        sort_by=search.sort_by,
        sort_order=search.sort_order,
    )
    threads = list(await asyncio.gather(*(_info(bus, principal.tenant_id, t) for t in found[: search.limit])))
    more = len(found) > search.limit
    return ThreadPage(threads=threads, next_offset=search.offset + search.limit if more else None)


@router.get("/{thread_id}", response_model=ThreadInfo, responses=error_responses(404, 503))
async def get_thread(thread_id: ThreadId, principal: Caller, memory: MemoryClient, bus: Bus) -> ThreadInfo:
    return await _info(bus, principal.tenant_id, await memory.get_thread(principal.tenant_id, thread_id))


@router.get("/{thread_id}/state", response_model=ThreadState, responses=error_responses(404, 503))
async def thread_state(thread_id: ThreadId, principal: Caller, memory: MemoryClient) -> ThreadState:
    """The thread's latest state: its messages (the question, tool calls and results, answers) and metadata."""
    latest = await memory.latest(principal.tenant_id, thread_id)
    if latest is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return _state(latest)


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def thread_history(
    thread_id: ThreadId,
    principal: Caller,
    memory: MemoryClient,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(pattern=ID_PATTERN, description="A checkpoint id: only older ones.")] = None,
) -> list[Any]:
    """The thread's checkpoints, newest first: every step of every run, to inspect or to fork from."""
    checkpoints = await memory.history(principal.tenant_id, thread_id, limit=limit, before=before)
    states = [_state(c) for c in checkpoints]
    if not states and before is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return states


@router.delete("/{thread_id}", status_code=204, responses=error_responses(404, 503))
async def delete_thread(thread_id: ThreadId, principal: Caller, memory: MemoryClient) -> Response:
    """Erase the thread: every checkpoint and pending write of it."""
    await memory.get_thread(principal.tenant_id, thread_id)  # a 404 when it is not the caller's
    await memory.delete_thread(principal.tenant_id, thread_id)
    log.info("thread deleted", thread_id=thread_id)
    return Response(status_code=204)
