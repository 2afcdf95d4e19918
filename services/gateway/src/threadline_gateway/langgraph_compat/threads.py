"""``/langgraph/threads``: create, find, read, change, copy and delete threads, and read their state and history.

Threads live in the memory service, scoped to the caller's tenant: another tenant's thread is a 404.
A thread's status is ``busy`` while its latest run is pending or running, else ``idle``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from threadline.events import StateUpdate
from threadline.ids import ID_PATTERN
from threadline.run_events import RunError

from threadline_gateway.deps import Bus, Caller, MemoryClient, Settings, Starter
from threadline_gateway.errors import ApiError
from threadline_gateway.langgraph_compat.schemas import (
    CheckpointRef,
    HistoryRequest,
    StateAtCheckpoint,
    StateUpdated,
    Thread,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
    ThreadState,
    ThreadStateUpdate,
)
from threadline_gateway.memory import Checkpoint, Memory
from threadline_gateway.memory import Thread as StoredThread
from threadline_gateway.routes.threads import thread_status
from threadline_gateway.run_bus import RunBus
from threadline_gateway.run_starter import NewRun
from threadline_gateway.schemas import error_responses

router = APIRouter(prefix="/threads")
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]


@dataclass(frozen=True)
class _Threads:
    """The caller's threads in the memory service, with each one's status from the run bus."""

    tenant_id: str
    memory: Memory
    bus: RunBus

    async def thread(self, found: StoredThread) -> Thread:
        status = await thread_status(self.bus, self.tenant_id, found.thread_id)
        latest = await self.memory.latest(self.tenant_id, found.thread_id)
        return Thread(
            thread_id=found.thread_id,
            created_at=found.created_at,
            updated_at=found.updated_at,
            metadata=found.metadata,
            status=status,
            values=latest.values if latest else None,
        )

    async def state(self, thread_id: str, checkpoint_id: str = "") -> ThreadState:
        checkpoint = await self.memory.latest(self.tenant_id, thread_id, checkpoint_id)
        if checkpoint is None:
            await self.memory.get_thread(self.tenant_id, thread_id)  # a 404 for a thread that does not exist
            if checkpoint_id:
                raise ApiError(404, "not_found", f"No checkpoint {checkpoint_id!r} in thread {thread_id!r}.")
        return _state_of(thread_id, checkpoint)

    async def history(self, thread_id: str, limit: int, before: str | None) -> list[ThreadState]:
        checkpoints = await self.memory.history(self.tenant_id, thread_id, limit=limit, before=before)
        if not checkpoints:
            await self.memory.get_thread(self.tenant_id, thread_id)
        return [_state_of(thread_id, c) for c in checkpoints]


# Async only so FastAPI calls it on the event loop rather than in a worker thread.
async def _threads(principal: Caller, memory: MemoryClient, bus: Bus) -> _Threads:
    return _Threads(principal.tenant_id, memory, bus)


Threads = Annotated[_Threads, Depends(_threads)]


def _state_of(thread_id: str, checkpoint: Checkpoint | None) -> ThreadState:
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
        next=checkpoint.next,
        tasks=checkpoint.tasks,
    )


@router.post("", response_model=Thread, responses=error_responses(409, 503))
async def create_thread(body: ThreadCreate, threads: Threads) -> Thread:
    """A new thread (a new id unless one is given); an existing id is a 409 unless ``if_exists`` is ``do_nothing``."""
    created = await threads.memory.create_thread(
        threads.tenant_id, body.thread_id or "", body.metadata, if_exists_do_nothing=body.if_exists == "do_nothing"
    )
    return await threads.thread(created)


@router.post("/search", response_model=list[Thread], responses=error_responses(503))
async def search_threads(body: ThreadSearch, threads: Threads) -> list[Thread]:
    """The tenant's threads whose metadata holds every given key and value, newest first by default."""
    found = await threads.memory.list_threads(
        threads.tenant_id,
        metadata=body.metadata or {},
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    listed = await asyncio.gather(*(threads.thread(t) for t in found))
    return [t for t in listed if body.status is None or t.status == body.status]


@router.get("/{thread_id}", response_model=Thread, responses=error_responses(404, 503))
async def get_thread(thread_id: ThreadId, threads: Threads) -> Thread:
    return await threads.thread(await threads.memory.get_thread(threads.tenant_id, thread_id))


@router.patch("/{thread_id}", response_model=Thread, responses=error_responses(404, 503))
async def update_thread(thread_id: ThreadId, body: ThreadPatch, threads: Threads) -> Thread:
    """Merge ``metadata`` into the thread's."""
    return await threads.thread(await threads.memory.update_thread(threads.tenant_id, thread_id, body.metadata))


@router.delete("/{thread_id}", status_code=204, responses=error_responses(404, 503))
async def delete_thread(thread_id: ThreadId, threads: Threads) -> Response:
    await threads.memory.get_thread(threads.tenant_id, thread_id)
    await threads.memory.delete_thread(threads.tenant_id, thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy", response_model=Thread, responses=error_responses(404, 503))
async def copy_thread(thread_id: ThreadId, threads: Threads) -> Thread:
    """A new thread with the same history, to branch a conversation off."""
    return await threads.thread(await threads.memory.copy_thread(threads.tenant_id, thread_id))


@router.get("/{thread_id}/state", response_model=ThreadState, responses=error_responses(404, 503))
async def get_state(thread_id: ThreadId, threads: Threads) -> ThreadState:
    return await threads.state(thread_id)


@router.post("/{thread_id}/state", response_model=StateUpdated, responses=error_responses(404, 409, 422, 503, 504))
async def update_state(
    thread_id: ThreadId,
    body: ThreadStateUpdate,
    threads: Threads,
    principal: Caller,
    starter: Starter,
    settings: Settings,
) -> StateUpdated:
    """Update the thread's state with the graph's reducers, as if ``as_node`` had just run; the new checkpoint.

    Only the thread's graph knows its reducers, so the update is a run of its own kind, durable on JetStream
    like every run, that a worker of the thread's graph applies (``graph.aupdate_state``); this waits for it.
    The thread's graph is its metadata's ``graph_id`` (set by its first run, or given on create), else its
    latest checkpoint's.
    """
    found = await threads.memory.get_thread(threads.tenant_id, thread_id)
    graph_id = found.metadata.get("graph_id")
    if not isinstance(graph_id, str) or not graph_id:
        latest = await threads.memory.latest(threads.tenant_id, thread_id)
        graph_id = latest.metadata.get("graph_id") if latest else None
    if not isinstance(graph_id, str) or not graph_id:
        raise ApiError(
            409, "thread_has_no_graph", f"Thread {thread_id!r} has no graph yet: run it, or create it with graph_id."
        )
    checkpoint_id = (body.checkpoint.checkpoint_id if body.checkpoint else None) or body.checkpoint_id
    update = StateUpdate(values=body.values, as_node=body.as_node, checkpoint_id=checkpoint_id)
    new = NewRun(input=None, assistant_id=graph_id, thread_id=thread_id, update_state=update)
    run = await starter.start(principal, new, "langgraph")
    outcome = await run.outcome(settings.run_timeout_s)
    if isinstance(outcome, RunError):
        status = _UPDATE_ERRORS.get(outcome.code, 503)
        raise ApiError(status, outcome.code, outcome.message or "The state update failed.", run_id=run.record.run_id)
    ref = outcome.checkpoint or {}
    return StateUpdated(
        checkpoint=CheckpointRef(
            thread_id=thread_id, checkpoint_ns=ref.get("checkpoint_ns", ""), checkpoint_id=ref.get("checkpoint_id")
        )
    )


# A failed update's status, by the worker's error code; any other failure (a dependency down) is a 503.
_UPDATE_ERRORS = {"invalid_update": 422, "assistant_not_found": 404, "cancelled": 409}


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=ThreadState, responses=error_responses(404, 503))
async def get_state_at(
    thread_id: ThreadId, checkpoint_id: Annotated[str, Path(pattern=ID_PATTERN)], threads: Threads
) -> ThreadState:
    return await threads.state(thread_id, checkpoint_id)


@router.post("/{thread_id}/state/checkpoint", response_model=ThreadState, responses=error_responses(404, 503))
async def post_state_at(thread_id: ThreadId, body: StateAtCheckpoint, threads: Threads) -> ThreadState:
    return await threads.state(thread_id, body.checkpoint.checkpoint_id or "")


@router.post("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def post_history(thread_id: ThreadId, body: HistoryRequest, threads: Threads) -> list[ThreadState]:
    """The thread's states, newest first; ``metadata`` keeps those whose metadata holds every given key and value."""
    before = body.before if isinstance(body.before, str) or body.before is None else body.before.checkpoint_id
    states = await threads.history(thread_id, body.limit, before)
    if body.metadata:
        states = [s for s in states if all(s.metadata.get(k) == v for k, v in body.metadata.items())]
    return states


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def get_history(
    thread_id: ThreadId,
    threads: Threads,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> list[ThreadState]:
    return await threads.history(thread_id, limit, before)
