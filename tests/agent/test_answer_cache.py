"""The answer cache over the machine's real Redis, with a real retrieval service behind the worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from threadline.events import DataErased, IngestCompleted, RunRequested
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.worker.agent_worker import AgentWorker
from threadline_agent.worker.answer_cache import AnswerCache, CachedAnswer, QuestionEmbedder, normalize_question
from threadline_retrieval.server import serve as serve_retrieval
from threadline_retrieval.settings import RetrievalSettings

from tests.agent.conftest import running_worker
from tests.agent.test_worker import run_and_collect
from tests.conftest import REDIS_URL, free_port

QUESTION = "Where is a run request stored?"
PARAPHRASE = "Where are run requests stored?"  # 0.965 from QUESTION with the default model
CLOSE_BUT_DIFFERENT = "Where is a run result stored?"  # 0.78: another question


@asynccontextmanager
async def embedding_retrieval(tmp_path: Path) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    """A real retrieval service (the default ONNX model) and a stub of it."""
    port = free_port()
    settings = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    async with serve_retrieval(settings), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def ask(nc: NatsClient, worker: AgentWorker, text: str, thread: str = "", tenant: str = "acme") -> list[RunEvent]:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id=thread or uuid.uuid4().hex, tenant_id=tenant, input=text)
    return [event for event, _ in await run_and_collect(nc, worker.topology, run)]


@pytest.fixture
async def redis_keys(nats_namespace: str) -> AsyncIterator[str]:
    """The key prefix the worker's cache uses; its keys are deleted afterwards."""
    prefix = f"{nats_namespace}:agent"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def test_questions_match_whatever_their_case_punctuation_and_spacing() -> None:
    assert normalize_question("  Where is a run   request STORED?? ") == normalize_question(QUESTION)
    assert normalize_question("Where is a run stored?") != normalize_question(QUESTION)
    assert normalize_question("?!") == ""


async def test_a_first_question_asked_again_is_answered_from_the_cache(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, redis_keys: str
) -> None:
    port = free_port()
    settings = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    async with (
        running_worker(
            nats_namespace,
            nc,
            tmp_path,
            ExtractiveAnswerer(),
            RETRIEVAL_TARGET=f"127.0.0.1:{port}",
            AGENT_ANSWER_CACHE_URL=REDIS_URL,
            AGENT_ANSWER_CACHE_SIMILARITY="0.95",
            AGENT_RETRY_ATTEMPTS=1,
        ) as worker,
    ):
        async with serve_retrieval(settings), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            doc = pb.Document(id="durability.md", text="Every run request is stored in a JetStream work queue.")
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(
                pb.IngestRequest(tenant_id="acme", documents=[doc])
            )
            first = await ask(nc, worker, QUESTION)
            assert first[-1].data["cached"] is False
            assert "tool_call" in [e.kind for e in first]

            # Retrieval stays up, but the second asking never reaches it: no tool call, the stored answer.
            thread = uuid.uuid4().hex
            again = await ask(nc, worker, "where is a run request STORED", thread)
            other_tenant = await ask(nc, worker, QUESTION, tenant="globex")
            # The same question in other words is answered from the cache too; another question is not.
            paraphrased = await ask(nc, worker, PARAPHRASE)
            different = await ask(nc, worker, CLOSE_BUT_DIFFERENT)

        end, cached = first[-1].data, again[-1].data
        assert [e.kind for e in again] == ["metadata", "token", "citations", "end"]
        assert cached["cached"] is True and cached["status"] == "success"
        assert (cached["answer"], cached["citations"], cached["model"]) == (
            end["answer"],
            end["citations"],
            end["model"],
        )
        assert [c["document_id"] for c in cached["citations"]] == ["durability.md"]
        assert again[1].data["text"] == cached["answer"]
        # Another tenant's question is its own, even in the same words.
        assert other_tenant[-1].data["cached"] is False
        assert [e.kind for e in paraphrased] == ["metadata", "token", "citations", "end"]
        assert paraphrased[-1].data["cached"] is True and paraphrased[-1].data["answer"] == end["answer"]
        assert different[-1].data["cached"] is False and "tool_call" in [e.kind for e in different]

        # The cached turn is on the thread: a follow-up builds on it (and, leaning on it, is not a cache hit).
        state = await worker.graphs["agent"].aget_state({"configurable": {"thread_id": thread, "tenant_id": "acme"}})
        assert [m.type for m in state.values["messages"]] == ["human", "ai"]
        follow_up = await ask(nc, worker, QUESTION, thread)
        assert follow_up[-1].data["cached"] is False

        # Retrieval is down now: the answer that says so is not cached, so the next asking tries again.
        for _ in range(2):
            down = await ask(nc, worker, "What is a work queue?")
            assert (down[-1].data["knowledge_base_unavailable"], down[-1].data["cached"]) == (True, False)


