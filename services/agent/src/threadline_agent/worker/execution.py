"""One run of a graph, translated into the events a client sees and its result.

Any graph runs: one whose state has ``messages`` (the assistants here) gets Threadline's own events
(answer tokens, tool calls, citations, the knowledge-base notice) and its answer; any other state
(a dataclass, a TypedDict) takes its input as given and its result carries the final values as
``output``. Both stream the LangGraph stream modes the run asked for as events of those names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import asdict, is_dataclass
from typing import Any, cast

import openai
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk, HumanMessage, ToolMessage
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError, InvalidUpdateError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamMode
from pydantic import BaseModel
from threadline.events import RunRequested, client_configurable
from threadline.run_events import (
    Citation,
    Citations,
    CustomChunk,
    Interrupted,
    MessageChunk,
    RunEventKind,
    RunResult,
    StateChunk,
    Token,
    ToolCall,
    ToolResult,
    Usage,
)

from threadline_agent.graphs.approval import APPROVAL_NODE, REJECTED, parse_decision
from threadline_agent.graphs.assistants import ANSWER_NODES
from threadline_agent.graphs.client_tools import client_tools_config
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver, write_behind
from threadline_agent.worker.failures import MODEL_UNAVAILABLE, RunFailed, dependency_failures
from threadline_agent.worker.tracing import SpanCallbacks

RECURSION_LIMIT = 12  # a run's steps when its client names no recursion_limit
MAX_RECURSION_LIMIT = 100  # the most a client may ask for (AGENT_MAX_RECURSION_LIMIT)
# Said in every answer given without the knowledge base, whatever the model wrote.
KNOWLEDGE_BASE_NOTICE = "Note: I could not consult the knowledge base for this answer, so it may be incomplete."
GRAPH_TAKES_NO_MESSAGES = "graph_takes_no_messages"

# What a run reports while it works; its result (or failure) is the caller's to publish.
Progress = Token | ToolCall | ToolResult | Citations | Interrupted
Emit = Callable[[Progress], Awaitable[None]]
# LangGraph's own stream modes, for runs that ask for them (RunRequested.stream_modes), as events of those kinds.
StreamPart = StateChunk | MessageChunk | CustomChunk
EmitState = Callable[[RunEventKind, StreamPart], Awaitable[None]]


def run_config(request: RunRequested, *, max_recursion_limit: int = MAX_RECURSION_LIMIT) -> RunnableConfig:
    """Thread and tenant select the checkpoints (and the tenant's knowledge base); run_id labels them.

    The client's configurable keys and tags come along; the keys the platform sets are never the client's.
    """
    asked = request.config
    return RunnableConfig(
        configurable={
            **client_configurable(asked.configurable),
            "thread_id": request.thread_id,
            "tenant_id": request.tenant_id,
            **client_tools_config(request.client_tools, request.tool_choice),
        },
        metadata={
            "run_id": request.run_id,
            "assistant_id": request.assistant_id,
            "graph_id": request.graph_id,  # the thread takes it on: its graph, for a later state update
            **_user(request),
        },
        recursion_limit=min(asked.recursion_limit or RECURSION_LIMIT, max_recursion_limit),
        tags=list(asked.tags),
    )


def _user(request: RunRequested) -> dict[str, str]:
    """The client's user_id label: whose long-term memories the run reads and writes (graphs/memory_tools.py)
    and, carried into the checkpoints' metadata, whose threads an erasure of that user deletes."""
    user = request.metadata.get("user_id")
    return {"user_id": user} if isinstance(user, str) and user else {}


def takes_messages(graph: CompiledStateGraph) -> bool:
    """Whether the graph's state has a ``messages`` channel, so that a question's text can be its input."""
    return "messages" in graph.channels


async def execute_run(
    graph: CompiledStateGraph,
    request: RunRequested,
    emit: Emit,
    emit_state: EmitState,
    *,
    model: str,
    timeout_s: float,
    resume: bool = False,
    max_recursion_limit: int = MAX_RECURSION_LIMIT,
    answer_nodes: Collection[str] = (),
) -> RunResult:
    """Stream the graph, emitting its events and the stream modes the run asked for; return the run's result.

    Returns only once the graph has finished, that is after its last checkpoint is stored.
    With ``resume`` (a redelivered run), a thread whose last checkpoint belongs to this run and
    has steps left continues from there instead of taking the input again. A request that
    carries a decision (``request.resume``) or a command continues the thread's interrupted run
    with it. A run that stops for an interrupt returns ``status`` "interrupted" and what it waits on.
    ``answer_nodes``: the graph's nodes whose model output is streamed as the answer's tokens (its
    assistant's); none: the built-in graphs' names, which a user's graph may reuse.
    """
    with_messages = takes_messages(graph)
    turn = _Turn(answer_nodes or ANSWER_NODES)
    config = run_config(request, max_recursion_limit=max_recursion_limit)
    try:
        with dependency_failures():
            async with asyncio.timeout(timeout_s):
                config["callbacks"] = [SpanCallbacks()]
                state_input: Any
                if resume and await _continues(graph, request, config, turn, with_messages):
                    state_input = None
                elif request.resume is not None:
                    state_input = await _decision(graph, config, request.resume)
                elif request.command is not None:
                    state_input = await _command(graph, config, request.command)
                else:
                    state_input = _graph_input(request.input, with_messages)
                    if request.rollback_run_id:
                        await _roll_back(graph, config, request.rollback_run_id)
                parts = _Parts(request, turn, emit, emit_state, with_messages)
                async with _pipelined_checkpoints(graph, config):
                    async for mode, chunk in _stream(graph, state_input, config, request, parts.modes, emit_state):
                        await parts.on(mode, chunk)
                output: dict[str, Any] | None = None
                if not with_messages:  # its values are its outcome (a conversation is its thread, in memory)
                    values = parts.values if parts.values is not None else (await graph.aget_state(config)).values
                    output = plain(values) if isinstance(values, dict) else {"value": plain(values)}
    except TimeoutError as exc:
        raise RunFailed("run_timeout", f"The run did not finish within {timeout_s:g} s.") from exc
    except GraphRecursionError as exc:
        raise RunFailed("recursion_limit", f"The graph took more than {config['recursion_limit']} steps.") from exc
    except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as exc:
        # Raised once the OpenAI client's own retries (OPENAI_MAX_RETRIES) are spent.
        raise RunFailed(MODEL_UNAVAILABLE, f"The model endpoint failed: {type(exc).__name__}.", transient=True) from exc
    ids = {"run_id": request.run_id, "thread_id": request.thread_id, "assistant_id": request.assistant_id}
    if turn.interrupts:
        return RunResult(
            **ids,
            status="interrupted",
            interrupts=turn.interrupts,
            model=model if with_messages else None,
            usage=turn.usage(),
            knowledge_base_unavailable=turn.knowledge_base_unavailable,
            output=output,
        )
    if not with_messages:
        return RunResult(**ids, usage=turn.usage(), output=output)
    if calls := _client_calls(turn, request):  # the client runs them, then continues the thread
        last = turn.replies[-1]
        return RunResult(
            **ids,
            answer=last.text,
            tool_calls=calls,
            model=last.response_metadata.get("model_name") or model,
            usage=turn.usage(),
            knowledge_base_unavailable=turn.knowledge_base_unavailable,
        )
    if turn.answer is None:
        raise RunFailed("no_answer", "The agent stopped without an answer.")
    answer: str = turn.answer.text
    if turn.knowledge_base_unavailable and "could not consult the knowledge base" not in answer.lower():
        # The model may not say so; the client must read it anyway, in the tokens as in the answer.
        notice = ("\n\n" if answer else "") + KNOWLEDGE_BASE_NOTICE
        await emit(Token(text=notice, message_id=turn.answer.id, node="notice"))
        answer += notice
    citations = turn.citations()
    await emit(Citations(citations=citations))
    return RunResult(
        **ids,
        answer=answer,
        citations=citations,
        model=turn.answer.response_metadata.get("model_name") or model,
        usage=turn.usage(),
        knowledge_base_unavailable=turn.knowledge_base_unavailable,
    )


async def update_state(
    graph: CompiledStateGraph,
    request: RunRequested,
    *,
    redelivered: bool = False,
    max_recursion_limit: int = MAX_RECURSION_LIMIT,
) -> RunResult:
    """Apply ``request.update_state`` to the thread with the graph's reducers (``graph.aupdate_state``), as
    ``as_node`` if given, from ``checkpoint_id`` if given; the result names the new checkpoint.

    A redelivered update whose checkpoint is already the thread's latest (this run's, from a worker that
    died before acking) is not applied twice.
    """
    update = request.update_state
    assert update is not None
    config = run_config(request, max_recursion_limit=max_recursion_limit)
    ids = {"run_id": request.run_id, "thread_id": request.thread_id, "assistant_id": request.assistant_id}
    try:
        with dependency_failures():
            if redelivered:
                latest = await graph.aget_state(config)
                if (latest.metadata or {}).get("run_id") == request.run_id:
                    return RunResult(**ids, checkpoint=_checkpoint_ref(latest.config))
            if update.checkpoint_id:
                config["configurable"]["checkpoint_id"] = update.checkpoint_id
            updated = await graph.aupdate_state(config, update.values, as_node=update.as_node)
    except (InvalidUpdateError, ValueError, KeyError) as exc:
        raise RunFailed("invalid_update", f"The state update was refused: {exc}") from exc
    return RunResult(**ids, checkpoint=_checkpoint_ref(updated))


def _checkpoint_ref(config: RunnableConfig) -> dict[str, str]:
    configurable = config.get("configurable") or {}
    return {
        "thread_id": str(configurable.get("thread_id", "")),
        "checkpoint_ns": str(configurable.get("checkpoint_ns", "")),
        "checkpoint_id": str(configurable.get("checkpoint_id", "")),
    }


@contextlib.asynccontextmanager
async def _pipelined_checkpoints(graph: CompiledStateGraph, config: RunnableConfig) -> AsyncIterator[None]:
    """The run's checkpoints sent in the background as LangGraph makes them (several to a call), and
    all of them stored by the time the block ends: the run's end is published, and it is acked, after.

    With LangGraph's default ``durability="async"`` a crash loses what it lost before: a step's
    checkpoint is on its way while the next step runs. A failed write fails the run here.
    """
    saver = graph.checkpointer
    if not isinstance(saver, RemoteCheckpointSaver):
        yield
        return
    try:
        with write_behind(saver):
            yield
    except Exception:
        with contextlib.suppress(Exception):  # the run's own failure is the one to report
            await saver.aflush(config)
        raise
    await saver.aflush(config)


def _graph_input(given: str | dict[str, Any] | None, with_messages: bool) -> Any:
    """The graph's input: a question's text as a human message, JSON as it is."""
    if not isinstance(given, str):
        return given
    if not with_messages:
        raise RunFailed(
            GRAPH_TAKES_NO_MESSAGES,
            "This graph's state has no messages, so it takes no question: send its input as a JSON object.",
        )
    return {"messages": [HumanMessage(given)]}


async def _stream(
    graph: CompiledStateGraph,
    state_input: Any,
    config: RunnableConfig,
    request: RunRequested,
    modes: list[StreamMode],
    emit_state: EmitState,
) -> AsyncIterator[tuple[StreamMode, Any]]:
    """The graph's (mode, chunk) parts; with the ``events`` mode asked for, its astream_events relayed on the way.

    As LangGraph Platform does it: the events of the graph's own run that carry a stream part are
    the parts, every other event is an ``events`` part.
    """
    context: Any = _known_context(graph, request.context)  # the graph's context_schema, which its type does not say
    if not request.wants("events"):
        async for part in graph.astream(state_input, config, stream_mode=modes, context=context):
            # With several modes LangGraph yields (mode, chunk) pairs, which its stubs do not say.
            yield cast(tuple[StreamMode, Any], part)
        return
    async for event in graph.astream_events(state_input, config, version="v2", stream_mode=modes, context=context):
        if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
            yield cast(tuple[StreamMode, Any], event["data"]["chunk"])
        elif "langsmith:hidden" not in (event.get("tags") or []):
            await emit_state("events", StateChunk(plain(event)))


def _known_context(graph: CompiledStateGraph, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's context without the keys the graph's ``context_schema`` does not declare, as LangGraph Platform
    filters it: a client's (or an assistant's) extra key would otherwise fail the run when the schema is built."""
    schema = graph.get_context_jsonschema() if given else None
    declared = (schema or {}).get("properties")
    if not given or not declared:
        return given
    return {key: value for key, value in given.items() if key in declared}


class _Parts:
    """Turns the graph's stream parts into the run's events: Threadline's own and the modes the client asked for."""

    def __init__(self, request: RunRequested, turn: _Turn, emit: Emit, emit_state: EmitState, with_messages: bool):
        self.request, self.turn, self.emit, self.emit_state = request, turn, emit, emit_state
        self.with_messages = with_messages
        self.values: Any = None  # the graph's last values: a non-message graph's output
        self.relay_messages = request.wants("messages") or request.wants("messages-tuple")
        # updates for interrupts (and a conversation's bookkeeping), values for a graph's output.
        self.modes: list[StreamMode] = ["updates"]
        if not with_messages or request.wants("values"):
            self.modes.append("values")
        if with_messages or self.relay_messages:
            self.modes.append("messages")
        # A conversation's custom writes are how its graph shows its progress (the planner's plan and steps):
        # every client sees them, as LangGraph's clients see what they asked for.
        self.modes += [m for m in ("custom", "debug") if request.wants(m) or (m == "custom" and with_messages)]
        self._messages = _MessageParts(whole=request.wants("messages"))

    async def on(self, mode: StreamMode, chunk: Any) -> None:
        request = self.request
        if mode == "messages":
            message, metadata = chunk
            if self.with_messages:
                await self.turn.on_message_chunk(message, metadata, self.emit)
            if self.relay_messages:
                await self.emit_state("messages", self._messages.part(message, metadata))
        elif mode == "updates":
            await self.turn.on_update(chunk, self.emit, self.with_messages)
            if request.wants("updates"):
                await self.emit_state("updates", StateChunk(plain(chunk)))
        elif mode == "values":
            # LangGraph adds what the run waits on to its last values; the state is the rest.
            self.values = {k: v for k, v in chunk.items() if k != "__interrupt__"} if isinstance(chunk, dict) else chunk
            if request.wants("values"):
                await self.emit_state("values", StateChunk(plain(chunk)))
        elif mode == "custom":
            await self.emit_state("custom", CustomChunk(value=plain(chunk)))
        elif mode == "debug":
            await self.emit_state("debug", StateChunk(plain(chunk)))


class _MessageParts:
    """LangGraph's ``messages`` parts as events: each chunk with its metadata and, for the whole-message mode,
    the message so far (LangGraph Platform's ``messages/partial`` and ``messages/complete``)."""

    def __init__(self, whole: bool) -> None:
        self._whole = whole
        self._so_far: dict[str, BaseMessage] = {}

    def part(self, message: Any, metadata: dict[str, Any]) -> MessageChunk:
        if not isinstance(message, BaseMessage):
            return MessageChunk(chunk=plain(message), metadata=plain(metadata), first=True, complete=True)
        key = message.id or ""
        first = key not in self._so_far
        so_far = message
        if not first and isinstance(message, BaseMessageChunk):
            earlier = self._so_far[key]
            so_far = earlier + message if isinstance(earlier, BaseMessageChunk) else message
        if self._whole:
            self._so_far[key] = so_far
        elif first:
            self._so_far[key] = message  # only to know later chunks are not first
        complete = not isinstance(message, BaseMessageChunk)
        whole = plain(message_chunk_to_message(so_far)) if self._whole else None
        return MessageChunk(
            chunk=plain(message), metadata=plain(metadata), message=whole, first=first, complete=complete
        )


async def _continues(
    graph: CompiledStateGraph, request: RunRequested, config: RunnableConfig, turn: _Turn, with_messages: bool
) -> bool:
    """Whether a redelivered run goes on from the thread's last checkpoint: it does when that belongs to this run.

    What that earlier delivery already produced (tool results, maybe the answer) is taken into
    ``turn`` from the checkpoint, so the end event is complete and no step runs twice.
    """
    state = await graph.aget_state(config)
    if not (state.metadata and state.metadata.get("run_id") == request.run_id):
        return False
    if with_messages:
        messages = state.values.get("messages", [])
        since = max((n for n, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
        turn.recover(messages[since + 1 :])
    return True


async def _decision(graph: CompiledStateGraph, config: RunnableConfig, value: dict[str, Any]) -> Command:
    """The graph input that resumes the thread's interrupted run with a person's decision.

    Checked here, before the graph runs, so a thread given a malformed decision (or none to
    give) stays as it was, still waiting.
    """
    state = await graph.aget_state(config)
    if not state.interrupts:
        raise RunFailed("nothing_to_resume", "The thread has no run waiting for a decision.")
    try:
        decision = parse_decision(value)
    except ValueError as exc:
        raise RunFailed("invalid_input", str(exc)) from None
    return Command(resume=decision.model_dump(exclude_none=True))


async def _command(graph: CompiledStateGraph, config: RunnableConfig, command: dict[str, Any]) -> Command:
    """LangGraph's Command from a client's ``{"resume", "update", "goto"}``.

    A resume on a graph whose tool calls wait for approval is that decision, checked as one; a
    resume on a thread that waits for nothing ends the run ``nothing_to_resume``.
    """
    unknown = set(command) - {"resume", "update", "goto"}
    if unknown:
        raise RunFailed("invalid_input", f"A command has resume, update and goto, not {', '.join(sorted(unknown))}.")
    if "resume" in command and APPROVAL_NODE in graph.nodes and set(command) == {"resume"}:
        if isinstance(command["resume"], dict):
            return await _decision(graph, config, command["resume"])
        raise RunFailed("invalid_input", "A decision is an object with an action: approve, reject or edit.")
    if "resume" in command and not (await graph.aget_state(config)).interrupts:
        raise RunFailed("nothing_to_resume", "The thread has no run waiting for a value.")
    goto = command.get("goto") or []
    if not (isinstance(goto, str) or (isinstance(goto, list) and all(isinstance(g, str) for g in goto))):
        raise RunFailed("invalid_input", "command.goto names a node, or a list of nodes.")
    update = command.get("update")
    if update is not None and not isinstance(update, dict | list):
        raise RunFailed("invalid_input", "command.update is the state's update: an object (or a list of pairs).")
    if "resume" in command:
        return Command(resume=command["resume"], update=update, goto=goto)
    return Command(update=update, goto=goto)


async def _roll_back(graph: CompiledStateGraph, config: RunnableConfig, run_id: str) -> None:
    """Point ``config`` at the thread's last checkpoint from before ``run_id``, so this run forks from there.

    The cancelled run's checkpoints stay in the history as a branch nobody builds on; when the
    thread had nothing before that run, its checkpoints are deleted and this run starts it afresh.
    """
    async for snapshot in graph.aget_state_history(config):
        if (snapshot.metadata or {}).get("run_id") != run_id:
            config["configurable"]["checkpoint_id"] = snapshot.config["configurable"]["checkpoint_id"]
            return
    checkpointer, thread_id = graph.checkpointer, config["configurable"]["thread_id"]
    assert checkpointer is not None and not isinstance(checkpointer, bool)
    if isinstance(checkpointer, RemoteCheckpointSaver):
        # LangGraph's delete_thread names no tenant: the memory service's saver takes the run's explicitly.
        await checkpointer.adelete_thread(thread_id, tenant_id=config["configurable"]["tenant_id"])
    else:  # a saver holding one tenant's threads (InMemorySaver in tests and benchmarks)
        await checkpointer.adelete_thread(thread_id)


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data, messages as their fields (the shape LangGraph's server sends them in)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Turn:
    """What one run has produced so far."""

    def __init__(self, answer_nodes: Collection[str] = ANSWER_NODES) -> None:
        self.answer_nodes = answer_nodes
        self.answer: AIMessage | None = None
        self.replies: list[AIMessage] = []
        self.retrieved: list[Citation] = []
        self.interrupts: list[dict[str, Any]] = []
        self._searches_failed = self._searches_done = 0

    @property
    def knowledge_base_unavailable(self) -> bool:
        """Every search of this run failed: the answer was given without the knowledge base."""
        return self._searches_failed > 0 and self._searches_done == 0

    def _count_search(self, message: ToolMessage) -> None:
        if message.name == KNOWLEDGE_BASE_TOOL and not message.response_metadata.get(REJECTED):
            if message.status == "error":
                self._searches_failed += 1
            else:
                self._searches_done += 1

    async def on_message_chunk(self, message: Any, metadata: dict[str, Any], emit: Emit) -> None:
        # Only the answer's text is streamed: a message that calls tools is reported as tool_call events.
        if (
            metadata.get("langgraph_node") in self.answer_nodes
            and isinstance(message, AIMessage)
            and not message.tool_calls
            and not getattr(message, "tool_call_chunks", None)
            and message.text
        ):
            await emit(Token(text=message.text, message_id=message.id, node=metadata["langgraph_node"]))

    async def on_update(self, update: dict[str, Any], emit: Emit, with_messages: bool = True) -> None:
        for node, node_update in update.items():
            if node == "__interrupt__":
                # A graph's own interrupt value may be anything; the approval node's is a dict it is merged with.
                waiting = [
                    {"id": i.id, **i.value} if isinstance(i.value, dict) else {"id": i.id, "value": plain(i.value)}
                    for i in node_update
                ]
                self.interrupts.extend(waiting)
                await emit(Interrupted(interrupts=waiting))
                continue
            if not with_messages or not isinstance(node_update, dict):
                continue
            for message in node_update.get("messages", []):
                if isinstance(message, AIMessage) and node == APPROVAL_NODE:
                    # The model's message again, its calls as decided: what will run, not a new reply.
                    for call in message.tool_calls:
                        await emit(ToolCall(name=call["name"], args=call["args"], id=call["id"]))
                elif isinstance(message, AIMessage):
                    self.replies.append(message)
                    for call in message.tool_calls:
                        await emit(ToolCall(name=call["name"], args=call["args"], id=call["id"]))
                    if not message.tool_calls:
                        self.answer = message
                elif isinstance(message, ToolMessage):
                    self._count_search(message)
                    passages = _passages(message)
                    self.retrieved.extend(passages)
                    await emit(
                        ToolResult(
                            name=message.name,
                            tool_call_id=message.tool_call_id,
                            status=message.status,
                            citations=len(passages),
                            rejected=bool(message.response_metadata.get(REJECTED)),
                        )
                    )

    def recover(self, messages: list[Any]) -> None:
        """Take in what an earlier delivery of the run stored, without emitting it again."""
        for message in messages:
            if isinstance(message, AIMessage):
                self.replies.append(message)
                if not message.tool_calls:
                    self.answer = message
            elif isinstance(message, ToolMessage):
                self._count_search(message)
                self.retrieved.extend(_passages(message))

    def citations(self) -> list[Citation]:
        """The passages the answer cites when the model says so (the extractive answerer does), else all retrieved."""
        assert self.answer is not None
        cited = self.answer.response_metadata.get("citations")
        if isinstance(cited, list):
            return [Citation.model_validate(c) for c in cited]
        return list(self.retrieved)

    def usage(self) -> Usage:
        counted = [m.usage_metadata for m in self.replies if m.usage_metadata]
        return Usage(
            input_tokens=sum(u["input_tokens"] for u in counted),
            output_tokens=sum(u["output_tokens"] for u in counted),
            total_tokens=sum(u["total_tokens"] for u in counted),
            approximate=any(m.response_metadata.get("usage_is_approximate") for m in self.replies),
        )


def _client_calls(turn: _Turn, request: RunRequested) -> list[ToolCall]:
    """The calls of the client's tools the run ended on (its last reply, when that calls no tool of ours)."""
    names = {spec.get("function", {}).get("name") for spec in request.client_tools}
    last = turn.replies[-1] if turn.replies else None
    if last is None or last is turn.answer:
        return []
    return [ToolCall(name=c["name"], args=c["args"], id=c["id"]) for c in last.tool_calls if c["name"] in names]


def _passages(message: ToolMessage) -> list[Citation]:
    """The knowledge-base passages a tool returned as its artifact (other tools return none)."""
    return [Citation.model_validate(p) for p in message.artifact or [] if isinstance(p, dict)]
