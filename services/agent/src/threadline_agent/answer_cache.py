"""The answer cache: a question asked again, in the same tenant of the same assistant, is answered from Redis.

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
import json
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph
from redis.asyncio import Redis
from redis.exceptions import RedisError
from threadline.events import RunRequested

from threadline_agent.memory_tools import MEMORY_TOOLS
from threadline_agent.runs import Emit, run_config

log = structlog.get_logger("threadline.agent")
REDIS_TIMEOUT_S = 0.5  # a cache slower than this costs more than it saves
_NOT_WORD = re.compile(r"[^\w]+")


def normalize_question(question: str) -> str:
    """The question as the cache compares it: case-folded, accents kept, punctuation and spacing dropped."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


class AnswerCache:
    """Cached end-of-run data (answer, citations, model) by tenant, assistant and normalised question."""

    def __init__(self, url: str, prefix: str, ttl_s: float) -> None:
        self._redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self._prefix = prefix
        self._ttl_s = ttl_s

    def key(self, tenant_id: str, assistant_id: str, question: str) -> str:
        digest = hashlib.sha256(normalize_question(question).encode()).hexdigest()
        return f"{self._prefix}:answer:{tenant_id}:{assistant_id}:{digest}"

    async def get(self, tenant_id: str, assistant_id: str, question: str) -> dict[str, Any] | None:
        try:
            cached = await self._redis.get(self.key(tenant_id, assistant_id, question))
        except RedisError as exc:
            log.warning("answer cache unavailable", error=str(exc))
            return None
        return json.loads(cached) if cached else None

    async def put(self, tenant_id: str, assistant_id: str, question: str, data: dict[str, Any]) -> None:
        if not normalize_question(question):
            return  # nothing but punctuation: every such question would share one answer
        value = json.dumps({k: data[k] for k in ("answer", "citations", "model")})
        try:
            await self._redis.set(self.key(tenant_id, assistant_id, question), value, ex=max(1, round(self._ttl_s)))
        except RedisError as exc:
            log.warning("answer cache unavailable", error=str(exc))

    async def drop_tenant(self, tenant_id: str) -> int:
        """Forget every answer of ``tenant_id`` (its documents were deleted, or the tenant erased)."""
        doomed = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:answer:{tenant_id}:*", count=1000)]
        for i in range(0, len(doomed), 500):
            await self._redis.delete(*doomed[i : i + 500])
        return len(doomed)

    async def close(self) -> None:
        await self._redis.aclose()


async def _personal(graph: CompiledStateGraph, config: dict[str, Any]) -> bool:
    """Whether the run read or wrote the user's long-term memory: such an answer is that user's alone
    (and a "remember" served from the cache would remember nothing), so it is never cached."""
    state = await graph.aget_state(config)
    return any(
        call["name"] in MEMORY_TOOLS
        for message in state.values.get("messages", [])
        for call in getattr(message, "tool_calls", None) or []
    )


async def answer_with_cache(
    cache: AnswerCache,
    graph: CompiledStateGraph,
    request: RunRequested,
    emit: Emit,
    run: Callable[[], Awaitable[dict[str, Any]]],
    *,
    final_node: str,
) -> dict[str, Any]:
    """The end event's data from the cache when the thread's first question was answered before, else ``run``'s.

    A hit still records the turn on the thread (as written by ``final_node``, the graph's
    last), so the conversation goes on from it as from any answer; ``run`` is then never
    called. A fresh answer is cached when it is complete: with the knowledge base consulted,
    no approval pending, and no user's long-term memory read or written.
    """
    config = run_config(request)
    eligible = request.resume is None and not request.rollback_run_id
    if eligible:
        state = await graph.aget_state(config)
        eligible = not state.values.get("messages")
    hit = await cache.get(request.tenant_id, request.assistant_id, request.input) if eligible else None
    if hit is None:
        data = await run()
        complete = data["status"] == "success" and data["answer"] and not data["knowledge_base_unavailable"]
        if eligible and complete and not await _personal(graph, config):
            await cache.put(request.tenant_id, request.assistant_id, request.input, data)
        return data
    answer = AIMessage(
        hit["answer"],
        id=f"cached-{uuid.uuid4().hex}",
        response_metadata={"model_name": hit["model"], "citations": hit["citations"], "cached": True},
    )
    await graph.aupdate_state(config, {"messages": [HumanMessage(request.input), answer]}, as_node=final_node)
    await emit("token", {"text": hit["answer"], "message_id": answer.id, "node": final_node})
    await emit("citations", {"citations": hit["citations"]})
    log.info("answered from cache")
    return {
        "run_id": request.run_id,
        "thread_id": request.thread_id,
        "assistant_id": request.assistant_id,
        "status": "success",
        "answer": hit["answer"],
        "citations": hit["citations"],
        "model": hit["model"],
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "approximate": False},
        "knowledge_base_unavailable": False,
        "cached": True,
    }
