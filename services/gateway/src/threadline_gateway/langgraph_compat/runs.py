"""``/langgraph/threads/{thread_id}/runs`` and ``/langgraph/runs``: start, stream, wait for, join and cancel runs.

A run's input ``{"messages": [...]}`` is a question, its last user message (the thread's memory holds
the turns before it); any other input is the graph's, passed as it is, with the run's ``config``,
``context``, ``command`` and stream modes. Without a thread (``/runs/...``) a run gets a new one.
``multitask_strategy`` decides what happens while the thread still answers an earlier run.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from threadline.events import RunConfig
from threadline.ids import ID_PATTERN
from threadline.run_events import RunError

from threadline_gateway.auth import Principal
from threadline_gateway.deps import Bus, Caller, MemoryClient, Settings, Starter
from threadline_gateway.errors import ApiError, invalid_field, nats_errors_as_503
from threadline_gateway.langgraph_compat.frames import StreamParts, error_body
from threadline_gateway.langgraph_compat.schemas import Run, RunCreate, RunStatus, StreamMode
from threadline_gateway.memory import Memory
from threadline_gateway.memory import Thread as StoredThread
from threadline_gateway.run_bus import RunBus, RunRecord
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.run_starter import NewRun, RunStarter, input_errors
from threadline_gateway.schemas import ToolDecision, error_responses, strip_blank
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.streaming import resume_point, sse_response

router = APIRouter()
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
# A joined stream's modes unless it names some: every part the run was started with.
_ALL_MODES: set[StreamMode] = {"values", "updates", "messages", "messages-tuple", "events", "debug", "custom"}
_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "The run's stream parts as server-sent events"}
}
_STATUS: dict[str, RunStatus] = {"cancelled": "interrupted"}


def _question(body: RunCreate, settings: GatewaySettings) -> str | dict[str, Any] | None:
    """The run's input: the text of the last user message of a ``{"messages": [...]}`` input (the thread's
    memory holds the turns before it), any other input as the graph's JSON; a 422 naming the field."""
    if body.input is None:
        # None goes on from the thread's checkpoint (after an interrupt or update_state), as on LangGraph Platform
        return None if body.command is None else ""  # a command is the run's input
    if set(body.input) != {"messages"}:
        return body.input
    messages = body.input.get("messages")
    if isinstance(messages, str | dict):
        messages = [messages]
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, str):
            text = message
        elif isinstance(message, dict) and (message.get("role") in ("user", "human") or message.get("type") == "human"):
            text = _text(message.get("content"))
        else:
            continue
        text = strip_blank(text)
        if errors := input_errors(text, settings.max_input_chars):
            raise ApiError(422, "validation_error", "The request is not valid.", fields=errors)
        return text
    if body.command is not None:
        return ""  # a resume: the decision is the input
    raise invalid_field("input.messages", "must hold a user message")


def _command(body: RunCreate) -> tuple[ToolDecision | None, dict[str, Any] | None]:
    """``command`` as the run carries it: a decision on the tool call the thread waits on (a ``resume`` that
    is one: an object with an ``action``), or LangGraph's Command (``resume`` of any value, ``update``, ``goto``)."""
    command = body.command
    if command is None:
        return None, None
    if unknown := set(command) - {"resume", "update", "goto"}:
        raise invalid_field("command", f"has resume, update and goto, not {', '.join(sorted(unknown))}")
    resume = command.get("resume")
    if set(command) == {"resume"} and isinstance(resume, dict) and "action" in resume:
        try:
            return ToolDecision.model_validate(resume), None
        except ValidationError as exc:
            raise invalid_field(
                "command.resume",
                '{"action": "approve"}, {"action": "reject", "reason": ...} or {"action": "edit", "args": {...}}',
            ) from exc
    goto = command.get("goto")
    if goto is not None and not (
        isinstance(goto, str) or (isinstance(goto, list) and all(isinstance(g, str) for g in goto))
    ):
        raise invalid_field("command.goto", "names a node, or a list of nodes")
    if command.get("update") is not None and not isinstance(command["update"], dict | list):
        raise invalid_field("command.update", "is the state's update: an object, or a list of [key, value] pairs")
    return None, command


def _config(body: RunCreate) -> RunConfig:
    """The client's config: configurable (without the keys the platform sets), tags and recursion_limit."""
    try:
        return RunConfig.model_validate(body.config or {})
    except ValidationError as exc:
        raise invalid_field(
            "config", "configurable is an object, tags a list of strings, recursion_limit >= 1"
        ) from exc


