"""The knowledge base as a single-process app holds it: chunks and their vectors in a FAISS index in memory.

The mesh's retrieval service embeds the same chunks with the same model on the same runtime
(``BENCH_EMBEDDER``, the service's default: MiniLM on ONNX Runtime int8); here they are
embedded once by the benchmark (``save``) and loaded by each peer (``load``), so the peers
start in seconds and search exactly the same vectors, and embed a query as the mesh does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from langchain_core.tools import BaseTool, StructuredTool
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL, format_passages
from threadline_retrieval.embeddings import LocalRuntime, local_embedder

K = 4
DEFAULT_EMBEDDER: LocalRuntime = "onnx-int8"


class KnowledgeBase:
    def __init__(self, chunks: list[dict[str, str]], vectors: np.ndarray, directory: Path) -> None:
        self._chunks = chunks
        self._index = faiss.IndexFlatIP(vectors.shape[1])
        self._index.add(vectors)
        runtime: LocalRuntime = os.environ.get("BENCH_EMBEDDER", DEFAULT_EMBEDDER)  # type: ignore[assignment]
        self._embedder = local_embedder(runtime, directory)

    async def search(self, query: str, k: int = K) -> list[dict[str, Any]]:
        vector = await self._embedder.embed([query])
        scores, ids = self._index.search(vector, k)
        return [
            {**self._chunks[i], "score": round(float(score), 6), "metadata": {}}
            for score, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]

    def tool(self) -> BaseTool:
        """The same tool the agent service builds, with an in-process search behind it."""

        async def search_knowledge_base(query: str) -> tuple[str, list[dict[str, Any]]]:
            passages = await self.search(query)
            return format_passages(passages), passages

        return StructuredTool.from_function(
            coroutine=search_knowledge_base,
            name=KNOWLEDGE_BASE_TOOL,
            description="Search the user's knowledge base for passages relevant to a query.",
            response_format="content_and_artifact",
        )


def save(directory: Path, chunks: list[dict[str, str]], vectors: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chunks.json").write_text(json.dumps(chunks))
    np.save(directory / "vectors.npy", vectors)


def load(directory: Path) -> KnowledgeBase:
    chunks = json.loads((directory / "chunks.json").read_text())
    return KnowledgeBase(chunks, np.load(directory / "vectors.npy"), directory)
