"""When a failed run is worth another delivery, and how soon."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from threadline_agent.resilience import CircuitOpen, transient_grpc_error
from threadline_agent.worker.failures import RunFailed, dependency_failures

from tests.conftest import free_port


async def test_a_call_held_by_a_server_that_stops_is_a_transient_failure() -> None:
    """A replica stopping with grace cancels the calls it holds: the run must be redelivered, not failed."""
    started = asyncio.Event()

    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started.set()
        await asyncio.sleep(30)
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(slow)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Slow", {"Call": handler}),))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/test.Slow/Call")(b"x")
        await started.wait()
        await server.stop(grace=0.1)
        with pytest.raises(grpc.aio.AioRpcError) as stopped:
            await call
    # UNAVAILABLE when the server cancels at once; the memory service stopping mid-run was seen answering
    # CANCELLED (tests/reliability): both are the server's doing, both worth another delivery.
    cancelled = grpc.aio.AioRpcError(grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "CANCELLED")
    for error in (stopped.value, cancelled):
        assert transient_grpc_error(error), error.code()
        with pytest.raises(RunFailed) as failed, dependency_failures():
            raise error
        assert failed.value.transient


def test_a_run_failed_on_an_open_breaker_is_not_redelivered_before_the_breaker_lets_calls_through() -> None:
    with pytest.raises(RunFailed) as failed, dependency_failures():
        raise CircuitOpen("memory", 15.8)
    assert failed.value.transient and failed.value.retry_in_s == 15.8
    # backing off alone (1, 2, 4, 8 s) would spend every attempt inside the breaker's 15.8 s
    assert [failed.value.redelivery_delay(attempt, 30.0) for attempt in (1, 2, 5, 6)] == [15.8, 15.8, 16.0, 30.0]
    plain = RunFailed("model_unavailable", "down", transient=True)
    assert [plain.redelivery_delay(attempt, 30.0) for attempt in (1, 2, 3)] == [1.0, 2.0, 4.0]
