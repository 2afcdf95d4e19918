"""Prometheus metrics every gRPC service shares: latency of each RPC by method and status code.

A service owns one :class:`RpcMetrics` (a registry of its own, not module globals, so two
servers in one test process count separately), passes it to
:func:`threadline.grpc.traced_server`, adds its own metrics to ``registry`` and serves them
on its metrics port.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
from prometheus_client import CollectorRegistry, Histogram, start_http_server

# gRPC calls here range from a sub-millisecond cache hit to a multi-second ingest.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# grpc's stubs type a handler's behaviour as the synchronous server's; under grpc.aio it is a
# coroutine function (unary replies) or an async generator function (streamed replies).
_Context = grpc.aio.ServicerContext[Any, Any]
_UnaryBehaviour = Callable[[Any, _Context], Awaitable[Any]]
_StreamBehaviour = Callable[[Any, _Context], AsyncIterator[Any]]


class RpcMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.handling_seconds = Histogram(
            "threadline_grpc_server_handling_seconds",
            "Time to handle a gRPC call (a stream: until its last message), by method and status code.",
            ["method", "code"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """``/metrics`` on ``port`` from a daemon thread; Prometheus scrapes it."""
        start_http_server(port, registry=self.registry)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _RpcMetricsInterceptor(self.handling_seconds)


def _code(context: _Context, failed: bool) -> str:
    code = context.code()
    if code is None or code == grpc.StatusCode.OK:
        return "UNKNOWN" if failed else "OK"
    return code.name


class _RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        observe = self._histogram.labels
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }

        if handler.unary_unary:
            unary = cast(_UnaryBehaviour, handler.unary_unary)

            async def unary_unary(request: Any, context: _Context) -> Any:
                started, failed = time.perf_counter(), True
                try:
                    reply = await unary(request, context)
                    failed = False
                    return reply
                finally:
                    observe(method, _code(context, failed)).observe(time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **codec)

        streaming = cast(_StreamBehaviour, handler.unary_stream)

        async def unary_stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            started, failed = time.perf_counter(), True
            try:
                async for reply in streaming(request, context):
                    yield reply
                failed = False
            finally:
                observe(method, _code(context, failed)).observe(time.perf_counter() - started)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **codec)
