"""The steps every run goes through, in order: read ``agent_pipeline`` to know what happens to a run.

Each step is middleware: it gets the run and ``next``, the rest of the pipeline, and may
refuse before calling it (blocked input, an open breaker), answer without it (a cached
answer), stop it (a cancel) or change what it returns (the cost). The last step runs the graph.
A step fails a run by raising ``RunFailed``; the worker turns that into the run's error event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from threadline.events import RunRequested, Topology
from threadline.run_events import RunResult

from threadline_agent.graphs.assistants import Assistant
from threadline_agent.resilience import CircuitBreaker, CircuitOpen
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.answer_cache import AnswerCache, FromAnswerCache
from threadline_agent.worker.cancellation import UnlessCancelled
from threadline_agent.worker.execution import execute_run, update_state
from threadline_agent.worker.failures import MODEL_UNAVAILABLE, RunFailed
from threadline_agent.worker.guardrails import Guardrails, InputBlocked
from threadline_agent.worker.publisher import RunEventPublisher
from threadline_agent.worker.structured import StructuredOutput

log = structlog.get_logger("threadline.agent")


@dataclass(frozen=True)
class RunContext:
    """One delivery of a run, as every step sees it."""

    request: RunRequested
    assistant: Assistant
    graph: CompiledStateGraph
    events: RunEventPublisher
    attempt: int  # 1 on the first delivery; later ones resume from the thread's checkpoint

    @property
    def redelivered(self) -> bool:
        return self.attempt > 1


Next = Callable[[], Awaitable[RunResult]]
Step = Callable[[RunContext, Next], Awaitable[RunResult]]


def agent_pipeline(
    settings: AgentSettings,
    *,
    guardrails: Guardrails,
    nc: NatsClient,
    topology: Topology,
    cancelled: KeyValue,
    cache: AnswerCache | None,
    model_breaker: CircuitBreaker,
    model: str,
    chat_model: BaseChatModel,
) -> Pipeline:
    """Every run's steps, outermost first, each placed where it is for the reason beside it."""
    return Pipeline(
        [
            # Outermost, so that every result is priced: cached and interrupted ones too.
            Priced(settings),
            # Before any work: a refused question costs no model call and no cancel subscription.
            CheckedInput(guardrails),
            # A cancel stops whatever runs inside it, the cache's lookup and write included.
            UnlessCancelled(nc, topology, cancelled),
            # Around the cache: a cached answer is structured like a fresh one, and the cache keeps answers only.
            # A refused schema (the offline answerer's) is refused before any work.
            StructuredOutput(chat_model),
            # A hit answers without the model, so cached answers are served even while the breaker below is open.
            *([FromAnswerCache(cache)] if cache is not None else []),
            ThroughModelBreaker(model_breaker),
        ],
        ExecuteGraph(model, settings.run_timeout_s, settings.max_recursion_limit),
    )


class Pipeline:
    """``steps`` around ``last``: the first step is the outermost, and ``last`` runs only if every step calls next."""

    def __init__(self, steps: Sequence[Step], last: Callable[[RunContext], Awaitable[RunResult]]) -> None:
        self.steps = list(steps)
        self._last = last

    async def __call__(self, run: RunContext) -> RunResult:
        async def from_step(n: int) -> RunResult:
            if n == len(self.steps):
                return await self._last(run)
            return await self.steps[n](run, lambda: from_step(n + 1))

        return await from_step(0)


class Priced:
    """The run's cost, from the configured per-model prices, on its usage."""

    def __init__(self, settings: AgentSettings) -> None:
        self._settings = settings

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        result = await next()
        cost = self._settings.cost_usd(result.model, result.usage)
        return result.model_copy(update={"usage": result.usage.model_copy(update={"cost_usd": cost})})


class CheckedInput:
    """Refuses an empty question, and one the deployment's guardrails block (``input_blocked``).

    A graph's input given as JSON is the graph's to judge; the text of any human (or system) messages in it
    is checked.
    """

    def __init__(self, guardrails: Guardrails) -> None:
        self._guardrails = guardrails

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        request = run.request
        try:
            if isinstance(request.input, str):
                if request.input.strip():
                    self._guardrails.check_input(request.input, request.tenant_id)
                elif request.resume is None and request.command is None:  # a decision or a command asks no question
                    raise RunFailed("invalid_input", "The input is empty.")
            elif request.input is not None:
                for text in human_texts(request.input, system=True):
                    self._guardrails.check_input(text, request.tenant_id)
        except InputBlocked as blocked:
            # The line an administrator reviews an appeal by: never the question itself, which may hold PII.
            log.warning("input blocked", run_id=request.run_id, tenant=request.tenant_id, rule=blocked.rule)
            raise
        return await next()


def human_texts(given: dict[str, Any], *, system: bool = False) -> list[str]:
    """The texts of the human messages in a graph's JSON input (LangGraph's message dicts, or plain strings);
    with ``system``, of the client's system messages too (an OpenAI client's reach the model as such)."""
    roles = ("user", "human", "system", "developer") if system else ("user", "human")
    kinds = ("human", "system") if system else ("human",)
    messages = given.get("messages")
    if isinstance(messages, str | dict):
        messages = [messages]
    texts = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, str):
            texts.append(message)
        elif isinstance(message, dict) and (message.get("role") in roles or message.get("type") in kinds):
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
            if isinstance(content, str):
                texts.append(content)
    return texts


class ThroughModelBreaker:
    """Hands a run back at once while the model has failed too many runs in a row lately.

    Runs, not requests: the OpenAI client retries a request itself, and a dead endpoint
    otherwise costs every run those retries and timeouts before it fails.
    """

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        try:
            self._breaker.before_call()
        except CircuitOpen as exc:
            raise RunFailed(
                MODEL_UNAVAILABLE,
                f"The model endpoint is failing; runs wait {exc.retry_in_s:.0f} s.",
                transient=True,
                retry_in_s=exc.retry_in_s,
            ) from None
        try:
            result = await next()
        except RunFailed as failure:
            if failure.code == MODEL_UNAVAILABLE:
                self._breaker.record_failure()
            else:
                self._breaker.abandon()
            raise
        except BaseException:
            self._breaker.abandon()
            raise
        self._breaker.record_success()
        return result


class ExecuteGraph:
    """The last step: the assistant's graph, streamed into the run's events."""

    def __init__(self, model: str, timeout_s: float, max_recursion_limit: int) -> None:
        self._model, self._timeout_s, self._max_recursion_limit = model, timeout_s, max_recursion_limit

    async def __call__(self, run: RunContext) -> RunResult:
        if run.request.update_state is not None:  # not a run of the graph: an update of the thread's state
            return await update_state(
                run.graph, run.request, redelivered=run.redelivered, max_recursion_limit=self._max_recursion_limit
            )
        return await execute_run(
            run.graph,
            run.request,
            run.events.emit,
            run.events.emit_state,
            model=self._model,
            timeout_s=self._timeout_s,
            resume=run.redelivered,
            max_recursion_limit=self._max_recursion_limit,
            answer_nodes=run.assistant.answer_nodes,
        )
