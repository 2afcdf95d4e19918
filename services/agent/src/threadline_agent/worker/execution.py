"""One run of a graph, translated into the events a client sees (tokens, tool calls, citations) and its result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from typing import Any, cast

import grpc
import openai
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamMode
from pydantic import BaseModel
from threadline.events import RunRequested, StateEventKind
from threadline.run_events import (
    Citation,
    Citations,
    Interrupted,
    RunResult,
    StateChunk,
    Token,
    ToolCall,
    ToolResult,
    Usage,
)

from threadline_agent.graphs.approval import APPROVAL_NODE, REJECTED, parse_decision
from threadline_agent.graphs.assistants import ANSWER_NODES
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.resilience import TRANSIENT_CODES, CircuitOpen
from threadline_agent.worker.failures import MODEL_UNAVAILABLE, RunFailed
from threadline_agent.worker.tracing import SpanCallbacks

RECURSION_LIMIT = 12
# Said in every answer given without the knowledge base, whatever the model wrote.
KNOWLEDGE_BASE_NOTICE = "Note: I could not consult the knowledge base for this answer, so it may be incomplete."

# What a run reports while it works; its result (or failure) is the caller's to publish.
Progress = Token | ToolCall | ToolResult | Citations | Interrupted
Emit = Callable[[Progress], Awaitable[None]]
# The graph's own stream modes, for runs that ask for them (RunRequested.state_events).
EmitState = Callable[[StateEventKind, StateChunk], Awaitable[None]]


def run_config(request: RunRequested) -> RunnableConfig:
    """Thread and tenant select the checkpoints (and the tenant's knowledge base); run_id labels them."""
    return RunnableConfig(
        configurable={"thread_id": request.thread_id, "tenant_id": request.tenant_id},
        metadata={"run_id": request.run_id, "assistant_id": request.assistant_id, **_user(request)},
        recursion_limit=RECURSION_LIMIT,
    )


def _user(request: RunRequested) -> dict[str, str]:
    """The client's user_id label: whose long-term memories the run reads and writes (graphs/memory_tools.py)
    and, carried into the checkpoints' metadata, whose threads an erasure of that user deletes."""
    user = request.metadata.get("user_id")
    return {"user_id": user} if isinstance(user, str) and user else {}


async def execute_run(
    graph: CompiledStateGraph,
    request: RunRequested,
    emit: Emit,
    emit_state: EmitState,
    *,
    model: str,
    timeout_s: float,
    resume: bool = False,
) -> RunResult:
    """Stream the graph, emitting token, tool_call, tool_result and citations events; return the run's result.

    Returns only once the graph has finished, that is after its last checkpoint is stored.
    With ``resume`` (a redelivered run), a thread whose last checkpoint belongs to this run and
    has steps left continues from there instead of taking the question again. A request that
    carries a decision (``request.resume``) continues the thread's interrupted run with it. A run
    that stops for approval returns ``status`` "interrupted" and what it waits on, not an answer.
    """
    turn = _Turn()
    try:
        async with asyncio.timeout(timeout_s):
            config = run_config(request)
            config["callbacks"] = [SpanCallbacks()]
            state_input: Any
            if resume and await _continues(graph, request, config, turn):
                state_input = None
            elif request.resume is not None:
                state_input = await _decision(graph, config, request.resume)
            else:
                state_input = {"messages": [HumanMessage(request.input)]}
                if request.rollback_run_id:
                    await _roll_back(graph, config, request.rollback_run_id)
            modes: list[StreamMode] = ["messages", "updates"]
            if "values" in request.state_events:
                modes.append("values")
            async for part in graph.astream(state_input, config, stream_mode=modes):
                # With several modes LangGraph yields (mode, chunk) pairs, which its stubs do not say.
                mode, chunk = cast(tuple[StreamMode, Any], part)
                if mode == "messages":
                    message, metadata = chunk
                    await turn.on_message_chunk(message, metadata, emit)
                elif mode == "updates":
                    await turn.on_update(chunk, emit)
                    if "updates" in request.state_events:
                        await emit_state("updates", StateChunk(plain(chunk)))
                else:
                    await emit_state("values", StateChunk(plain(chunk)))
    except TimeoutError as exc:
        raise RunFailed("run_timeout", f"The run did not finish within {timeout_s:g} s.") from exc
    except GraphRecursionError as exc:
        raise RunFailed("recursion_limit", f"The agent took more than {RECURSION_LIMIT} steps.") from exc
    except grpc.aio.AioRpcError as exc:
        raise RunFailed(
            "dependency_unavailable",
            f"A service the agent depends on failed: {exc.code().name} {exc.details() or ''}".strip(),
            transient=exc.code() in TRANSIENT_CODES,
        ) from exc
    except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as exc:
        # Raised once the OpenAI client's own retries (OPENAI_MAX_RETRIES) are spent.
        raise RunFailed(MODEL_UNAVAILABLE, f"The model endpoint failed: {type(exc).__name__}.", transient=True) from exc
    except CircuitOpen as exc:
        raise RunFailed(
            "dependency_unavailable", f"A service the agent depends on is failing: {exc}", transient=True
        ) from exc
    if turn.interrupts:
        return RunResult(
            run_id=request.run_id,
            thread_id=request.thread_id,
            assistant_id=request.assistant_id,
            status="interrupted",
            interrupts=turn.interrupts,
            model=model,
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
        run_id=request.run_id,
        thread_id=request.thread_id,
        assistant_id=request.assistant_id,
        answer=answer,
        citations=citations,
        model=turn.answer.response_metadata.get("model_name") or model,
        usage=turn.usage(),
        knowledge_base_unavailable=turn.knowledge_base_unavailable,
    )


async def _continues(graph: CompiledStateGraph, request: RunRequested, config: RunnableConfig, turn: _Turn) -> bool:
    """Whether a redelivered run goes on from the thread's last checkpoint: it does when that belongs to this run.

    What that earlier delivery already produced (tool results, maybe the answer) is taken into
    ``turn`` from the checkpoint, so the end event is complete and no step runs twice.
    """
    state = await graph.aget_state(config)
    if not (state.metadata and state.metadata.get("run_id") == request.run_id):
        return False
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

    def __init__(self) -> None:
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
            metadata.get("langgraph_node") in ANSWER_NODES
            and isinstance(message, AIMessage)
            and not message.tool_calls
            and not getattr(message, "tool_call_chunks", None)
            and message.text
        ):
            await emit(Token(text=message.text, message_id=message.id, node=metadata["langgraph_node"]))

    async def on_update(self, update: dict[str, Any], emit: Emit) -> None:
        for node, node_update in update.items():
            if node == "__interrupt__":
                waiting = [{"id": i.id, **i.value} for i in node_update if isinstance(i.value, dict)]
                self.interrupts.extend(waiting)
                await emit(Interrupted(interrupts=waiting))
                continue
            if not isinstance(node_update, dict):
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


def _passages(message: ToolMessage) -> list[Citation]:
    """The knowledge-base passages a tool returned as its artifact (other tools return none)."""
    return [Citation.model_validate(p) for p in message.artifact or [] if isinstance(p, dict)]
