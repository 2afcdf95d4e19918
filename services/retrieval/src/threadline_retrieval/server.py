"""The retrieval service's gRPC server, from a loaded model to a clean stop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import faiss
import structlog
from prometheus_client import Gauge
from threadline.grpc import add_health_and_reflection, set_serving, traced_server
from threadline.metrics import RpcMetrics
from threadline.retrieval.v1 import retrieval_pb2_grpc

from threadline_retrieval.catalog import Catalog
from threadline_retrieval.embeddings import Embedder, open_embedder
from threadline_retrieval.erasure_events import ErasureConsumer
from threadline_retrieval.ingest_events import IngestConsumer
from threadline_retrieval.reembed import EmbedderPool, Reembedder
from threadline_retrieval.rerank import Reranking
from threadline_retrieval.service import SERVICE_NAME, RetrievalServicer
from threadline_retrieval.settings import RetrievalSettings

log = structlog.get_logger("threadline_retrieval")
_GRACE_S = 5.0


@asynccontextmanager
async def serve(
    settings: RetrievalSettings, embedder: Embedder | None = None, previous_embedders: Sequence[Embedder] = ()
) -> AsyncIterator[int]:
    """Serve until the block exits; yields the bound port (``RETRIEVAL_PORT=0`` picks a free one).

    ``embedder`` lets tests share one loaded model between servers; ``previous_embedders`` are models
    that collections made before a change of model may have been embedded with (others are made on demand).
    """
    # One OpenMP thread is faster than two for single-query flat search, and leaves a core to gRPC.
    faiss.omp_set_num_threads(1)
    embedder = embedder or await open_embedder(settings)
    catalog = Catalog(
        settings.data_dir, embedder.model_name, embedder.dimension, embedder.model_version, settings.index_params()
    )
    metrics = RpcMetrics()
    chunks = Gauge("threadline_retrieval_chunks", "Chunks in the open collections' indexes.", registry=metrics.registry)
    chunks.set_function(catalog.open_chunks)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    server = traced_server(metrics)
    pool = EmbedderPool(settings, embedder, previous_embedders)
    reembedder = Reembedder(catalog, pool, settings.reembed_batch)
    reranking = Reranking.from_settings(settings, metrics.registry)
    servicer = RetrievalServicer(settings, catalog, embedder, pool, reembedder, reranking=reranking)
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, [SERVICE_NAME])
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    await server.start()
    ingest_events = IngestConsumer(settings, servicer.ingest) if settings.ingest_events else None
    erasures = ErasureConsumer(settings, servicer.erase) if settings.ingest_events else None
    try:
        if ingest_events is not None:
            await ingest_events.start()
        if erasures is not None:
            await erasures.start()
        # In the background: stale collections keep serving as they were until each is swapped.
        await reembedder.start()
        await set_serving(health, [SERVICE_NAME], True)
        log.info("retrieval ready", host=settings.host, port=port, embedding_model=embedder.model_name)
        yield port
    finally:
        await set_serving(health, [SERVICE_NAME], False)
        # The consumer first: an ingest in flight finishes (or goes back to the queue) while the catalog is open.
        if ingest_events is not None:
            await ingest_events.stop()
        if erasures is not None:
            await erasures.stop()
        await reembedder.stop()
        await server.stop(_GRACE_S)
        await servicer.close()
        catalog.close()
        log.info("retrieval stopped")
