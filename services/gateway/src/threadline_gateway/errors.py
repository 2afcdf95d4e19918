"""One JSON error shape for every 4xx and 5xx, each with the request id that the logs carry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("threadline.gateway")

REQUEST_ID_HEADER = "x-request-id"


class ApiError(Exception):
    """An error meant for the client: its status, a stable code and a human message."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.details = status, code, message, headers, details


def invalid_field(field: str, message: str) -> ApiError:
    """A 422 in the shape of a request validation error, for checks the schema cannot state."""
    return ApiError(422, "validation_error", "The request is not valid.", fields=[{"field": field, "message": message}])


def _bus_unavailable() -> ApiError:
    return ApiError(
        503, "unavailable", "The message bus is unavailable; try again shortly.", headers={"Retry-After": "2"}
    )


@contextmanager
def nats_errors_as_503() -> Iterator[None]:
    """A NATS failure is the client's 503 with Retry-After, never a 500 or a hang."""
    try:
        yield
    except TimeoutError as exc:
        # TimeoutError is an OSError, but a run that is merely slow is the caller's 504, not a bus failure.
        if not isinstance(exc, NatsError):
            raise
        log.warning("nats unavailable", error=repr(exc))
        raise _bus_unavailable() from exc
    except (NatsError, ConnectionError, OSError) as exc:
        log.warning("nats unavailable", error=str(exc))
        raise _bus_unavailable() from exc


@contextmanager
def retrieval_errors(invalid_code: str = "invalid_request") -> Iterator[None]:
    """The retrieval service's refusals as the client's errors (a 422 ``invalid_code``, a 404, a 409 when the
    collection as it is refuses the request, e.g. another language), with its own message; its absence a 503
    with Retry-After."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise ApiError(422, invalid_code, exc.details() or "The request was refused.") from exc
        if code == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", exc.details() or "Not found.") from exc
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            raise ApiError(409, "conflict", exc.details() or "The collection refuses this request.") from exc
        log.warning("retrieval unavailable", code=code.name, error=exc.details())
        raise ApiError(
            503,
            "retrieval_unavailable",
            "The knowledge base is unavailable; try again shortly.",
            headers={"Retry-After": "2"},
        ) from exc


def error_body(request_id: str, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return {"error": body}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or request.headers.get(REQUEST_ID_HEADER, "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = error_body(_request_id(request), exc.code, exc.message, exc.details or None)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        body = error_body(_request_id(request), "validation_error", "The request is not valid.", {"fields": fields})
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(_request_id(request), code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", request_id=_request_id(request))
        body = error_body(_request_id(request), "internal_error", "An internal error occurred; it has been logged.")
        return JSONResponse(body, status_code=500)


class RequestContextMiddleware:
    """Gives every request an id (or keeps the caller's) and refuses bodies above the limit with 413.

    The body limit is enforced while reading, so a client that lies about (or omits)
    Content-Length cannot push more than the limit into memory.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, uploads: tuple[str, int] | None = None) -> None:
        """``uploads``: (path prefix, limit) of the routes that take files, allowed a larger body."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")[:128] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((REQUEST_ID_HEADER.encode(), request_id.encode()))
            await send(message)

        limit = self.max_body_bytes
        if self.uploads is not None and scope["path"].startswith(self.uploads[0]):
            limit = self.uploads[1]
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._too_large(request_id, limit, send_with_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPException from body parsing untouched; anything else becomes a 400.
                    raise StarletteHTTPException(413, _too_large_message(limit))
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    async def _too_large(self, request_id: str, limit: int, send: Send) -> None:
        response = JSONResponse(error_body(request_id, "payload_too_large", _too_large_message(limit)), status_code=413)
        await response({"type": "http"}, _no_receive, send)


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