def _text(content: Any) -> str:
    """A message's text: a string, or the text blocks of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


@dataclass(frozen=True)
class _Runs:
    """What every route here depends on, declared once: the caller, the run starter, the bus and memory."""

    request: Request
    principal: Principal
    settings: GatewaySettings
    starter: RunStarter
    bus: RunBus
    memory: Memory

    async def start(self, body: RunCreate, thread_id: str | None) -> RunHandle:
        """A LangGraph run, started as every run is (:mod:`threadline_gateway.run_starter`)."""
        given = _question(body, self.settings)
        resume, command = _command(body)
        tenant_id = self.principal.tenant_id
        thread: StoredThread | None = None
        if thread_id is None:
            if given is None:
                raise invalid_field("input", "is required without a thread (nothing to go on from) or a command")
            thread_id = str(uuid.uuid4())  # a stateless run gets a thread of its own
        elif body.if_not_exists == "create":
            thread = await self.memory.create_thread(tenant_id, thread_id, {}, if_exists_do_nothing=True)
        else:
            thread = await self.memory.get_thread(tenant_id, thread_id)  # 404 for a thread that was never created
        claimed = body.metadata.get("user_id")
        modes = body.stream_modes()
        new = NewRun(
            input=given,
            assistant_id=body.assistant_id,
            thread_id=thread_id,
            user_id=claimed if isinstance(claimed, str) else None,
            metadata=body.metadata,
            stream_modes=sorted(modes),
            resume=resume,
            command=command,
            config=_config(body),
            context=body.context,
            multitask=body.multitask_strategy,
            webhook=body.webhook,
        )
        run = await self.starter.start(self.principal, new, "langgraph")
        if thread is not None and "graph_id" not in thread.metadata and run.record.graph_id:
            # As LangGraph Platform does: the thread's graph, which a state update of it runs in.
            labels: dict[str, Any] = {"graph_id": run.record.graph_id}
            if "assistant_id" not in thread.metadata:
                labels["assistant_id"] = run.record.metadata.get("assistant_id", run.record.assistant_id)
            await self.memory.update_thread(tenant_id, thread_id, labels)
        return run

    async def owned(self, thread_id: str, run_id: str) -> RunHandle:
        with nats_errors_as_503():
            record = await self.bus.lookup(run_id, self.principal.tenant_id)
        if record is None or record.thread_id != thread_id:
            raise ApiError(404, "not_found", f"No run {run_id!r} in thread {thread_id!r}.")
        return RunHandle(record, self.bus)

    async def outcome(self, run: RunHandle) -> JSONResponse:
        """The graph's final values once the run has ended, or ``{"__error__": ...}`` if it failed (as LangGraph
        answers): a graph without messages says them in its result, a conversation's are its thread's."""
        outcome = await run.outcome(self.settings.run_timeout_s)
        if isinstance(outcome, RunError):
            content: Any = {"__error__": error_body(outcome)}
        else:
            if outcome.output is not None:
                content = outcome.output
            else:
                latest = await self.memory.latest(run.record.tenant_id, run.record.thread_id)
                content = latest.values if latest else {}
            if outcome.structured_response is not None:  # as create_react_agent's response_format puts it
                content = content | {"structured_response": outcome.structured_response}
            if outcome.interrupts:
                waiting = [{"value": w, "id": w.get("id")} for w in outcome.interrupts]
                content = content | {"__interrupt__": waiting}
        return JSONResponse(content, headers=self.locations(run.record))

    async def stream(self, run: RunHandle, modes: set[StreamMode], after_seq: int = -1) -> StreamingResponse:
        framing = StreamParts(modes, run.record)
        return await sse_response(
            run, self.settings, headers=self.locations(run.record), framing=framing, after_seq=after_seq
        )

    async def created(self, run: RunHandle) -> JSONResponse:
        info = await self.info(run.record)
        return JSONResponse(info.model_dump(mode="json"), headers=self.locations(run.record))

    async def info(self, record: RunRecord) -> Run:
        with nats_errors_as_503():
            status = await self.bus.status(record.run_id)
        created = record.created_at.isoformat()
        return Run(
            run_id=record.run_id,
            thread_id=record.thread_id,
            assistant_id=record.assistant_id,
            created_at=created,
            updated_at=created,
            status=_STATUS.get(status, status),
            metadata=record.metadata,
            multitask_strategy=record.multitask_strategy,
        )

    def locations(self, record: RunRecord) -> dict[str, str]:
        """Where the run is (``Content-Location``, read by the SDK) and where its stream resumes (``Location``)."""
        ids = {"thread_id": record.thread_id, "run_id": record.run_id}
        return {
            "Content-Location": str(self.request.url_for("lg_get_run", **ids)),
            "Location": str(self.request.url_for("lg_join_stream", **ids)),
        }


# Async only so FastAPI calls it on the event loop rather than in a worker thread.
async def _runs(
    request: Request, principal: Caller, settings: Settings, starter: Starter, bus: Bus, memory: MemoryClient
) -> _Runs:
    return _Runs(request, principal, settings, starter, bus, memory)


Runs = Annotated[_Runs, Depends(_runs)]


_START_ERRORS = error_responses(404, 409, 422, 503)


@router.post("/threads/{thread_id}/runs", response_model=Run, responses=_START_ERRORS)
async def create_run(thread_id: ThreadId, body: RunCreate, runs: Runs) -> JSONResponse:
    """Start a run in the background; join it, stream it or poll it later."""
    return await runs.created(await runs.start(body, thread_id))


@router.post("/runs", response_model=Run, responses=_START_ERRORS)
async def create_stateless_run(body: RunCreate, runs: Runs) -> JSONResponse:
    return await runs.created(await runs.start(body, None))


@router.post("/threads/{thread_id}/runs/stream", response_class=StreamingResponse, responses=_SSE | _START_ERRORS)
async def stream_run(thread_id: ThreadId, body: RunCreate, runs: Runs) -> StreamingResponse:
    """Start a run and stream it: ``metadata`` first, then the parts of each ``stream_mode`` asked for."""
    return await runs.stream(await runs.start(body, thread_id), body.stream_modes())


@router.post("/runs/stream", response_class=StreamingResponse, responses=_SSE | _START_ERRORS)
async def stream_stateless_run(body: RunCreate, runs: Runs) -> StreamingResponse:
    return await runs.stream(await runs.start(body, None), body.stream_modes())


@router.post("/threads/{thread_id}/runs/wait", responses=_START_ERRORS | error_responses(504))
async def wait_run(thread_id: ThreadId, body: RunCreate, runs: Runs) -> JSONResponse:
    """Start a run and answer with the thread's values once it has ended."""
    return await runs.outcome(await runs.start(body, thread_id))


