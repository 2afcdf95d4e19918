"""Every RPC of a gRPC service is timed by method and status code, and scraped over HTTP."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
from threadline.grpc import traced_server
from threadline.metrics import RpcMetrics

from tests.conftest import free_port


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    if request == b"crash":
        raise RuntimeError("a bug")
    return request


async def _count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for n in range(int(request)):
        yield str(n).encode()


def _count_of(metrics: RpcMetrics, method: str, code: str) -> Any:
    return metrics.registry.get_sample_value(
        "threadline_grpc_server_handling_seconds_count", {"method": method, "code": code}
    )


async def test_calls_are_counted_by_method_and_status_code() -> None:
    metrics = RpcMetrics()
    server = traced_server(metrics)
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Things", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/test.Things/Echo")
            assert await echo(b"hello") == b"hello"
            assert await echo(b"again") == b"again"
            for request, status in ((b"missing", grpc.StatusCode.NOT_FOUND), (b"crash", grpc.StatusCode.UNKNOWN)):
                try:
                    await echo(request)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == status
            replies = [r async for r in channel.unary_stream("/test.Things/Count")(b"3")]
            assert replies == [b"0", b"1", b"2"]
    finally:
        await server.stop(None)

    assert _count_of(metrics, "Echo", "OK") == 2
    assert _count_of(metrics, "Echo", "NOT_FOUND") == 1
    assert _count_of(metrics, "Echo", "UNKNOWN") == 1
    assert _count_of(metrics, "Count", "OK") == 1


async def test_metrics_are_served_for_prometheus() -> None:
    metrics = RpcMetrics()
    metrics.handling_seconds.labels("Search", "OK").observe(0.002)
    port = free_port()
    metrics.serve(port)
    url = f"http://127.0.0.1:{port}/metrics"
    page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert 'threadline_grpc_server_handling_seconds_bucket{code="OK",le="0.0025",method="Search"} 1.0' in page
