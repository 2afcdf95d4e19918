"""``/api/v1/ws``: runs over one WebSocket, many at once, each message its own conversation turn.

Protocol (JSON messages, text or UTF-8 binary; also summarised in the OpenAPI description):

client -> server
  {"type": "query", "input": "..." | {...}, "thread_id"?: "...", "assistant_id"?: "...", "config"?: {...},
   "context"?: {...}, "collection"?: "...", "filter"?: {...}, "ref"?: "..."}  # input: a question, or JSON
  {"type": "resume", "run_id": "...", "after_seq"?: -1, "ref"?: "..."}
server -> client
  {"type": "accepted", "ref", "run_id", "thread_id", "assistant_id"}
  {"type": "event", "run_id", "seq", "kind", "data"}           # the run's events, in order, final one last
  {"type": "error", "ref"?, "run_id"?, "error": {"code", "message", "details"?}}

Multiplexing: every ``query`` starts its own run, and every event names its ``run_id``, so a client
may have several runs in flight on one connection (up to GATEWAY_WS_MAX_RUNS) and tell their events
apart; two turns of one thread should be sent one after the other, as over HTTP. A message larger
than GATEWAY_WS_MAX_MESSAGE_BYTES closes the connection with 1009; any other bad message is answered
with an ``error`` message and the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from threadline_gateway import ratelimit
from threadline_gateway.audit import audit_log, who
from threadline_gateway.auth import WS_TRY_AGAIN_LATER, WS_UNAUTHENTICATED, Principal, websocket_credential
from threadline_gateway.deps import Auth, Bus, RateLimiter, Settings, Starter
from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.metrics import RunOutcomeLabel
from threadline_gateway.ratelimit import Limiter
from threadline_gateway.run_bus import RunBus, RunEventStream
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.run_starter import NewRun, RunStarter
from threadline_gateway.schemas import WsMessage, WsQuery, WsResume
from threadline_gateway.settings import GatewaySettings

router = APIRouter()
log = structlog.get_logger("threadline.gateway")

MESSAGE_TOO_BIG = 1009
_messages: TypeAdapter[WsQuery | WsResume] = TypeAdapter(WsMessage)


class _Connection:
    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        settings: GatewaySettings,
        starter: RunStarter,
        bus: RunBus,
        limiter: Limiter,
    ) -> None:
        self.ws, self.principal, self.settings = websocket, principal, settings
        self.starter, self.bus, self.limiter = starter, bus, limiter
        self.runs: dict[str, asyncio.Task[None]] = {}
        # Several runs' tasks write to one socket; a lock keeps each JSON message whole.
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self.ws.application_state is WebSocketState.CONNECTED:
                await self.ws.send_text(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    async def refuse(self, ref: str | None, code: str, message: str, **details: Any) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = details
        await self.send({"type": "error", "ref": ref, "error": error})

    async def serve(self) -> None:
        try:
            while True:
                raw = await self._receive()
                if raw is None:
                    return
                await self._handle(raw)
        finally:
            for task in self.runs.values():
                task.cancel()
            if self.runs:
                await asyncio.gather(*self.runs.values(), return_exceptions=True)

    async def _receive(self) -> str | bytes | None:
        """The next message, or None once the client has gone or has been closed for an oversized message."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
        if size > self.settings.ws_max_message_bytes:
            await self.ws.close(MESSAGE_TOO_BIG, f"message larger than {self.settings.ws_max_message_bytes} bytes")
            return None
        return raw

    async def _handle(self, raw: str | bytes) -> None:
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
            await self.refuse(None, "bad_request", "A message must be one JSON object.")
            return
        ref = payload.get("ref") if isinstance(payload, dict) and isinstance(payload.get("ref"), str) else None
        try:
            message = _messages.validate_python(payload)
        except ValidationError as exc:
            fields = [
                # The union's tag leads each error's location; the client only named the field.
                {"field": ".".join(str(p) for p in _field_path(err["loc"])) or "message", "message": err["msg"]}
                for err in exc.errors()
            ]
            await self.refuse(ref, "validation_error", "The message is not valid.", fields=fields)
            return
        if len(self.runs) >= self.settings.ws_max_runs:
            await self.refuse(
                ref, "too_many_runs", f"At most {self.settings.ws_max_runs} runs at once on one connection."
            )
            return
        try:
            if isinstance(message, WsQuery):
                # Each question counts against the caller's limits, as it would over HTTP.
                await ratelimit.check(self.limiter, self.principal, self.settings)
            with nats_errors_as_503():
                if isinstance(message, WsQuery):
                    await self._start(message)
                else:
                    await self._resume(message)
        except ApiError as exc:
            await self.refuse(ref, exc.code, exc.message, **exc.details)

    async def _start(self, message: WsQuery) -> None:
        run = await self.starter.start(self.principal, NewRun.of(message), "websocket")
        audit_log.info("websocket run", route="/api/v1/ws", run_id=run.record.run_id, **who(self.ws.scope))
        subscription = AsyncExitStack()
        events = await subscription.enter_async_context(run.follow())
        record = run.record
        accepted = {"run_id": record.run_id, "thread_id": record.thread_id, "assistant_id": record.assistant_id}
        try:
            # Sent before the relay starts, so it precedes the run's first event.
            await self.send({"type": "accepted", "ref": message.ref, **accepted})
        except BaseException:
            await subscription.aclose()
            raise
        self._relay(run, events, subscription)

    async def _resume(self, message: WsResume) -> None:
        record = await self.bus.lookup(message.run_id, self.principal.tenant_id)
        if record is None:
            raise ApiError(404, "not_found", f"No run {message.run_id!r}.")
        if record.run_id in self.runs:
            raise ApiError(409, "already_following", "This connection already follows that run.")
        run = RunHandle(record, self.bus)
        subscription = AsyncExitStack()
        events = await subscription.enter_async_context(run.follow(message.after_seq))
        self._relay(run, events, subscription)

    def _relay(self, run: RunHandle, events: RunEventStream, subscription: AsyncExitStack) -> None:
        """Send the run's events from a task of its own, so the connection keeps reading other messages."""
        run_id = run.record.run_id

        async def relay() -> None:
            outcome: RunOutcomeLabel = "disconnected"
            try:
                async with asyncio.timeout(self.settings.run_timeout_s):
                    async for event in events:
                        await self.send({"type": "event", **event.model_dump(exclude={"schema_version"})})
                        if event.is_final:
                            outcome = "success" if event.kind == "end" else "error"
            except TimeoutError:
                outcome = "timeout"
                await self.send(
                    {
                        "type": "error",
                        "run_id": run_id,
                        "error": {"code": "stream_timeout", "message": "The run has not ended yet; resume to follow."},
                    }
                )
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the client left; the run goes on and can be resumed
            except Exception as exc:  # a task nobody awaits must not die with an unseen error
                log.warning("relaying a run's events failed", run_id=run_id, error=repr(exc))
            finally:
                self.runs.pop(run_id, None)
                await subscription.aclose()
                run.finished(outcome)

        self.runs[run_id] = asyncio.create_task(relay())


def _field_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return loc[1:] if loc and loc[0] in ("query", "resume") else loc


@router.websocket("/api/v1/ws")
async def websocket_runs(
    websocket: WebSocket,
    authenticator: Auth,
    settings: Settings,
    starter: Starter,
    bus: Bus,
    limiter: RateLimiter,
) -> None:
    # Authenticated during the handshake: a refused client is closed with 4001 before any message is read.
    credential, subprotocol = websocket_credential(websocket)
    try:
        principal = await authenticator.authenticate(credential)
    except ApiError as exc:
        await websocket.accept(subprotocol=subprotocol)
        code = WS_UNAUTHENTICATED if exc.status == 401 else WS_TRY_AGAIN_LATER
        await websocket.close(code, exc.message[:120])
        audit_log.info(
            "websocket refused", route="/api/v1/ws", close_code=code, reason=exc.code, **who(websocket.scope)
        )
        return
    websocket.state.principal = principal  # for the audit log, which reads it from the scope
    await websocket.accept(subprotocol=subprotocol)
    audit_log.info("websocket opened", route="/api/v1/ws", **who(websocket.scope))
    try:
        await _Connection(websocket, principal, settings, starter, bus, limiter).serve()
    except WebSocketDisconnect:
        pass
