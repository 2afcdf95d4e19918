"""End-to-end question latency through the mesh, next to the retrieval search it contains.

``python -m bench query_latency``: starts the mesh as ``./task up`` does (embedded NATS,
SQLite memory, the offline extractive answerer, docs/ as the knowledge base), then asks
questions through ``POST /api/v1/query`` one at a time and 8 at a time, and times the
same knowledge-base search straight over gRPC. The ratio of the two is what the mesh
(gateway, JetStream, agent, checkpoints) costs on top of the search itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import httpx
from threadline.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc

from bench.mesh import running_mesh
from bench.stats import machine, percentiles

QUESTIONS = [
    "How are runs kept durable?",
    "Which port does the gateway listen on?",
    "What does the memory service store?",
    "How is a run redelivered when a worker dies?",
    "What is the extractive answerer?",
    "Which environment variable sets the NATS namespace?",
]
RESULTS = Path(__file__).parent / "results" / "query_latency.json"


async def _ask(client: httpx.AsyncClient, question: str) -> float:
    started = time.perf_counter()
    reply = await client.post("/api/v1/query", json={"input": question})
    reply.raise_for_status()
    assert reply.json()["citations"], "every benchmark question should be answered from the knowledge base"
    return (time.perf_counter() - started) * 1000


async def _queries(url: str, total: int, concurrency: int) -> dict[str, float]:
    samples: list[float] = []
    queue = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(QUESTIONS[n % len(QUESTIONS)])

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            samples.append(await _ask(client, queue.get_nowait()))

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**percentiles(samples), "concurrency": concurrency, "throughput_qps": round(total / elapsed, 2)}


async def _searches(target: str, total: int) -> dict[str, float]:
    samples = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for n in range(total):
            started = time.perf_counter()
            await stub.Search(
                retrieval_pb2.SearchRequest(tenant_id="default", query=QUESTIONS[n % len(QUESTIONS)], k=4)
            )
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def _measure(url: str, retrieval_target: str, quick: bool) -> dict[str, object]:
    scale = 1 if quick else 4
    await _queries(url, 6, 2)  # warm-up: model caches, connections, JetStream consumers
    search = await _searches(retrieval_target, 25 * scale)
    sequential = await _queries(url, 10 * scale, 1)
    concurrent = await _queries(url, 20 * scale, 8)
    return {
        "retrieval_search_grpc_ms": search,
        "query_ms": [sequential, concurrent],
        "ratio_query_p50_to_search_p50": round(sequential["p50"] / search["p50"], 1),
    }


def run(quick: bool = False) -> dict[str, object]:
    with running_mesh() as mesh:
        figures = asyncio.run(_measure(mesh.url, mesh.retrieval_target, quick))
    result = {"benchmark": "query_latency", "machine": machine(), **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
