"""The answer cache: a question asked again, in the same tenant of the same assistant, is answered from Redis.

Asked again means aimed at the same knowledge base too (the run's collection and filter,
:mod:`threadline.aim`): an answer found in one collection says nothing of another.

Matching is exact on the *normalised* question (case, punctuation and spacing ignored),
not by embedding similarity: the agent has no embedding model, and the retrieval
service exposes none over its API, so a cosine match would need a new retrieval RPC
(and a round trip on every question, hit or miss) or a vector index in Redis of the
agent's own. Normalised exact match catches the common case (the same FAQ asked
again, by many users) with one GET and no false hits, which a similarity threshold
cannot promise: "Can I delete my data?" and "Can I delete your data?" embed close.

Only a thread's first question is cached or served: a later one may lean on earlier
turns ("and why?"), so the same words need not ask the same thing. Answers expire
after AGENT_ANSWER_CACHE_TTL_S, which bounds how stale one can be after the
knowledge base changes. Redis being down only turns the cache off: runs go on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from typing import TYPE_CHECKING

import structlog
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from threadline.aim import SearchAim
from threadline.events import RunRequested
from threadline.mcp_servers import MCP_SERVERS_KEY
from threadline.run_events import Citation, Citations, RunResult, Token

from threadline_agent.graphs.memory_tools import MEMORY_TOOLS
from threadline_agent.worker.execution import run_config

if TYPE_CHECKING:  # the pipeline imports this step; its types are only annotations here
    from threadline_agent.worker.pipeline import Next, RunContext

log = structlog.get_logger("threadline.agent")
REDIS_TIMEOUT_S = 0.5  # a cache slower than this costs more than it saves
_NOT_WORD = re.compile(r"[^\w]+")


def normalize_question(question: str) -> str:
    """The question as the cache compares it: case-folded, accents kept, punctuation and spacing dropped."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


class CachedAnswer(BaseModel):
    """What is kept of an answer: enough to give it again (the ids, usage and cost are the new run's)."""

    answer: str
    citations: list[Citation]
    model: str | None

    @classmethod
    def of(cls, result: RunResult) -> CachedAnswer:
        return cls(answer=result.answer, citations=result.citations, model=result.model)


class AnswerCache:
    """Cached answers by tenant, assistant, normalised question and aim (``SearchAim.key()``, empty: unaimed)."""

    def __init__(self, url: str, prefix: str, ttl_s: float) -> None:
        self._redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self._prefix = prefix
        self._ttl_s = ttl_s

    def key(self, tenant_id: str, assistant_id: str, question: str, aim: str = "") -> str:
        # NUL cannot occur in a normalised question, so no question and aim hash as another pair does;
        # an unaimed question keeps the key it had before runs could be aimed.
        asked = normalize_question(question) + (f"\0{aim}" if aim else "")
        digest = hashlib.sha256(asked.encode()).hexdigest()
        return f"{self._prefix}:answer:{tenant_id}:{assistant_id}:{digest}"

    async def get(self, tenant_id: str, assistant_id: str, question: str, aim: str = "") -> CachedAnswer | None:
        key = self.key(tenant_id, assistant_id, question, aim)
        try:
            cached = await self._redis.get(key)
        except RedisError as exc:
            log.warning("answer cache unavailable; answering without it (check AGENT_ANSWER_CACHE_URL)", error=str(exc))
            return None
        if not cached:
            return None
        try:
            return CachedAnswer.model_validate_json(cached)
        except ValidationError as exc:
            # Not ours to repair: the question is answered afresh, and its answer written over this one.
            log.warning("unreadable cached answer ignored; answering afresh", key=key, error=str(exc))
            return None

    async def put(self, tenant_id: str, assistant_id: str, question: str, answer: CachedAnswer, aim: str = "") -> None:
        if not normalize_question(question):
            return  # nothing but punctuation: every such question would share one answer
        key = self.key(tenant_id, assistant_id, question, aim)
        try:
            await self._redis.set(key, answer.model_dump_json(), ex=max(1, round(self._ttl_s)))
        except RedisError as exc:
            log.warning("answer cache unavailable; answer not kept (check AGENT_ANSWER_CACHE_URL)", error=str(exc))

    async def drop_tenant(self, tenant_id: str) -> int:
        """Forget every answer of ``tenant_id`` (its documents were deleted, or the tenant erased)."""
        doomed = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:answer:{tenant_id}:*", count=1000)]
        for i in range(0, len(doomed), 500):
            await self._redis.delete(*doomed[i : i + 500])
        return len(doomed)

    async def close(self) -> None:
        await self._redis.aclose()


