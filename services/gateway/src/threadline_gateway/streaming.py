"""Streaming a run's events to a client as server-sent events, and the response that always cleans up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import structlog
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from threadline.events import RunEvent

from threadline_gateway import sse
from threadline_gateway.errors import invalid_field
from threadline_gateway.metrics import GatewayMetrics
from threadline_gateway.runs import RunEventStream, RunRecord
from threadline_gateway.settings import GatewaySettings

log = structlog.get_logger("threadline.gateway")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of a live stream
Framer = Callable[[RunEvent], bytes | None]


class ClosingStreamingResponse(StreamingResponse):
    """Calls ``on_close`` once the response is over, even when the client leaves before the first byte.

    A generator's own ``finally`` would not run if Starlette cancels the response before iterating it.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


def resume_point(last_event_id: str | None) -> int | None:
    """The ``seq`` a reconnecting client has seen (``Last-Event-ID``), None from the start; a 422 if malformed."""
    try:
        return sse.parse_last_event_id(last_event_id)
    except ValueError as exc:
        raise invalid_field("Last-Event-ID", "must be the id of an event of this run (an integer >= 0)") from exc


def sse_response(
    request: Request,
    record: RunRecord,
    events: RunEventStream,
    stack: AsyncExitStack,
    *,
    count_outcome: bool,
    headers: dict[str, str],
    framer: Framer = sse.frame,
) -> StreamingResponse:
    """The run's events until its final one, ``framer`` deciding each event's frame (None: not sent).

    Pings keep idle connections open; after the gateway's run timeout the stream ends with an
    error the client can resume from. ``stack`` (the event subscription) is closed however it ends.
    """
    settings: GatewaySettings = request.app.state.settings
    metrics: GatewayMetrics = request.app.state.metrics

    # Counted once when the response ends, however it ends: a client that leaves mid-run is "disconnected".
    outcome = ["disconnected"]

    async def body() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + settings.run_timeout_s
        iterator = aiter(events)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome[0] = "timeout"
                yield sse.gateway_frame(
                    "error",
                    {"code": "stream_timeout", "message": "The run has not ended yet; reconnect to keep following it."},
                )
                return
            try:
                event = await asyncio.wait_for(anext(iterator), timeout=min(left, settings.sse_ping_s))
            except TimeoutError:
                yield sse.PING
                continue
            except StopAsyncIteration:
                return
            if (frame := framer(event)) is not None:
                yield frame
            if event.is_final:
                # Only once the final event is handed to the client does the run count as delivered.
                outcome[0] = "success" if event.kind == "end" else "error"
                return

    async def on_close() -> None:
        try:
            await stack.aclose()
        except Exception as exc:
            log.warning("could not release a run's event subscription", run_id=record.run_id, error=str(exc))
        if count_outcome:
            metrics.run_finished(outcome[0])

    return ClosingStreamingResponse(
        body(), on_close, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )
