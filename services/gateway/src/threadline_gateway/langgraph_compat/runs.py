"""``/langgraph/threads/{thread_id}/runs`` and ``/langgraph/runs``: start, stream, wait for, join and cancel runs.

A run's input is LangGraph's ``{"messages": [...]}``; its last user message is the question (the
thread's memory holds the turns before it). Without a thread (``/runs/...``) a run gets a new one.
``multitask_strategy`` decides what happens while the thread still answers an earlier run.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from threadline.events import RunEvent, RunRequested

from threadline_gateway import memory
from threadline_gateway.auth import caller
from threadline_gateway.errors import ApiError, invalid_field
from threadline_gateway.langgraph_compat.frames import error_body, stream_part
from threadline_gateway.langgraph_compat.schemas import Run, RunCreate, RunStatus, StreamMode
from threadline_gateway.runs import RunBus, RunRecord
from threadline_gateway.schemas import ID_PATTERN, ToolDecision, error_responses, strip_blank
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.streaming import resume_point, sse_response
from threadline_gateway.submit import input_errors, nats_errors_as_503, run_timeout, user_metadata

router = APIRouter()
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
_ALL_MODES: set[StreamMode] = {"values", "updates", "messages-tuple"}
_SSE = {200: {"content": {"text/event-stream": {}}, "description": "The run's stream parts as server-sent events"}}
_STATUS: dict[str, RunStatus] = {"cancelled": "interrupted"}


def _question(body: RunCreate, settings: GatewaySettings) -> str:
    """The text of the input's last user message, or a 422 naming the field."""
    messages = (body.input or {}).get("messages")
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
        if errors := input_errors(text, settings):
            raise ApiError(422, "validation_error", "The request is not valid.", fields=errors)
        return text
    if body.command is not None:
        return ""  # a resume: the decision is the input
    raise invalid_field("input.messages", "must hold a user message")


def _resume(body: RunCreate) -> dict[str, Any] | None:
    """``command.resume``: the decision on the tool call the thread's interrupted run waits on."""
    if body.command is None:
        return None
    if set(body.command) != {"resume"}:
        raise ApiError(
            422, "unsupported", "Only command.resume is supported: a decision on the tool call the run waits on."
        )
    try:
        decision = ToolDecision.model_validate(body.command["resume"])
    except ValidationError as exc:
        raise invalid_field(
            "command.resume",
            '{"action": "approve"}, {"action": "reject", "reason": ...} or {"action": "edit", "args": {...}}',
        ) from exc
    return decision.model_dump(exclude_none=True)


def _text(content: Any) -> str:
    """A message's text: a string, or the text blocks of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


async def _start(request: Request, body: RunCreate, thread_id: str | None) -> RunRecord:
    settings: GatewaySettings = request.app.state.settings
    tenant_id = caller(request).tenant_id
    if body.assistant_id not in settings.assistant_ids():
        raise ApiError(404, "not_found", f"No assistant {body.assistant_id!r}.")
    text = _question(body, settings)
    resume = _resume(body)
    store: memory.Memory = request.app.state.memory
    if thread_id is None:
        thread_id = str(uuid.uuid4())
    elif body.if_not_exists == "create":
        await store.create_thread(tenant_id, thread_id, {}, if_exists_do_nothing=True)
    else:
        await store.get_thread(tenant_id, thread_id)  # 404 for a thread that was never created
    modes = body.stream_modes()
    run = RunRequested(
        run_id=str(uuid.uuid4()),
        thread_id=thread_id,
        tenant_id=tenant_id,
        assistant_id=body.assistant_id,
        input=text,
        metadata=body.metadata | user_metadata(caller(request), body.metadata.get("user_id")),
        state_events=[m for m in ("values", "updates") if m in modes],
        resume=resume,
    )
    bus: RunBus = request.app.state.bus
    with nats_errors_as_503():
        await bus.start(run, body.multitask_strategy)
    return RunRecord.of(run, body.multitask_strategy)


async def _owned(request: Request, thread_id: str, run_id: str) -> RunRecord:
    bus: RunBus = request.app.state.bus
    with nats_errors_as_503():
        record = await bus.lookup(run_id, caller(request).tenant_id)
    if record is None or record.thread_id != thread_id:
        raise ApiError(404, "not_found", f"No run {run_id!r} in thread {thread_id!r}.")
    return record


async def _run(request: Request, record: RunRecord) -> Run:
    with nats_errors_as_503():
        status = await request.app.state.bus.status(record.run_id)
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


def _locations(request: Request, record: RunRecord) -> dict[str, str]:
    """Where the run is (``Content-Location``, read by the SDK) and where its stream resumes (``Location``)."""
    ids = {"thread_id": record.thread_id, "run_id": record.run_id}
    return {
        "Content-Location": str(request.url_for("lg_get_run", **ids)),
        "Location": str(request.url_for("lg_join_stream", **ids)),
    }


async def _final(request: Request, record: RunRecord) -> RunEvent:
    settings: GatewaySettings = request.app.state.settings
    try:
        with nats_errors_as_503():
            async with request.app.state.bus.follow(record.run_id) as events:
                return await asyncio.wait_for(events.final(), timeout=settings.run_timeout_s)
    except TimeoutError as exc:
        raise run_timeout(settings, record) from exc


async def _outcome(request: Request, record: RunRecord) -> JSONResponse:
    """The thread's values once the run has ended, or ``{"__error__": ...}`` if it failed (as LangGraph answers)."""
    final = await _final(request, record)
    if final.kind == "error":
        content: Any = {"__error__": error_body(final)}
    else:
        latest = await request.app.state.memory.latest(record.tenant_id, record.thread_id)
        content = latest.values if latest else {}
        if waiting := final.data.get("interrupts"):
            content = content | {"__interrupt__": [{"value": w, "id": w.get("id")} for w in waiting]}
    return JSONResponse(content, headers=_locations(request, record))


