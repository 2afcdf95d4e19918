"""OpenAI-compatible ``/v1``: each assistant is a model; a chat completion is a run of that assistant.

The last message (a user message) is the question. :mod:`threadline_gateway.chat_threads` finds the
thread a resent history belongs to (or the client names it with ``thread_id`` / ``X-Thread-Id``):
that thread already holds the earlier turns, so the run gets the question alone. A history that
matches no thread starts a new one holding all of it: the run's input is every system, user and
assistant message, and the model reads the client's system messages after the assistant's own
instructions. ``response_format`` asks for structured output: ``message.content`` is then the JSON
text of the run's structured answer, as OpenAI sends it. ``tools`` are the client's own
(:mod:`threadline_gateway.openai_tools`): a run that calls them answers with ``tool_calls``, and a
request whose last messages are their results continues that run's thread with them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Response
from nats.errors import Error as NatsError
from threadline.ids import ID_PATTERN

from threadline_gateway.answers import result_of
from threadline_gateway.chat_threads import CONVERSATION_ROLES, ChatThreads, Turn, conversation_key, run_input
from threadline_gateway.deps import Caller, Chats, MemoryClient, Settings, Starter
from threadline_gateway.errors import ApiError, invalid_field, nats_errors_as_503
from threadline_gateway.memory import Assistant
from threadline_gateway.openai_frames import ChatChunks, content_of
from threadline_gateway.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Model,
    ModelList,
    Usage,
)
from threadline_gateway.openai_tools import ChatToolCall, checked_tools, tool_results, whole_history
from threadline_gateway.run_starter import NewRun, input_errors
from threadline_gateway.schemas import error_responses, strip_blank
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.streaming import sse_response

router = APIRouter(prefix="/v1", tags=["openai"])
log = structlog.get_logger("threadline.gateway")

_MODELS_MAX = 1000  # the most one search of the assistant registry returns


def _model(assistant: Assistant, tenant_id: str) -> Model:
    """A graph's default assistant is named by its graph (``agent``), one of the tenant's by its id."""
    created = int(datetime.fromisoformat(assistant.created_at).timestamp()) if assistant.created_at else 0
    if assistant.system:
        return Model(id=assistant.graph_id, created=created)
    return Model(id=assistant.assistant_id, created=created, owned_by=tenant_id)


@router.get("/models", response_model=ModelList, responses=error_responses(503))
async def list_models(principal: Caller, memory: MemoryClient) -> ModelList:
    """Every assistant the caller may run (the graphs' default ones and its own), as a model, oldest first."""
    found = await memory.search_assistants(
        principal.tenant_id, limit=_MODELS_MAX, sort_by="created_at", sort_order="asc"
    )
    return ModelList(data=[_model(a, principal.tenant_id) for a in found])


@router.get("/models/{model_id}", response_model=Model, responses=error_responses(404, 503))
async def get_model(model_id: str, principal: Caller, memory: MemoryClient) -> Model:
    try:
        return _model(await memory.get_assistant(principal.tenant_id, model_id), principal.tenant_id)
    except ApiError as exc:
        if exc.status in (404, 422):
            raise _unknown_model(model_id) from exc
        raise


def _unknown_model(model: str) -> ApiError:
    return ApiError(404, "model_not_found", f"The model {model!r} does not exist; GET /v1/models lists them.")


# Stands for a request's tool results where _thread_of expects the new turn: the thread holds every turn before it.
_TOOL_RESULTS: Turn = ("tool", "")


def _turns(body: ChatCompletionRequest, settings: GatewaySettings) -> list[Turn]:
    """The user and assistant turns, the last one the question; a 422 naming ``messages`` otherwise."""
    if body.messages[-1].role != "user":
        raise invalid_field("messages", "the last message must be a user message")
    turns: list[Turn] = [(m.role, m.text()) for m in body.messages if m.role in CONVERSATION_ROLES]
    for error in input_errors(strip_blank(turns[-1][1]), settings.max_input_chars):
        raise invalid_field("messages", f"the last message's text {error['message']}")
    return turns


async def _thread_of(
    threads: ChatThreads, body: ChatCompletionRequest, header: str | None, tenant: str, turns: list[Turn]
) -> str | None:
    explicit = body.thread_id or header
    if explicit is not None:
        if not re.fullmatch(ID_PATTERN, explicit):
            raise invalid_field("X-Thread-Id", "must be a thread id: letters, digits and _.:- (at most 128)")
        return explicit
    if len(turns) == 1:
        return None
    with nats_errors_as_503():
        return await threads.find(conversation_key(tenant, body.user, body.model, turns[:-1]))


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: chat.completion.chunk events"},
        **error_responses(404, 409, 502, 503, 504),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    response: Response,
    principal: Caller,
    settings: Settings,
    starter: Starter,
    chats: Chats,
    x_thread_id: Annotated[str | None, Header(alias="X-Thread-Id")] = None,
) -> Any:
    """Ask an assistant, OpenAI-style; ``X-Thread-Id`` in the response names the thread the answer joined."""
    given: str | dict[str, Any]
    turns: list[Turn]
    if results := tool_results(body.messages):  # the results of client tools: they continue the thread that called
        turns = [(m.role, m.text()) for m in body.messages[: -len(results)] if m.role in CONVERSATION_ROLES]
        thread_id = await _thread_of(chats, body, x_thread_id, principal.tenant_id, [*turns, _TOOL_RESULTS])
        given = {"messages": results if thread_id is not None else whole_history(body.messages)}
    else:
        turns = _turns(body, settings)
        thread_id = await _thread_of(chats, body, x_thread_id, principal.tenant_id, turns)
        given = run_input(turns, continues=thread_id is not None)
    client_tools, tool_choice = checked_tools(body.tools, body.tool_choice)
    question = NewRun(
        input=given,
        client_tools=client_tools,
        tool_choice=tool_choice,
        assistant_id=body.model,
        thread_id=thread_id,
        user_id=body.user or None,
        collection=body.collection,
        filter=body.filter,
        output_schema=body.response_format.output_schema() if body.response_format else None,
    )
    try:
        run = await starter.start(principal, question, "openai")
    except ApiError as exc:
        if exc.code == "assistant_not_found":
            raise _unknown_model(body.model) from exc
        raise
    record = run.record
    remember = _Remember(chats, principal.tenant_id, body, turns, record.thread_id)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        headers = {"X-Thread-Id": record.thread_id, "Content-Location": f"/api/v1/runs/{record.run_id}"}
        framing = ChatChunks(record, include_usage, remember, structured=question.output_schema is not None)
        return await sse_response(run, settings, headers=headers, framing=framing)
    result = result_of(record, await run.outcome(settings.run_timeout_s))
    content = content_of(result, structured=question.output_schema is not None)
    await remember(content)
    response.headers["X-Thread-Id"] = record.thread_id
    calls = [ChatToolCall.of(call) for call in result.tool_calls]
    message = AssistantMessage(content=(content or None) if calls else content, tool_calls=calls or None)
    return ChatCompletion(
        id=f"chatcmpl-{record.run_id}",
        created=int(record.created_at.timestamp()),
        model=record.assistant_id,
        choices=[Choice(message=message, finish_reason="tool_calls" if calls else "stop")],
        usage=Usage.of(result.usage),
        thread_id=record.thread_id,
        citations=result.citations,
    )


class _Remember:
    """After an answer: the conversation including it continues this thread next time."""

    def __init__(
        self, threads: ChatThreads, tenant: str, body: ChatCompletionRequest, turns: list[Turn], thread_id: str
    ) -> None:
        self.threads, self.tenant, self.body, self.turns, self.thread_id = threads, tenant, body, turns, thread_id

    async def __call__(self, answer: str) -> None:
        key = conversation_key(self.tenant, self.body.user, self.body.model, [*self.turns, ("assistant", answer)])
        try:
            await self.threads.remember(key, self.thread_id)
        except (NatsError, OSError) as exc:  # the answer stands; only the next turn starts a new thread
            log.warning("could not remember a chat's thread", thread_id=self.thread_id, error=str(exc))
