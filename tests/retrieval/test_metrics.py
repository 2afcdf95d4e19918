"""The retrieval service's /metrics: search latency by outcome and the size of its indexes."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.retrieval.conftest import Server
from tests.retrieval.test_service import DOCS, ingest, search


def _samples(port: int) -> dict[tuple[str, frozenset], float]:
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


async def test_searches_and_chunks_are_exported(start_retrieval: Server) -> None:
    port = free_port()
    async with start_retrieval(RETRIEVAL_METRICS_PORT=port) as stub:
        indexed = await ingest(stub)
        await search(stub, "JetStream work queue")
        with pytest.raises(grpc.aio.AioRpcError):
            await search(stub, " ")
        samples = await asyncio.to_thread(_samples, port)

    count = "threadline_grpc_server_handling_seconds_count"
    assert samples[(count, frozenset({("method", "Search"), ("code", "OK")}))] == 1
    assert samples[(count, frozenset({("method", "Search"), ("code", "INVALID_ARGUMENT")}))] == 1
    assert samples[("threadline_retrieval_chunks", frozenset())] == sum(d.chunk_count for d in indexed.documents)
    assert len(DOCS) == len(indexed.documents)
