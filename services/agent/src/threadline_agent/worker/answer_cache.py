"""The answer cache: a question asked again, in the same tenant of the same assistant, is answered from Redis.

Asked again means aimed at the same knowledge base too (the run's collection and filter,
:mod:`threadline.aim`): an answer found in one collection says nothing of another.

A question matches first by its *normalised* text (case, punctuation and spacing ignored:
one GET), then by meaning: its embedding, from the retrieval service's ``Embed`` RPC, is
compared with those of the questions cached in the same scope (tenant, assistant, aim and
embedding model), and the closest one answers if its cosine similarity reaches
AGENT_ANSWER_CACHE_SIMILARITY. The retrieval service keeps the vectors it embedded for a
moment, so a miss that goes on to search the knowledge base with the same text is not
embedded twice. A scope's vectors are one Redis hash (question digest -> float32 bytes),
read whole and scanned with numpy: cheap for the few hundred questions a scope holds
(AGENT_ANSWER_CACHE_MAX_SIMILAR; a full scope starts afresh). The threshold is high on
purpose: "Can I delete my data?" and "Can I delete your data?" embed at 0.97 with the
default model, and a wrong answer served costs more than a question answered afresh
(docs/benchmarks.md, "Answer cache").

Only a thread's first question is cached or served: a later one may lean on earlier
turns ("and why?"), so the same words need not ask the same thing. Answers expire
after AGENT_ANSWER_CACHE_TTL_S, which bounds how stale one can be after the
knowledge base changes. Redis or the retrieval service being down only turns the cache
(or its matching by meaning) off: runs go on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import grpc
import numpy as np
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
from threadline.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from threadline.run_events import Citation, Citations, RunResult, Token

from threadline_agent.graphs.memory_tools import MEMORY_TOOLS
from threadline_agent.worker.execution import run_config

if TYPE_CHECKING:  # the pipeline imports this step; its types are only annotations here
    from threadline_agent.worker.pipeline import Next, RunContext

log = structlog.get_logger("threadline.agent")
REDIS_TIMEOUT_S = 0.5  # a cache slower than this costs more than it saves
EMBED_TIMEOUT_S = 1.0  # the same for the question's embedding: past this, the question is answered afresh
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


@dataclass(frozen=True)
class Embedded:
    """A question's unit vector and the model (name and version) that made it: only such vectors compare."""

    vector: np.ndarray
    model: str


