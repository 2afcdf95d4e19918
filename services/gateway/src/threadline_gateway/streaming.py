"""The one SSE streamer: a run's events to a client until the final one, however its API frames them.

The v1 API, the LangGraph-compatible API and the OpenAI-compatible API differ only in their frames
(a :class:`Framing`); the deadline, the pings, counting the outcome and releasing the subscription
are the same, and are here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol

import structlog
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from threadline.run_events import RunEvent

from threadline_gateway import sse
from threadline_gateway.errors import invalid_field, nats_errors_as_503
from threadline_gateway.metrics import RunOutcomeLabel
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.settings import GatewaySettings

log = structlog.get_logger("threadline.gateway")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of a live stream


class Framing(Protocol):
    """How one API writes a run's stream."""

    def opening(self) -> bytes:
        """Sent before the first event; empty for nothing."""
        ...

    async def frame(self, event: RunEvent) -> bytes | None:
        """The bytes for ``event``, or None when this API sends nothing for it."""
        ...

    def timed_out(self) -> bytes:
        """Sent when the gateway stops waiting for a run that has not ended."""
        ...


class V1Frames:
    """The v1 API's stream: every event as the agent published it, ``id:`` its seq."""

    def opening(self) -> bytes:
        return b""

    async def frame(self, event: RunEvent) -> bytes | None:
        return sse.frame(event)

    def timed_out(self) -> bytes:
        message = "The run has not ended yet; reconnect to keep following it."
        return sse.gateway_frame("error", {"code": "stream_timeout", "message": message})


class ClosingStreamingResponse(StreamingResponse):
    """Calls ``on_close`` once the response is over, even when the client leaves before the first byte.

    A generator's own ``finally`` would not run if Starlette cancels the response before iterating it.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
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


async def sse_response(
    run: RunHandle,
    settings: GatewaySettings,
    *,
    headers: Mapping[str, str],
    framing: Framing | None = None,
    after_seq: int = -1,
) -> StreamingResponse:
    """The run's events after ``after_seq`` until its final one, framed by ``framing`` (the v1 API's by default).

    Subscribes before answering, so NATS being down is the client's 503 rather than a broken stream.
    Pings keep an idle connection open; after the gateway's run timeout the stream ends with a
    frame the client can reconnect from. The subscription is released however the response ends.
    """
    framing = framing or V1Frames()
    subscription = AsyncExitStack()
    try:
        with nats_errors_as_503():
            events = await subscription.enter_async_context(run.follow(after_seq))
    except BaseException:
        await subscription.aclose()
        raise
    # Counted once when the response ends, however it ends: a client that leaves mid-run is "disconnected".
    outcome: RunOutcomeLabel = "disconnected"

    async def body() -> AsyncIterator[bytes]:
        nonlocal outcome
        if opening := framing.opening():
            yield opening
        deadline = time.monotonic() + settings.run_timeout_s
        iterator = aiter(events)
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(anext(iterator), timeout=min(left, settings.sse_ping_s))
            except TimeoutError:
                yield sse.PING
                continue
            except StopAsyncIteration:
                return
            if (frame := await framing.frame(event)) is not None:
                yield frame
            if event.is_final:
                # Only once the final event is handed to the client does the run count as delivered.
                outcome = "success" if event.kind == "end" else "error"
                return
        outcome = "timeout"
        yield framing.timed_out()

    async def on_close() -> None:
        try:
            await subscription.aclose()
        except Exception as exc:
            log.warning("could not release a run's event subscription", run_id=run.record.run_id, error=str(exc))
        run.finished(outcome)

    return ClosingStreamingResponse(
        body(), on_close, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )
