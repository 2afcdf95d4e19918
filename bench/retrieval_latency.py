"""Search latency through the retrieval service at 10k and 100k chunks, next to the same search in process;
and ingestion throughput next to the raw throughput of the embedding model it spends its time in.

``python -m bench retrieval_latency`` writes collections of 10,000 and 100,000 chunks (384-d unit
vectors, random, with short texts) with the service's own ``Collection`` class, starts
``python -m threadline_retrieval`` on them, and sends dense searches (k=10) over gRPC, one at a
time and 8 at a time; then runs the same work in this process: embed the query with the same
model, search the same vectors with the same FAISS index. Ingestion: 300 SciFact abstracts
through gRPC ``Ingest``, against the same chunks embedded directly.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import grpc
import numpy as np
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.chunking import Chunk, Chunker
from threadline_retrieval.collection import Collection, NewDocument
from threadline_retrieval.embeddings import LocalEmbedder

from bench import scifact
from bench.mesh import _free_port, grpc_service
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "retrieval_latency.json"
SIZES = (10_000, 100_000)
DIMENSION = 384
TENANT = "bench"
_WORDS = [f"term{n}" for n in range(5000)]


def _write_collection(data_dir: Path, size: int, model: str, rng: np.random.Generator) -> np.ndarray:
    """A tenant's default collection of ``size`` one-chunk documents, as the service stores it; its vectors."""
    vectors = rng.standard_normal((size, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    collection = Collection(data_dir / TENANT / "default.sqlite3", model, DIMENSION)
    try:
        for start in range(0, size, 5000):
            documents = [
                NewDocument(f"doc-{n}", [Chunk(" ".join(rng.choice(_WORDS, 30)))], vectors[n : n + 1])
                for n in range(start, min(size, start + 5000))
            ]
            collection.write(documents)
    finally:
        collection.close()
    return vectors


async def _grpc_searches(target: str, queries: list[str], concurrency: int) -> dict[str, Any]:
    samples: list[float] = []
    pending = list(queries)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = pb.SearchRequest(tenant_id=TENANT, query=queries[0], k=10, mode=pb.SEARCH_MODE_DENSE)
        for _ in range(10):  # warm-up
            await stub.Search(request)

        async def client() -> None:
            while pending:
                query = pending.pop()
                started = time.perf_counter()
                reply = await stub.Search(
                    pb.SearchRequest(tenant_id=TENANT, query=query, k=10, mode=pb.SEARCH_MODE_DENSE), timeout=60
                )
                samples.append((time.perf_counter() - started) * 1000)
                assert len(reply.hits) == 10

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**percentiles(samples), "concurrency": concurrency, "queries_per_s": round(len(queries) / elapsed, 1)}


async def _in_process_searches(embedder: LocalEmbedder, vectors: np.ndarray, queries: list[str]) -> dict[str, Any]:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    samples: list[float] = []
    started_all = time.perf_counter()
    for query in queries:
        started = time.perf_counter()
        vector = (await embedder.embed([query]))[0]
        index.search(vector.reshape(1, -1), 10)
        samples.append((time.perf_counter() - started) * 1000)
    elapsed = time.perf_counter() - started_all
    return {**percentiles(samples), "queries_per_s": round(len(queries) / elapsed, 1)}


async def _ingestion(target: str, embedder: LocalEmbedder, abstracts: list[scifact.Abstract]) -> dict[str, Any]:
    chunker = Chunker(1000, 150)
    texts = [chunk.text for a in abstracts for chunk in chunker.split(a.text, "text/plain")]
    started = time.perf_counter()
    await embedder.embed(texts)
    raw_s = time.perf_counter() - started
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        started = time.perf_counter()
        chunks = 0
        for i in range(0, len(abstracts), 50):
            batch = [pb.Document(id=a.id, text=a.text) for a in abstracts[i : i + 50]]
            reply = await stub.Ingest(pb.IngestRequest(tenant_id="ingest", documents=batch), timeout=600)
            chunks += sum(d.chunk_count for d in reply.documents)
        service_s = time.perf_counter() - started
    return {
        "documents": len(abstracts),
        "chunks": chunks,
        "raw_embedding_chunks_per_s": round(len(texts) / raw_s, 1),
        "service_ingest_chunks_per_s": round(chunks / service_s, 1),
        "ratio_service_over_raw": round((chunks / service_s) / (len(texts) / raw_s), 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    claims = list(scifact.test_claims().values())
    queries = claims[: 100 if quick else 300]
    embedder = LocalEmbedder()
    sizes: dict[str, Any] = {}
    ingestion: dict[str, Any] = {}
    faiss.omp_set_num_threads(1)  # as the service runs it
    for size in SIZES[:1] if quick else SIZES:
        with tempfile.TemporaryDirectory(prefix="threadline-bench-retrieval-") as scratch:
            data_dir = Path(scratch)
            vectors = _write_collection(data_dir, size, embedder.model_name, rng)
            port = _free_port()
            # Exact at every size, as these figures have always been: bench/retrieval_recall.py measures the others.
            env = {"RETRIEVAL_PORT": str(port), "RETRIEVAL_DATA_DIR": str(data_dir), "RETRIEVAL_INDEX": "flat"}
            with grpc_service("threadline_retrieval", port, env) as target:
                one = asyncio.run(_grpc_searches(target, queries, 1))
                eight = asyncio.run(_grpc_searches(target, queries, 8))
                if not ingestion:
                    ingestion = asyncio.run(_ingestion(target, embedder, scifact.abstracts()[:300]))
            local = asyncio.run(_in_process_searches(embedder, vectors, queries))
        sizes[str(size)] = {
            "grpc_one_client": one,
            "grpc_eight_clients": eight,
            "in_process": local,
            "ratio_p50_grpc_over_in_process": round(one["p50"] / local["p50"], 2),
        }
    result = {
        "benchmark": "retrieval_latency",
        "machine": machine(),
        "index": "exact inner product (IndexFlatIP, RETRIEVAL_INDEX=flat), so recall@10 is 1.0",
        "chunks": sizes,
        "ingestion": ingestion,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