@router.post("/runs/wait", responses=_START_ERRORS | error_responses(504))
async def wait_stateless_run(body: RunCreate, runs: Runs) -> JSONResponse:
    return await runs.outcome(await runs.start(body, None))


@router.get(
    "/threads/{thread_id}/runs/{run_id}", name="lg_get_run", response_model=Run, responses=error_responses(404, 503)
)
async def get_run(thread_id: ThreadId, run_id: RunId, runs: Runs) -> Run:
    return await runs.info((await runs.owned(thread_id, run_id)).record)


@router.get("/threads/{thread_id}/runs", response_model=list[Run], responses=error_responses(404, 503))
async def list_runs(
    thread_id: ThreadId,
    runs: Runs,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: Annotated[RunStatus | None, Query()] = None,
) -> list[Run]:
    """The thread's runs of the last hour (runs are kept as long as their events), newest first."""
    await runs.memory.get_thread(runs.principal.tenant_id, thread_id)  # 404 for another tenant's thread
    with nats_errors_as_503():
        records = await runs.bus.thread_runs(runs.principal.tenant_id, thread_id)
    if status is None:
        page = records[offset : offset + limit]
        return list(await asyncio.gather(*(runs.info(r) for r in page)))
    listed = await asyncio.gather(*(runs.info(r) for r in records))
    return [r for r in listed if r.status == status][offset : offset + limit]


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, responses=error_responses(404, 409, 503))
async def delete_run(thread_id: ThreadId, run_id: RunId, runs: Runs) -> Response:
    """Forget a run that has ended (its record and events; the thread's checkpoints stay); a 409 while it runs."""
    run = await runs.owned(thread_id, run_id)
    with nats_errors_as_503():
        status = await runs.bus.status(run_id)
        if status in ("pending", "running"):
            raise ApiError(409, "run_active", f"The run is still {status}; cancel it first.")
        await runs.bus.forget(run.record)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=error_responses(404, 503, 504))
async def join_run(thread_id: ThreadId, run_id: RunId, runs: Runs) -> JSONResponse:
    """Wait for the run to end; the thread's values then (at once if it has already ended)."""
    return await runs.outcome(await runs.owned(thread_id, run_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    name="lg_join_stream",
    response_class=StreamingResponse,
    responses=_SSE | error_responses(404, 422, 503),
)
async def join_stream(
    thread_id: ThreadId,
    run_id: RunId,
    runs: Runs,
    stream_mode: Annotated[list[StreamMode] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow the run's stream, from its start or after ``Last-Event-ID``: every mode it was started with by default."""
    after = resume_point(last_event_id)
    run = await runs.owned(thread_id, run_id)
    modes = set(stream_mode) if stream_mode else _ALL_MODES
    return await runs.stream(run, modes, after_seq=-1 if after is None else after)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel", status_code=202, responses=error_responses(404, 409, 422, 503)
)
async def cancel_run(
    thread_id: ThreadId,
    run_id: RunId,
    runs: Runs,
    wait: Annotated[bool, Query()] = False,
    action: Annotated[
        Literal["interrupt"],
        Query(description="Only interrupt: to undo a run, start the next one with multitask_strategy=rollback."),
    ] = "interrupt",
) -> Response:
    """Stop the run (its steps so far stay in the thread); with ``wait``, answer once it has stopped."""
    run = await runs.owned(thread_id, run_id)
    with nats_errors_as_503():
        status = await runs.bus.status(run_id)
        if status not in ("pending", "running"):
            raise ApiError(409, "run_finished", f"The run has already finished ({status}).")
        await runs.bus.cancel(run_id)
    if wait:
        await run.outcome(runs.settings.run_timeout_s)
        return Response(status_code=204)
    return Response(status_code=202)