class FromAnswerCache:
    """A pipeline step: a thread's first question answered before comes from the cache; a fresh answer goes into it.

    A hit still records the turn on the thread (as written by the assistant's final node), so
    the conversation goes on from it as from any answer; the rest of the pipeline is then never
    called. A fresh answer is cached when it is complete: with the knowledge base consulted, no
    approval pending, and no user's long-term memory read or written.
    """

    def __init__(self, cache: AnswerCache) -> None:
        self._cache = cache

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        if run.assistant.final_node is None:  # a graph without messages to record a cached turn in
            return await next()
        if run.request.client_tools or run.request.config.configurable.get(MCP_SERVERS_KEY):
            # The client's tools or an MCP server's answer differently each time: nothing to serve again.
            return await next()
        question = run.request.input
        if not isinstance(question, str):  # a graph's input as JSON: not a question to match, nothing cached
            return await next()
        request, graph = run.request, run.graph
        config = run_config(request)
        aim = _aim(config)
        if aim is None:  # a run aimed wrongly fails in its tool; nothing to serve it or keep of it
            return await next()
        eligible = await _first_question(graph, request, config)
        hit = await self._cache.get(request.tenant_id, request.assistant_id, question, aim) if eligible else None
        if hit is not None:
            return await _answer_again(run, config, hit)
        result = await next()
        complete = result.status == "success" and result.answer and not result.knowledge_base_unavailable
        if eligible and complete and not await _personal(graph, config):
            await self._cache.put(request.tenant_id, request.assistant_id, question, CachedAnswer.of(result), aim)
        return result


def _aim(config: RunnableConfig) -> str | None:
    """The run's aim as the cache keys on it; None when it is malformed."""
    try:
        return SearchAim.of(config.get("configurable", {})).key()
    except ValidationError:
        return None


async def _first_question(graph: CompiledStateGraph, request: RunRequested, config: RunnableConfig) -> bool:
    """Whether ``request`` asks the thread's first question: a later one may lean on earlier turns."""
    if request.resume is not None or request.rollback_run_id:
        return False
    state = await graph.aget_state(config)
    return not state.values.get("messages")


async def _answer_again(run: RunContext, config: RunnableConfig, hit: CachedAnswer) -> RunResult:
    request, node = run.request, run.assistant.final_node
    assert node is not None  # only graphs with a final node are cached
    assert isinstance(request.input, str)  # only questions are
    answer = AIMessage(
        hit.answer,
        id=f"cached-{uuid.uuid4().hex}",
        response_metadata={
            "model_name": hit.model,
            "citations": [c.model_dump() for c in hit.citations],
            "cached": True,
        },
    )
    await run.graph.aupdate_state(config, {"messages": [HumanMessage(request.input), answer]}, as_node=node)
    await run.events.emit(Token(text=hit.answer, message_id=answer.id, node=node))
    await run.events.emit(Citations(citations=hit.citations))
    log.info("answered from cache")
    return RunResult(
        run_id=request.run_id,
        thread_id=request.thread_id,
        assistant_id=request.assistant_id,
        answer=hit.answer,
        citations=hit.citations,
        model=hit.model,
        cached=True,
    )


async def _personal(graph: CompiledStateGraph, config: RunnableConfig) -> bool:
    """Whether the run read or wrote the user's long-term memory: such an answer is that user's alone
    (and a "remember" served from the cache would remember nothing), so it is never cached."""
    state = await graph.aget_state(config)
    return any(
        call["name"] in MEMORY_TOOLS
        for message in state.values.get("messages", [])
        for call in getattr(message, "tool_calls", None) or []
    )