async def _stream(
    request: Request, record: RunRecord, modes: set[StreamMode], *, after: int, count_outcome: bool
) -> StreamingResponse:
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            events = await stack.enter_async_context(request.app.state.bus.follow(record.run_id, after_seq=after))
    except BaseException:
        await stack.aclose()
        raise
    if count_outcome:
        request.app.state.metrics.run_started("langgraph")
    return sse_response(
        request,
        record,
        events,
        stack,
        count_outcome=count_outcome,
        headers=_locations(request, record),
        framer=partial(stream_part, modes=modes, record=record),
    )


_START_ERRORS = error_responses(404, 409, 422, 503)


async def _created(request: Request, body: RunCreate, thread_id: str | None) -> JSONResponse:
    record = await _start(request, body, thread_id)
    request.app.state.metrics.run_started("langgraph")
    run = await _run(request, record)
    return JSONResponse(run.model_dump(mode="json"), headers=_locations(request, record))


@router.post("/threads/{thread_id}/runs", response_model=Run, responses=_START_ERRORS)
async def create_run(thread_id: ThreadId, body: RunCreate, request: Request) -> JSONResponse:
    """Start a run in the background; join it, stream it or poll it later."""
    return await _created(request, body, thread_id)


@router.post("/runs", response_model=Run, responses=_START_ERRORS)
async def create_stateless_run(body: RunCreate, request: Request) -> JSONResponse:
    return await _created(request, body, None)


@router.post("/threads/{thread_id}/runs/stream", response_class=StreamingResponse, responses=_SSE | _START_ERRORS)
async def stream_run(thread_id: ThreadId, body: RunCreate, request: Request) -> StreamingResponse:
    """Start a run and stream it: ``metadata`` first, then the parts of each ``stream_mode`` asked for."""
    record = await _start(request, body, thread_id)
    return await _stream(request, record, body.stream_modes(), after=-1, count_outcome=True)


@router.post("/runs/stream", response_class=StreamingResponse, responses=_SSE | _START_ERRORS)
async def stream_stateless_run(body: RunCreate, request: Request) -> StreamingResponse:
    record = await _start(request, body, None)
    return await _stream(request, record, body.stream_modes(), after=-1, count_outcome=True)


@router.post("/threads/{thread_id}/runs/wait", responses=_START_ERRORS | error_responses(504))
async def wait_run(thread_id: ThreadId, body: RunCreate, request: Request) -> JSONResponse:
    """Start a run and answer with the thread's values once it has ended."""
    return await _outcome(request, await _start(request, body, thread_id))


@router.post("/runs/wait", responses=_START_ERRORS | error_responses(504))
async def wait_stateless_run(body: RunCreate, request: Request) -> JSONResponse:
    return await _outcome(request, await _start(request, body, None))


@router.get(
    "/threads/{thread_id}/runs/{run_id}", name="lg_get_run", response_model=Run, responses=error_responses(404, 503)
)
async def get_run(thread_id: ThreadId, run_id: RunId, request: Request) -> Run:
    return await _run(request, await _owned(request, thread_id, run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=error_responses(404, 503, 504))
async def join_run(thread_id: ThreadId, run_id: RunId, request: Request) -> JSONResponse:
    """Wait for the run to end; the thread's values then (at once if it has already ended)."""
    return await _outcome(request, await _owned(request, thread_id, run_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    name="lg_join_stream",
    response_class=StreamingResponse,
    responses=_SSE | error_responses(404, 422, 503),
)
async def join_stream(
    thread_id: ThreadId,
    run_id: RunId,
    request: Request,
    stream_mode: Annotated[list[StreamMode] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow the run's stream, from its start or after ``Last-Event-ID``: every mode it was started with by default."""
    after = resume_point(last_event_id)
    record = await _owned(request, thread_id, run_id)
    modes = set(stream_mode) if stream_mode else _ALL_MODES
    return await _stream(request, record, modes, after=-1 if after is None else after, count_outcome=False)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel", status_code=202, responses=error_responses(404, 409, 422, 503)
)
async def cancel_run(
    thread_id: ThreadId,
    run_id: RunId,
    request: Request,
    wait: Annotated[bool, Query()] = False,
    action: Annotated[
        Literal["interrupt"],
        Query(description="Only interrupt: to undo a run, start the next one with multitask_strategy=rollback."),
    ] = "interrupt",
) -> Response:
    """Stop the run (its steps so far stay in the thread); with ``wait``, answer once it has stopped."""
    record = await _owned(request, thread_id, run_id)
    bus: RunBus = request.app.state.bus
    with nats_errors_as_503():
        status = await bus.status(run_id)
        if status not in ("pending", "running"):
            raise ApiError(409, "run_finished", f"The run has already finished ({status}).")
        await bus.cancel(run_id)
    if wait:
        await _final(request, record)
        return Response(status_code=204)
    return Response(status_code=202)
