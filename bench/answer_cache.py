"""The answer cache by meaning: its hit rate on paraphrases, its false hits, and what a lookup costs.

``python -m bench answer_cache`` starts the retrieval service (its default embedder, MiniLM on
ONNX Runtime int8) and uses the machine's Redis, as the agent does. For each pair of
``bench/paraphrases.py`` it caches an answer to the first question and looks the second up:
a paraphrase found is a hit, a different question found is a false hit. It does so at several
thresholds (AGENT_ANSWER_CACHE_SIMILARITY), then times the three paths of a lookup at the
default threshold, with the scope holding as many questions as the pairs: a hit by text
(one GET), a hit by meaning (Embed RPC, the scope's vectors, GET) and a miss (the same
without the last GET). Writes ``bench/results/answer_cache.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.answer_cache import AnswerCache, CachedAnswer, QuestionEmbedder

from bench.mesh import _free_port, grpc_service
from bench.paraphrases import DIFFERENT, PARAPHRASES
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "answer_cache.json"
THRESHOLDS = (0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ANSWER = CachedAnswer(answer="An answer of a few sentences, as a run gives it.", citations=[], model="bench")


async def _hits(stub: retrieval_pb2_grpc.RetrievalServiceStub, prefix: str, threshold: float) -> dict[str, Any]:
    cache = AnswerCache(REDIS_URL, prefix, 600, QuestionEmbedder(stub), similarity=threshold)
    try:
        found = {}
        for kind, pairs in (("paraphrases", PARAPHRASES), ("different", DIFFERENT)):
            scope = f"{kind}-{uuid.uuid4().hex[:8]}"
            hits = 0
            for n, (first, second) in enumerate(pairs):
                tenant = f"{scope}-{n}"  # a scope per pair: a pair's second question can match only its first
                miss = await cache.find(tenant, "agent", first)
                await cache.put(tenant, "agent", first, ANSWER, embedded=miss.embedded)
                hits += (await cache.find(tenant, "agent", second)).answer is not None
                await cache.drop_tenant(tenant)
            found[kind] = {"pairs": len(pairs), "found": hits}
        return {
            "threshold": threshold,
            "hit_rate": round(found["paraphrases"]["found"] / len(PARAPHRASES), 2),
            "false_hit_rate": round(found["different"]["found"] / len(DIFFERENT), 2),
        }
    finally:
        await cache.close()


async def _timings(stub: retrieval_pb2_grpc.RetrievalServiceStub, prefix: str, samples: int) -> dict[str, Any]:
    threshold = AgentSettings().answer_cache_similarity
    cache = AnswerCache(REDIS_URL, prefix, 600, QuestionEmbedder(stub), similarity=threshold)
    tenant = f"timing-{uuid.uuid4().hex[:8]}"
    try:
        for first, _ in PARAPHRASES:  # a scope holding as many questions as the set has
            embedded = (await cache.find(tenant, "agent", first)).embedded
            await cache.put(tenant, "agent", first, ANSWER, embedded=embedded)
        paths: dict[str, list[float]] = {"hit_by_text": [], "hit_by_meaning": [], "miss": []}
        exact = PARAPHRASES[0][0]
        similar = next(second for first, second in PARAPHRASES if first.startswith("How do I contact"))
        different = "What is the airspeed velocity of an unladen swallow?"
        for _ in range(samples):
            for path, question, expected in (
                ("hit_by_text", exact, "text"),
                ("hit_by_meaning", similar, "meaning"),
                ("miss", different, None),
            ):
                started = time.perf_counter()
                found = await cache.find(tenant, "agent", question)
                paths[path].append((time.perf_counter() - started) * 1000)
                if found.matched != expected:
                    raise RuntimeError(f"{question!r} matched {found.matched!r}, not {expected!r}")
        lookups = {path: percentiles(ms) for path, ms in paths.items()}
        return {"threshold": threshold, "scope_questions": len(PARAPHRASES), **lookups}
    finally:
        await cache.drop_tenant(tenant)
        await cache.close()


async def _measure(target: str, quick: bool) -> dict[str, Any]:
    prefix = f"bench-answer-cache-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        thresholds = [await _hits(stub, prefix, t) for t in THRESHOLDS]
        timings = await _timings(stub, prefix, 20 if quick else 200)
    return {"thresholds": thresholds, "lookup_ms": timings}


def run(quick: bool = False) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="threadline-answer-cache-") as data_dir:
        env = {"RETRIEVAL_PORT": str(port), "RETRIEVAL_DATA_DIR": data_dir}
        with grpc_service("threadline_retrieval", port, env) as target:
            figures = asyncio.run(_measure(target, quick))
    result = {
        "benchmark": "answer_cache",
        "pairs": {"paraphrases": len(PARAPHRASES), "different": len(DIFFERENT), "set": "bench/paraphrases.py"},
        "embedder": "retrieval service default (MiniLM-L6-v2, ONNX Runtime int8), over its Embed RPC",
        "machine": machine(),
        **figures,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
