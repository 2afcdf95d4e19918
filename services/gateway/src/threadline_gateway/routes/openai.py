"""OpenAI-compatible ``/v1``: each assistant is a model; a chat completion is a run of that assistant.

The last message (a user message) is the question. Earlier messages are not sent to the agent:
its memory holds the thread, and :mod:`threadline_gateway.chat_threads` finds the thread a resent
history belongs to (or the client names it with ``thread_id`` / ``X-Thread-Id``). System messages
are ignored: the assistant has its own instructions.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Request, Response
from nats.errors import Error as NatsError

from threadline_gateway import sse
from threadline_gateway.auth import caller
from threadline_gateway.chat_threads import ChatThreads, Turn, conversation_key
from threadline_gateway.errors import ApiError, invalid_field
from threadline_gateway.metrics import GatewayMetrics
from threadline_gateway.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Model,
    ModelList,
    Usage,
)
from threadline_gateway.runs import RunBus, RunEventStream, RunRecord
from threadline_gateway.schemas import ID_PATTERN, QueryRequest, error_responses, strip_blank
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.streaming import ClosingStreamingResponse
from threadline_gateway.submit import (
    final_response,
    input_errors,
    nats_errors_as_503,
    new_run,
    run_timeout,
)

router = APIRouter(prefix="/v1", tags=["openai"])
log = structlog.get_logger("threadline.gateway")

# Assistants have no creation time; a fixed one keeps /v1/models stable across replicas and restarts.
_CREATED = 1_735_689_600  # 2025-01-01


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """Every assistant, as a model."""
    settings: GatewaySettings = request.app.state.settings
    return ModelList(data=[Model(id=a, created=_CREATED) for a in settings.assistant_ids()])


@router.get("/models/{model_id}", response_model=Model, responses=error_responses(404))
async def get_model(model_id: str, request: Request) -> Model:
    _known_model(request.app.state.settings, model_id)
    return Model(id=model_id, created=_CREATED)


def _known_model(settings: GatewaySettings, model: str) -> None:
    if model not in settings.assistant_ids():
        raise ApiError(404, "model_not_found", f"The model {model!r} does not exist; GET /v1/models lists them.")


def _turns(body: ChatCompletionRequest, settings: GatewaySettings) -> list[Turn]:
    """The user and assistant turns, the last one the question; a 422 naming ``messages`` otherwise."""
    if body.messages[-1].role != "user":
        raise invalid_field("messages", "the last message must be a user message")
    turns = [(m.role, m.text()) for m in body.messages if m.role in ("user", "assistant")]
    for error in input_errors(strip_blank(turns[-1][1]), settings):
        raise invalid_field("messages", f"the last message's text {error['message']}")
    return turns


async def _thread_of(
    threads: ChatThreads, body: ChatCompletionRequest, header: str | None, tenant: str, turns: list[Turn]
) -> str | None:
    explicit = body.thread_id or header
    if explicit is not None:
        if not re.match(ID_PATTERN, explicit):
            raise invalid_field("X-Thread-Id", "must be a thread id: letters, digits and _.:- (at most 128)")
        return explicit
    if len(turns) == 1:
        return None
    return await threads.find(conversation_key(tenant, body.user, body.model, turns[:-1]))


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: chat.completion.chunk events"},
        **error_responses(404, 409, 502, 504),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    response: Response,
    x_thread_id: Annotated[str | None, Header(alias="X-Thread-Id")] = None,
) -> Any:
    """Ask an assistant, OpenAI-style; ``X-Thread-Id`` in the response names the thread the answer joined."""
    settings: GatewaySettings = request.app.state.settings
    bus: RunBus = request.app.state.bus
    threads: ChatThreads = request.app.state.chat_threads
    tenant = caller(request).tenant_id
    _known_model(settings, body.model)
    turns = _turns(body, settings)
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            thread_id = await _thread_of(threads, body, x_thread_id, tenant, turns)
            query = QueryRequest(
                input=strip_blank(turns[-1][1]), thread_id=thread_id, assistant_id=body.model, user_id=body.user or None
            )
            run = new_run(query, settings, caller(request))
            record = RunRecord.of(run)
            await bus.start(run)
            events = await stack.enter_async_context(bus.follow(run.run_id))
    except BaseException:
        await stack.aclose()
        raise
    request.app.state.metrics.run_started("openai")
    remember = _Remember(threads, tenant, body, record)
    if body.stream:
        return _stream(request, body, record, events, stack, remember)
    async with stack:
        return await _complete(request, response, record, events, remember)


class _Remember:
    """After an answer: the conversation including it continues this thread next time."""

    def __init__(self, threads: ChatThreads, tenant: str, body: ChatCompletionRequest, record: RunRecord) -> None:
        self.threads, self.tenant, self.body, self.record = threads, tenant, body, record

    async def __call__(self, turns: list[Turn], answer: str) -> None:
        key = conversation_key(self.tenant, self.body.user, self.body.model, [*turns, ("assistant", answer)])
        try:
            await self.threads.remember(key, self.record.thread_id)
        except (NatsError, OSError) as exc:  # the answer stands; only the next turn starts a new thread
            log.warning("could not remember a chat's thread", run_id=self.record.run_id, error=str(exc))


async def _complete(
    request: Request, response: Response, record: RunRecord, events: RunEventStream, remember: _Remember
) -> ChatCompletion:
    settings: GatewaySettings = request.app.state.settings
    metrics: GatewayMetrics = request.app.state.metrics
    try:
        with nats_errors_as_503():
            final = await asyncio.wait_for(events.final(), timeout=settings.run_timeout_s)
    except TimeoutError as exc:
        metrics.run_finished("timeout")
        raise run_timeout(settings, record) from exc
    metrics.run_finished("success" if final.kind == "end" else "error")
    answer = final_response(record, final)
    await remember(_turns(remember.body, settings), answer.answer)
    response.headers["X-Thread-Id"] = record.thread_id
    return ChatCompletion(
        id=f"chatcmpl-{record.run_id}",
        created=int(record.created_at.timestamp()),
        model=record.assistant_id,
        choices=[Choice(message=AssistantMessage(content=answer.answer))],
        usage=Usage.of(answer.usage),
        thread_id=record.thread_id,
        citations=answer.citations,
    )


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def _stream(
    request: Request,
    body: ChatCompletionRequest,
    record: RunRecord,
    events: RunEventStream,
    stack: AsyncExitStack,
    remember: _Remember,
) -> ClosingStreamingResponse:
    settings: GatewaySettings = request.app.state.settings
    metrics: GatewayMetrics = request.app.state.metrics
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    outcome = ["disconnected"]
    base = {
        "id": f"chatcmpl-{record.run_id}",
        "object": "chat.completion.chunk",
        "created": int(record.created_at.timestamp()),
        "model": record.assistant_id,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _data({**base, "choices": [choice], **({"usage": None} if include_usage else {}), **extra})

    def error(code: str, message: str) -> bytes:
        # The OpenAI client raises an APIError for a streamed object with an "error" key.
        return _data({"error": {"message": message, "type": "run_error", "code": code}})

    async def content() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        streamed: list[str] = []
        deadline = time.monotonic() + settings.run_timeout_s
        iterator = aiter(events)
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(anext(iterator), timeout=min(left, settings.sse_ping_s))
            except TimeoutError:
                yield sse.PING
                continue
            except StopAsyncIteration:
                return
            if event.kind == "token" and (text := str(event.data.get("text", ""))):
                streamed.append(text)
                yield chunk({"content": text})
            elif event.kind == "error":
                outcome[0] = "error"
                code, message = event.data.get("code", "run_failed"), event.data.get("message", "The run failed.")
                yield error(str(code), str(message))
                return
            elif event.kind == "end":
                outcome[0] = "success"
                answer = str(event.data.get("answer", ""))
                if not streamed and answer:
                    streamed.append(answer)
                    yield chunk({"content": answer})
                citations = event.data.get("citations") or []
                yield chunk({}, "stop", thread_id=record.thread_id, citations=citations)
                if include_usage:
                    usage = Usage.of(event.data.get("usage") or {}).model_dump()
                    yield _data({**base, "choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
                # What the client saw is what it will send back as the assistant's message.
                await remember(_turns(body, settings), "".join(streamed))
                return
        outcome[0] = "timeout"
        yield error("stream_timeout", f"The run has not ended yet; follow it at /api/v1/runs/{record.run_id}/stream.")

    async def on_close() -> None:
        try:
            await stack.aclose()
        except Exception as exc:
            log.warning("could not release a run's event subscription", run_id=record.run_id, error=str(exc))
        metrics.run_finished(outcome[0])

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Thread-Id": record.thread_id,
        "Content-Location": f"/api/v1/runs/{record.run_id}",
    }
    return ClosingStreamingResponse(content(), on_close, media_type="text/event-stream", headers=headers)
