"""A servicer's known failures end the call with their own status code and message, over a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from threadline.grpc import BadRequest, FailedPrecondition, ServiceError, Unavailable, abort_on_error, traced_server

FAILURES: dict[bytes, ServiceError] = {
    b"bad": BadRequest("k must be between 1 and 100"),
    b"mismatch": FailedPrecondition("collection holds vectors of another model"),
    b"down": Unavailable("PostgreSQL did not answer within 5s"),
}


class StorageDown(Unavailable):
    """As a service declares its own: the shared class decides the code."""


async def _handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    async with abort_on_error(context):
        if request in FAILURES:
            raise FAILURES[request]
        if request == b"storage":
            raise StorageDown("SQLite is locked")
        if request == b"bug":
            raise RuntimeError("not a ServiceError")
    return b"ok"


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = traced_server()
    handler = grpc.unary_unary_rpc_method_handler(_handle)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Errors", {"Handle": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


async def _status(channel: grpc.aio.Channel, request: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        await channel.unary_unary("/test.Errors/Handle")(request)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_each_failure_is_its_code_with_its_message(channel: grpc.aio.Channel) -> None:
    assert await _status(channel, b"bad") == (grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and 100")
    assert await _status(channel, b"mismatch") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "collection holds vectors of another model",
    )
    assert await _status(channel, b"down") == (grpc.StatusCode.UNAVAILABLE, "PostgreSQL did not answer within 5s")
    assert await _status(channel, b"storage") == (grpc.StatusCode.UNAVAILABLE, "SQLite is locked")
    assert await _status(channel, b"fine") == (grpc.StatusCode.OK, "")


async def test_any_other_exception_is_left_to_grpc(channel: grpc.aio.Channel) -> None:
    code, details = await _status(channel, b"bug")
    assert code == grpc.StatusCode.UNKNOWN
    assert "Traceback" not in details