async def test_redis_down_only_turns_the_cache_off() -> None:
    cache = AnswerCache(f"redis://127.0.0.1:{free_port()}/0", "t", 60)
    data = CachedAnswer(answer="a", citations=[], model="m")
    await cache.put("acme", "agent", QUESTION, data)
    assert await cache.get("acme", "agent", QUESTION) is None
    await cache.close()


async def test_answers_cached_before_the_payloads_were_typed_still_load(redis_keys: str) -> None:
    cache = AnswerCache(REDIS_URL, redis_keys, 60)
    passage = {"document_id": "d", "chunk_id": "d#0", "text": "t", "score": 0.5, "metadata": {}}
    stored = json.dumps({"answer": "a", "citations": [passage], "model": "m"})  # as written before
    redis = Redis.from_url(REDIS_URL)
    await redis.set(cache.key("acme", "agent", QUESTION), stored)
    await redis.set(cache.key("acme", "agent", "unreadable?"), '{"answer": 1}')
    await redis.aclose()
    hit = await cache.get("acme", "agent", QUESTION)
    assert hit is not None and (hit.answer, hit.citations[0].document_id, hit.model) == ("a", "d", "m")
    assert await cache.get("acme", "agent", "unreadable?") is None  # answered afresh, not a crash
    await cache.close()


async def test_a_tenants_answers_can_be_dropped(redis_keys: str) -> None:
    cache = AnswerCache(REDIS_URL, redis_keys, 60)
    data = CachedAnswer(answer="a", citations=[], model="m")
    await cache.put("acme", "agent", QUESTION, data)
    await cache.put("globex", "agent", QUESTION, data)
    assert await cache.drop_tenant("acme") == 1
    assert await cache.get("acme", "agent", QUESTION) is None
    assert await cache.get("globex", "agent", QUESTION) == data
    await cache.close()


async def until_gone(cache: AnswerCache, tenant: str) -> None:
    """Wait (a bounded number of polls) for the worker to act on an event it receives in the background."""
    for _ in range(200):
        if await cache.get(tenant, "agent", QUESTION) is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the cached answer of {tenant} was never dropped")


async def test_erasing_a_tenant_or_ingesting_into_it_drops_its_answers(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, redis_keys: str
) -> None:
    data = CachedAnswer(answer="a", citations=[], model="m")
    cache = AnswerCache(REDIS_URL, redis_keys, 60)
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), AGENT_ANSWER_CACHE_URL=REDIS_URL
    ) as worker:
        topology, js = worker.topology, nc.jetstream()
        for tenant in ("acme", "globex", "initech"):
            await cache.put(tenant, "agent", QUESTION, data)
        # One user's erasure leaves the tenant's answers; the whole tenant's erasure, handled after it, drops them.
        await js.publish(
            topology.erasure, DataErased(tenant_id="globex", user_id="u1", threads=1, store_items=0).to_bytes()
        )
        await js.publish(topology.erasure, DataErased(tenant_id="acme", threads=3, store_items=2).to_bytes())
        await until_gone(cache, "acme")
        assert await cache.get("globex", "agent", QUESTION) == data

        # An ingest that ends in the tenant retires its answers; another tenant's stay.
        completed = IngestCompleted(ingest_id="i1", tenant_id="globex", collection="", documents=[])
        await nc.publish(topology.ingest_events("i1"), completed.to_bytes())
        await until_gone(cache, "globex")
        assert await cache.get("initech", "agent", QUESTION) == data
    await js.delete_stream(topology.erasure_stream)
    await cache.close()


