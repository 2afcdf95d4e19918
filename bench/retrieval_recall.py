"""Recall@10 of the retrieval service's approximate indexes against exact search, with their search
latency, build time and size, on 100,000 x 384 vectors.

``python -m bench retrieval_recall`` builds each index with the service's own ``index.build`` (one
OpenMP thread, as the service builds and searches) and searches it with ``VectorIndex.search``,
the call a dense search makes: exact (IndexFlatIP), IVF at several ``nprobe``, HNSW, IVF-PQ; then
IVF with a metadata filter that keeps 1% of the rows. The truth is the exact index's top 10.

The vectors are synthetic, because embedding 100k real chunks takes over an hour on these
CPUs: **clustered** (1,000 centres, a point's cosine similarity to its centre about 0.7,
queries drawn from the same centres), shaped like text embeddings, which gather by topic;
**loose clusters** (the same centres, similarity to the centre about 0.45), for IVF only; and
**uniform** random unit vectors, the worst case for any partitioning index (no structure, every
neighbour nearly as far as the next), for IVF only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadline_retrieval.index import IndexParams, Kind, VectorIndex, build

from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "retrieval_recall.json"
DIMENSION = 384
K = 10
CENTRES = 1000
NPROBES = (8, 16, 32, 64)
FILTER_SHARE = 100  # every 100th row allowed: 1%


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, spread: float = 1.0) -> np.ndarray:
    noise = spread * rng.standard_normal((n, DIMENSION)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _search_all(
    index: VectorIndex, queries: np.ndarray, allowed: set[int] | None = None
) -> tuple[list[set[int]], dict[str, Any]]:
    found, samples = [], []
    for query in queries:
        started = time.perf_counter()
        hits = index.search(query, K, allowed)
        samples.append((time.perf_counter() - started) * 1000)
        found.append({row for row, _ in hits})
    return found, percentiles(samples)


def _recall(truth: list[set[int]], found: list[set[int]]) -> float:
    return round(sum(len(t & f) for t, f in zip(truth, found, strict=True)) / sum(len(t) for t in truth), 4)


def _size_mib(index: VectorIndex) -> float:
    return round(faiss.serialize_index(index._index).nbytes / 2**20, 1)


def _timed_build(kind: Kind, ids: np.ndarray, vectors: np.ndarray, params: IndexParams) -> tuple[VectorIndex, float]:
    started = time.perf_counter()
    index = build(kind, DIMENSION, ids, vectors, params)
    return index, round(time.perf_counter() - started, 1)


def _measure(
    name: str,
    index: VectorIndex,
    build_s: float,
    queries: np.ndarray,
    truth: list[set[int]],
    allowed: set[int] | None = None,
) -> dict[str, Any]:
    found, latency = _search_all(index, queries, allowed)
    row = {"name": name, "index": index.description, "recall_at_10": _recall(truth, found), "search_ms": latency}
    row["short_of_k"] = sum(len(f) < K for f in found)
    return {**row, "build_s": build_s, "size_mib": _size_mib(index)}


def _dataset(label: str, vectors: np.ndarray, queries: np.ndarray, kinds: list[str]) -> list[dict[str, Any]]:
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    rows = []
    exact, exact_s = _timed_build("flat", ids, vectors, IndexParams())
    truth, _ = _search_all(exact, queries[:1])  # warm-up
    truth, _ = _search_all(exact, queries)
    rows.append(_measure(f"{label} exact", exact, exact_s, queries, truth))
    allowed = {int(i) for i in ids[::FILTER_SHARE]}
    filtered_truth, _ = _search_all(exact, queries, allowed)
    rows.append(_measure(f"{label} exact, 1% filter", exact, exact_s, queries, filtered_truth, allowed))
    del exact
    ivf, ivf_s = _timed_build("ivf", ids, vectors, IndexParams())
    for nprobe in NPROBES:
        ivf._params = IndexParams(ivf_nprobe=nprobe)  # the same trained index, searched wider
        rows.append(_measure(f"{label} ivf nprobe={nprobe}", ivf, ivf_s, queries, truth))
    ivf._params = IndexParams()
    rows.append(_measure(f"{label} ivf, 1% filter", ivf, ivf_s, queries, filtered_truth, allowed))
    del ivf
    if "hnsw" in kinds:
        hnsw, hnsw_s = _timed_build("hnsw", ids, vectors, IndexParams())
        for ef in (64, 128):
            hnsw._params = IndexParams(hnsw_ef_search=ef)
            rows.append(_measure(f"{label} hnsw efSearch={ef}", hnsw, hnsw_s, queries, truth))
        del hnsw
    if "ivfpq" in kinds:
        for m in (48, 96):
            pq, pq_s = _timed_build("ivfpq", ids, vectors, IndexParams(pq_m=m))
            rows.append(_measure(f"{label} ivfpq m={m}", pq, pq_s, queries, truth))
            del pq
    for row in rows:
        print(json.dumps({k: row[k] for k in ("name", "recall_at_10", "build_s")} | {"p50": row["search_ms"]["p50"]}))
    return rows


def run(quick: bool = False) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)  # as the service builds and searches
    rng = np.random.default_rng(11)
    size, queries = (20_000, 100) if quick else (100_000, 500)
    started = time.perf_counter()
    # Centres of norm ~sqrt(d) and unit-variance noise: cosine(point, centre) ~ 0.7, (point, neighbour) ~ 0.5.
    centres = rng.standard_normal((CENTRES, DIMENSION)).astype(np.float32)
    rows = _dataset("clustered", clustered(size, rng, centres), clustered(queries, rng, centres), ["hnsw", "ivfpq"])
    # Loose clusters (spread 2: cosine to the centre ~0.45), nearer real embeddings' continuum of topics.
    loose = clustered(size, rng, centres, 2.0), clustered(queries, rng, centres, 2.0)
    rows += _dataset("loose clusters", *loose, [])
    rows += _dataset("uniform", uniform(size, rng), uniform(queries, rng), [])
    result = {
        "benchmark": "retrieval_recall",
        "machine": machine(),
        "vectors": size,
        "dimension": DIMENSION,
        "queries": queries,
        "k": K,
        "data": "synthetic: clustered (1,000 centres), loose clusters and uniform random unit vectors, not embeddings",
        "threads": 1,
        "indexes": rows,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
