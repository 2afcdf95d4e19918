"""A change of embedding model: collections keep serving while they are re-embedded, then swap to the new model.

The other model is an OpenAI-compatible embedding endpoint served over real HTTP by this test
(langchain-openai's client talks to it), with bag-of-words vectors: deterministic, and good
enough that a query finds the document sharing its words.
"""

from __future__ import annotations

import asyncio
import base64
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.embeddings import LocalEmbedder
from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings

from tests.conftest import free_port
from tests.retrieval.conftest import retrieval_settings
from tests.retrieval.test_service import DOCS

FAKE_MODEL = "fake-bow-64"
DIMENSION = 64
PROBE = "dimension probe"  # what OpenAIEmbedder.start embeds to learn the dimension
FILLER = [pb.Document(id=f"filler-{n}", text=f"Filler page {n} about warehouse shelving.") for n in range(14)]


def bag_of_words(text: str) -> list[float]:
    vector = np.zeros(DIMENSION, dtype=np.float32)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[zlib.crc32(word.encode()) % DIMENSION] += 1.0
    vector[0] += 0.01  # never all zeros
    return vector.tolist()


class FakeEmbeddings:
    """An OpenAI-compatible ``/v1/embeddings``; ``budget`` (None: unlimited) holds back calls past it."""

    def __init__(self) -> None:
        self.budget: int | None = None
        self.opened = asyncio.Event()  # set: the budget no longer holds calls back
        self.embedded = 0  # texts embedded, besides the dimension probe
        self.url = ""

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if texts != [PROBE]:
            if self.budget is not None:
                if self.budget == 0:
                    await self.opened.wait()
                    # Its caller gave up waiting (a stopped service): what it asked is not counted.
                    return JSONResponse({"error": {"message": "stalled"}}, status_code=503)
                else:
                    self.budget -= 1
            self.embedded += len(texts)
        vectors = [bag_of_words(t) for t in texts]
        if body.get("encoding_format") == "base64":  # the openai client's default
            data = [base64.b64encode(np.asarray(v, dtype=np.float32).tobytes()).decode() for v in vectors]
        else:
            data = vectors
        return JSONResponse(
            {
                "object": "list",
                "model": body.get("model", FAKE_MODEL),
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeEmbeddings]:
    fake = FakeEmbeddings()
    port = free_port()
    app = Starlette(routes=[Route("/v1/embeddings", fake.embeddings, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}/v1"
    yield fake
    fake.opened.set()
    server.should_exit = True
    await task


def with_fake(data_dir: Path, fake: FakeEmbeddings, **extra: object) -> RetrievalSettings:
    return retrieval_settings(
        data_dir,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_MODEL=FAKE_MODEL,
        OPENAI_BASE_URL=fake.url,
        OPENAI_API_KEY="test",
        **extra,
    )


@asynccontextmanager
async def running(settings: RetrievalSettings, *args: object) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    async with serve(settings, *args) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def ingest(stub, documents: list[pb.Document]) -> None:
    await stub.Ingest(pb.IngestRequest(tenant_id="acme", collection="kb", documents=documents))


async def stats(stub) -> pb.CollectionStats:
    (collection,) = (await stub.ListCollections(pb.ListCollectionsRequest(tenant_id="acme"))).collections
    return collection


async def search(stub, query: str, mode: int = pb.SEARCH_MODE_DENSE) -> pb.SearchResponse:
    return await stub.Search(pb.SearchRequest(tenant_id="acme", collection="kb", query=query, mode=mode, k=3))


async def until(stub, done, timeout_s: float = 60) -> pb.CollectionStats:
    async with asyncio.timeout(timeout_s):
        while not done(current := await stats(stub)):  # noqa: ASYNC110 - polled over gRPC
            await asyncio.sleep(0.05)
    return current


def generation_files(data_dir: Path) -> list[str]:
    folder = data_dir / "acme" / ".next"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_local_to_endpoint_serves_dense_throughout_and_resumes_after_a_restart(
    embedder: LocalEmbedder, tmp_path: Path, fake: FakeEmbeddings
) -> None:
    data_dir = tmp_path / "data"
    async with running(retrieval_settings(data_dir), embedder) as stub:
        await ingest(stub, [*DOCS, *FILLER])
    total = len(DOCS) + len(FILLER)
    new_model = with_fake(data_dir, fake, RETRIEVAL_REEMBED_BATCH=4)

    fake.budget = 1  # one batch re-embedded, then the endpoint stalls
    async with running(new_model, None, [embedder]) as stub:
        during = await until(stub, lambda s: s.reembedded_chunks >= 4)
        assert (during.embedding_model, during.dimension) == ("all-MiniLM-L6-v2", 384)
        assert (during.reembedding_model, during.reembedding_model_version) == (FAKE_MODEL, "")
        # Still the old model's collection, searched densely with the old model (the local one is always at hand).
        answer = await search(stub, "How long should tomato sauce simmer?")
        assert answer.hits[0].document_id == "cooking.txt" and not answer.keyword_fallback
        # Written meanwhile, embedded with the old model, and caught up by the re-embedding.
        await ingest(stub, [pb.Document(id="late.txt", text="The ferry to the island leaves at dawn.")])
        assert (await search(stub, "When does the island ferry leave?")).hits[0].document_id == "late.txt"
    # Stopped mid-way: the partial generation stays for the next start, and is not what is served.
    assert generation_files(data_dir) == ["kb.sqlite3"]

    fake.budget, fake.embedded = None, 0
    fake.opened.set()
    async with running(new_model, None, [embedder]) as stub:
        after = await until(stub, lambda s: s.embedding_model == FAKE_MODEL)
        assert (after.dimension, after.embedding_model_version, after.reembedding_model) == (DIMENSION, "", "")
        assert (after.document_count, after.chunk_count) == (total + 1, total + 1)
        assert fake.embedded < total + 1  # resumed from the rows already re-embedded, not started over
        assert generation_files(data_dir) == []
        for query, expected in (("tomato sauce simmer basil", "cooking.txt"), ("ferry island dawn", "late.txt")):
            answer = await search(stub, query)
            assert answer.hits[0].document_id == expected and not answer.keyword_fallback
        assert (await search(stub, "ZX-4471", pb.SEARCH_MODE_KEYWORD)).hits[0].document_id == "errors.txt"


class GatedEmbedder:
    """The packaged model, held back until the test opens the gate (queries of collections of it included)."""

    def __init__(self, model: LocalEmbedder) -> None:
        self._model, self.gate = model, asyncio.Event()
        self.model_name, self.model_version, self.dimension = model.model_name, model.model_version, model.dimension

    async def embed(self, texts: list[str]) -> np.ndarray:
        await self.gate.wait()
        return await self._model.embed(texts)


async def test_endpoint_to_local_without_the_old_model_falls_back_to_keyword_until_swapped(
    embedder: LocalEmbedder, tmp_path: Path, fake: FakeEmbeddings
) -> None:
    data_dir = tmp_path / "data"
    async with running(with_fake(data_dir, fake)) as stub:
        await ingest(stub, DOCS)
        assert (await stats(stub)).embedding_model == FAKE_MODEL

    gated = GatedEmbedder(embedder)  # no OPENAI_BASE_URL now: the old model cannot be had
    async with running(retrieval_settings(data_dir, RETRIEVAL_REEMBED_BATCH=2), gated) as stub:
        answer = await search(stub, "tomato sauce", pb.SEARCH_MODE_HYBRID)
        assert answer.keyword_fallback and answer.hits[0].document_id == "cooking.txt"
        assert (await stats(stub)).reembedding_model == "all-MiniLM-L6-v2"
        # Written meanwhile with placeholder vectors; keyword search finds it, the re-embedding gives it real ones.
        ingesting = asyncio.create_task(ingest(stub, [pb.Document(id="late.txt", text="The ferry leaves at dawn.")]))
        await asyncio.sleep(0.2)
        assert ingesting.done()  # a stale collection's write does not wait for the new model
        assert (await search(stub, "ferry")).hits[0].document_id == "late.txt"

        failures: list[Exception] = []

        async def keep_searching() -> None:
            while True:
                try:
                    answer = await search(stub, "tomato sauce", pb.SEARCH_MODE_HYBRID)
                    assert answer.hits[0].document_id == "cooking.txt", answer
                except Exception as exc:
                    failures.append(exc)
                await asyncio.sleep(0.01)

        searching = asyncio.create_task(keep_searching())
        gated.gate.set()
        after = await until(stub, lambda s: s.embedding_model == "all-MiniLM-L6-v2")
        searching.cancel()
        assert failures == []  # no gap: every search during the swap was answered
        assert (after.dimension, after.reembedding_model, after.chunk_count) == (384, "", len(DOCS) + 1)
        assert after.embedding_model_version == embedder.model_version
        answer = await search(stub, "When does the ferry leave?")
        assert answer.hits[0].document_id == "late.txt" and not answer.keyword_fallback
        answer = await search(stub, "How long should tomato sauce simmer?")
        assert answer.hits[0].document_id == "cooking.txt" and not answer.keyword_fallback
        assert generation_files(data_dir) == []


async def test_a_collection_of_caller_vectors_is_not_reembedded(
    embedder: LocalEmbedder, tmp_path: Path, fake: FakeEmbeddings
) -> None:
    data_dir = tmp_path / "data"
    document = pb.Document(id="v", text="a vector of the caller's", vector=[1.0, 0.0, 0.0])
    async with running(retrieval_settings(data_dir), embedder) as stub:
        request = pb.IngestRequest(tenant_id="acme", collection="kb", documents=[document], embedding_model="toy-3d")
        await stub.Ingest(request)
    async with running(with_fake(data_dir, fake), None, [embedder]) as stub:
        await asyncio.sleep(0.3)
        kept = await stats(stub)
        assert (kept.embedding_model, kept.dimension, kept.reembedding_model) == ("toy-3d", 3, "")
        assert fake.embedded == 0
