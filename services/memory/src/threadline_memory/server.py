"""The memory service's gRPC server (checkpoints, threads, the store, assistants), from open storage to a clean stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from threadline.grpc import add_health_and_reflection, set_serving, traced_server
from threadline.memory.v1 import memory_pb2_grpc
from threadline.metrics import RpcMetrics

from threadline_memory.assistant_service import SERVICE_NAME as ASSISTANTS_SERVICE_NAME
from threadline_memory.assistant_service import AssistantServicer
from threadline_memory.cache import LatestCheckpointCache
from threadline_memory.checkpoint_service import SERVICE_NAME, CheckpointServicer
from threadline_memory.cron_service import SERVICE_NAME as CRONS_SERVICE_NAME
from threadline_memory.cron_service import CronServicer
from threadline_memory.erasure_events import ErasureEvents
from threadline_memory.settings import MemorySettings
from threadline_memory.storage import StorageUnavailable, open_storage
from threadline_memory.store_service import SERVICE_NAME as STORE_SERVICE_NAME
from threadline_memory.store_service import StoreServicer
from threadline_memory.thread_service import SERVICE_NAME as THREADS_SERVICE_NAME
from threadline_memory.thread_service import ThreadServicer

log = structlog.get_logger("threadline_memory")
_GRACE_S = 5.0


@asynccontextmanager
async def serve(settings: MemorySettings) -> AsyncIterator[int]:
    """Serve until the block exits; yields the bound port (``MEMORY_PORT=0`` picks a free one)."""
    async with open_storage(settings) as storage:
        try:
            await storage.setup()
        except StorageUnavailable as exc:
            # Still start: calls answer UNAVAILABLE (which callers retry) and set-up is retried with each call.
            log.warning("storage not ready", error=str(exc))
        metrics = RpcMetrics()
        cache = None
        if settings.redis_url:
            prefix = f"{settings.nats_namespace}:memory"
            cache = LatestCheckpointCache(settings.redis_url, prefix, settings.cache_ttl_s, metrics.registry)
        events = ErasureEvents(settings.nats_url, settings.topology()) if settings.nats_url else None
        if settings.metrics_port:
            metrics.serve(settings.metrics_port)
        server = traced_server(metrics)
        memory_pb2_grpc.add_CheckpointServiceServicer_to_server(CheckpointServicer(storage, cache), server)
        memory_pb2_grpc.add_ThreadServiceServicer_to_server(ThreadServicer(storage, cache, events), server)
        memory_pb2_grpc.add_StoreServiceServicer_to_server(StoreServicer(storage), server)
        memory_pb2_grpc.add_AssistantServiceServicer_to_server(AssistantServicer(storage), server)
        memory_pb2_grpc.add_CronServiceServicer_to_server(CronServicer(storage), server)
        services = [SERVICE_NAME, THREADS_SERVICE_NAME, STORE_SERVICE_NAME, ASSISTANTS_SERVICE_NAME, CRONS_SERVICE_NAME]
        health = add_health_and_reflection(server, services)
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        await server.start()
        await set_serving(health, services, True)
        log.info("memory ready", host=settings.host, port=port, storage=storage.name)
        try:
            yield port
        finally:
            await set_serving(health, services, False)
            await server.stop(_GRACE_S)
            if cache is not None:
                await cache.close()
            if events is not None:
                await events.close()
            log.info("memory stopped")