class QuestionEmbedder:
    """A question's embedding from the retrieval service (the agent runs no model of its own)."""

    def __init__(self, stub: retrieval_pb2_grpc.RetrievalServiceStub, timeout_s: float = EMBED_TIMEOUT_S) -> None:
        self._stub, self._timeout_s = stub, timeout_s

    async def __call__(self, question: str) -> Embedded | None:
        """None when the retrieval service cannot say: the cache then matches by text only."""
        try:
            reply = await self._stub.Embed(retrieval_pb2.EmbedRequest(texts=[question]), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.warning("question not embedded; the answer cache matches by text only", code=exc.code().name)
            return None
        vector = np.asarray(reply.embeddings[0].values, dtype=np.float32)
        return Embedded(vector=vector, model=f"{reply.model}@{reply.model_version}")


@dataclass(frozen=True)
class Lookup:
    """What :meth:`AnswerCache.find` found, and the question's embedding for :meth:`AnswerCache.put` to keep."""

    answer: CachedAnswer | None = None
    embedded: Embedded | None = None
    matched: Literal["text", "meaning"] | None = None
    similarity: float | None = None


class AnswerCache:
    """Cached answers by tenant, assistant, question and aim (``SearchAim.key()``, empty: unaimed).

    ``embedder`` None or ``similarity`` 0: questions match by normalised text only.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        ttl_s: float,
        embedder: QuestionEmbedder | None = None,
        similarity: float = 0.975,
        max_similar: int = 512,
    ) -> None:
        self._redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._embedder = embedder if similarity > 0 else None
        self._similarity = similarity
        self._max_similar = max_similar

    def _digest(self, question: str, aim: str) -> str:
        # NUL cannot occur in a normalised question, so no question and aim hash as another pair does;
        # an unaimed question keeps the key it had before runs could be aimed.
        asked = normalize_question(question) + (f"\0{aim}" if aim else "")
        return hashlib.sha256(asked.encode()).hexdigest()

    def _answer_key(self, tenant_id: str, assistant_id: str, digest: str) -> str:
        return f"{self._prefix}:answer:{tenant_id}:{assistant_id}:{digest}"

    def key(self, tenant_id: str, assistant_id: str, question: str, aim: str = "") -> str:
        return self._answer_key(tenant_id, assistant_id, self._digest(question, aim))

    def similar_key(self, tenant_id: str, assistant_id: str, aim: str, model: str) -> str:
        """The hash of a scope's question vectors; under the tenant's prefix, so dropping the tenant drops it."""
        scope = hashlib.sha256(f"{model}\0{aim}".encode()).hexdigest()[:32]
        return f"{self._prefix}:answer:{tenant_id}:{assistant_id}:similar:{scope}"

    async def get(self, tenant_id: str, assistant_id: str, question: str, aim: str = "") -> CachedAnswer | None:
        """The answer to this very question (normalised text), or None."""
        return await self._load(self.key(tenant_id, assistant_id, question, aim))

    async def find(self, tenant_id: str, assistant_id: str, question: str, aim: str = "") -> Lookup:
        """The answer to this question, or to the cached one closest in meaning if it is close enough."""
        exact = await self.get(tenant_id, assistant_id, question, aim)
        if exact is not None:
            return Lookup(answer=exact, matched="text", similarity=1.0)
        if self._embedder is None or not normalize_question(question):
            return Lookup()
        embedded = await self._embedder(question)
        if embedded is None:
            return Lookup()
        similar_key = self.similar_key(tenant_id, assistant_id, aim, embedded.model)
        try:
            stored = await self._redis.hgetall(similar_key)
        except RedisError as exc:
            log.warning("answer cache unavailable; answering without it (check AGENT_ANSWER_CACHE_URL)", error=str(exc))
            return Lookup(embedded=embedded)
        best = _closest(stored, embedded.vector)
        if best is None or best[1] < self._similarity:
            return Lookup(embedded=embedded, similarity=best[1] if best else None)
        digest, similarity = best
        answer = await self._load(self._answer_key(tenant_id, assistant_id, digest))
        if answer is None:  # expired (or unreadable) since: its vector goes too
            try:
                await self._redis.hdel(similar_key, digest)
            except RedisError:
                pass  # the scope's hash expires anyway
            return Lookup(embedded=embedded, similarity=similarity)
        return Lookup(answer=answer, embedded=embedded, matched="meaning", similarity=similarity)

    async def _load(self, key: str) -> CachedAnswer | None:
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

    async def put(
        self,
        tenant_id: str,
        assistant_id: str,
        question: str,
        answer: CachedAnswer,
        aim: str = "",
        embedded: Embedded | None = None,
    ) -> None:
        """Keep ``answer`` for this question, and with ``embedded`` for questions close to it in meaning."""
        if not normalize_question(question):
            return  # nothing but punctuation: every such question would share one answer
        digest = self._digest(question, aim)
        ttl = max(1, round(self._ttl_s))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._answer_key(tenant_id, assistant_id, digest), answer.model_dump_json(), ex=ttl)
                if embedded is not None and self._embedder is not None:
                    similar_key = self.similar_key(tenant_id, assistant_id, aim, embedded.model)
                    pipe.hset(similar_key, digest, embedded.vector.astype(np.float32).tobytes())
                    pipe.expire(similar_key, ttl)  # outlives every answer its vectors point to
                    pipe.hlen(similar_key)
                replies = await pipe.execute()
            if embedded is not None and self._embedder is not None and replies[-1] > self._max_similar:
                # Full: the scope starts afresh (its answers stay reachable by their text) rather than
                # every lookup reading an ever larger hash.
                await self._redis.delete(similar_key)
        except RedisError as exc:
            log.warning("answer cache unavailable; answer not kept (check AGENT_ANSWER_CACHE_URL)", error=str(exc))

    async def drop_tenant(self, tenant_id: str) -> int:
        """Forget every answer of ``tenant_id`` (its documents were deleted, or the tenant erased), and the
        vectors of its questions; returns how many keys went."""
        doomed = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:answer:{tenant_id}:*", count=1000)]
        for i in range(0, len(doomed), 500):
            await self._redis.delete(*doomed[i : i + 500])
        return len(doomed)

    async def close(self) -> None:
        await self._redis.aclose()


def _closest(stored: Mapping[bytes | str, bytes | str], vector: np.ndarray) -> tuple[str, float] | None:
    """The digest of the stored question closest to ``vector`` and its cosine similarity (unit vectors).

    A value of another length (another dimension) is skipped; the client returns bytes, never str."""
    rows = [
        (digest, value) for digest, value in stored.items() if isinstance(value, bytes) and len(value) == vector.nbytes
    ]
    if not rows:
        return None
    matrix = np.frombuffer(b"".join(value for _, value in rows), dtype=np.float32).reshape(len(rows), -1)
    scores = matrix @ vector
    best = int(np.argmax(scores))
    digest = rows[best][0]
    return digest.decode() if isinstance(digest, bytes) else digest, float(scores[best])


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
        if not eligible:
            return await next()
        found = await self._cache.find(request.tenant_id, request.assistant_id, question, aim)
        if found.answer is not None:
            return await _answer_again(run, config, found)
        result = await next()
        complete = result.status == "success" and result.answer and not result.knowledge_base_unavailable
        if complete and not await _personal(graph, config):
            answer = CachedAnswer.of(result)
            await self._cache.put(request.tenant_id, request.assistant_id, question, answer, aim, found.embedded)
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


async def _answer_again(run: RunContext, config: RunnableConfig, found: Lookup) -> RunResult:
    request, node, hit = run.request, run.assistant.final_node, found.answer
    assert hit is not None  # only a found answer is given again
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
    log.info("answered from cache", matched=found.matched, similarity=found.similarity)
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