async def test_questions_match_by_meaning_within_their_scope_only(tmp_path: Path, redis_keys: str) -> None:
    data = CachedAnswer(answer="In a JetStream work queue.", citations=[], model="m")
    async with embedding_retrieval(tmp_path) as stub:
        cache = AnswerCache(REDIS_URL, redis_keys, 60, QuestionEmbedder(stub), similarity=0.95)
        miss = await cache.find("acme", "agent", QUESTION, "kb")
        assert miss.answer is None and miss.embedded is not None
        await cache.put("acme", "agent", QUESTION, data, "kb", miss.embedded)

        hit = await cache.find("acme", "agent", PARAPHRASE, "kb")
        assert (hit.answer, hit.matched) == (data, "meaning")
        assert hit.similarity is not None and 0.95 <= hit.similarity < 1
        assert (await cache.find("acme", "agent", "where is a run request STORED", "kb")).matched == "text"
        assert (await cache.find("acme", "agent", CLOSE_BUT_DIFFERENT, "kb")).answer is None
        # Another tenant, assistant or knowledge base (collection and filter) has answers of its own.
        assert (await cache.find("globex", "agent", PARAPHRASE, "kb")).answer is None
        assert (await cache.find("acme", "research", PARAPHRASE, "kb")).answer is None
        assert (await cache.find("acme", "agent", PARAPHRASE, "other-kb")).answer is None
        assert (await cache.find("acme", "agent", PARAPHRASE, "")).answer is None

        # A stricter threshold refuses the paraphrase; 0 turns matching by meaning off (and embeds nothing).
        strict = AnswerCache(REDIS_URL, redis_keys, 60, QuestionEmbedder(stub), similarity=0.99)
        assert (await strict.find("acme", "agent", PARAPHRASE, "kb")).answer is None
        text_only = AnswerCache(REDIS_URL, redis_keys, 60, QuestionEmbedder(stub), similarity=0)
        assert await text_only.find("acme", "agent", PARAPHRASE, "kb") == (await text_only.find("x", "y", "z"))
        await strict.close()
        await text_only.close()

        # Dropping the tenant (an ingest, a delete, an erasure) drops its vectors with its answers.
        assert await cache.drop_tenant("acme") == 2
        assert (await cache.find("acme", "agent", PARAPHRASE, "kb")).answer is None
        await cache.close()


async def test_an_expired_answer_takes_its_vector_with_it(tmp_path: Path, redis_keys: str) -> None:
    data = CachedAnswer(answer="a", citations=[], model="m")
    async with embedding_retrieval(tmp_path) as stub:
        cache = AnswerCache(REDIS_URL, redis_keys, 60, QuestionEmbedder(stub), similarity=0.95)
        embedded = (await cache.find("acme", "agent", QUESTION)).embedded
        assert embedded is not None
        await cache.put("acme", "agent", QUESTION, data, embedded=embedded)
        redis = Redis.from_url(REDIS_URL)
        await redis.delete(cache.key("acme", "agent", QUESTION))  # as its TTL would
        similar = cache.similar_key("acme", "agent", "", embedded.model)
        assert await redis.hlen(similar) == 1
        assert (await cache.find("acme", "agent", PARAPHRASE)).answer is None
        assert await redis.hlen(similar) == 0
        await redis.aclose()
        await cache.close()


async def test_a_full_scope_starts_afresh(tmp_path: Path, redis_keys: str) -> None:
    data = CachedAnswer(answer="a", citations=[], model="m")
    async with embedding_retrieval(tmp_path) as stub:
        cache = AnswerCache(REDIS_URL, redis_keys, 60, QuestionEmbedder(stub), similarity=0.95, max_similar=2)
        questions = ["How do I reset my password?", "What is the refund policy?", QUESTION]
        for question in questions:
            await cache.put(
                "acme", "agent", question, data, embedded=(await cache.find("acme", "agent", question)).embedded
            )
        # The third vector overfilled the scope: matching by meaning starts afresh, the answers by text remain.
        assert (await cache.find("acme", "agent", PARAPHRASE)).answer is None
        assert all([await cache.get("acme", "agent", question) == data for question in questions])
        await cache.close()


async def test_retrieval_down_leaves_matching_by_text(redis_keys: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        cache = AnswerCache(
            REDIS_URL, redis_keys, 60, QuestionEmbedder(retrieval_pb2_grpc.RetrievalServiceStub(channel))
        )
        data = CachedAnswer(answer="a", citations=[], model="m")
        found = await cache.find("acme", "agent", QUESTION)
        assert (found.answer, found.embedded) == (None, None)
        await cache.put("acme", "agent", QUESTION, data, embedded=found.embedded)
        assert (await cache.find("acme", "agent", "where is a run request stored")).answer == data
        await cache.close()


async def test_embed_checks_its_texts(tmp_path: Path) -> None:
    async with embedding_retrieval(tmp_path) as stub:
        reply = await stub.Embed(pb.EmbedRequest(texts=[QUESTION, PARAPHRASE]))
        assert len(reply.embeddings) == 2 and reply.model and reply.model_version
        for texts in ([], ["  "], ["x"] * 33, ["x" * 8001]):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Embed(pb.EmbedRequest(texts=texts))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
