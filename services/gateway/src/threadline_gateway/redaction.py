"""PII masked in every response of the API, whatever route, format or stored copy a run's content comes from.

Run events are redacted by the agent as it publishes them, but a run's content also leaves through
thread state and history (raw checkpoints), stored answers, feedback, documents and MCP results.
Rather than a filter per route, this middleware rewrites what leaves the gateway: JSON bodies,
each server-sent event's ``data`` and each WebSocket text message, parsed, with every string value
masked by :func:`threadline.pii.redact_pii`, except values of keys that name things (``*_id``,
``*_at``, ``status``, ...), which clients must get back exactly. It works on parsed JSON, never
on the raw bytes: a number such as ``0.4111111111111111`` holds a Luhn-valid run of digits.
Which tenants it applies to is a setting (``GATEWAY_REDACT_PII``, ``GATEWAY_REDACT_PII_TENANTS``).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from threadline.pii import redact_pii

from threadline_gateway.audit import AUDITED_PREFIXES

_NAMING_KEYS = frozenset(
    {"id", "object", "kind", "type", "event", "status", "role", "model", "mode", "next", "code", "checkpoint_ns"}
)


def _names_something(key: str) -> bool:
    return key in _NAMING_KEYS or key.endswith(("_id", "_ids", "_at"))


def redacted(value: Any) -> Any:
    """``value`` (parsed JSON) with PII masked in its strings, but for the values of keys that name things."""
    if isinstance(value, str):
        return redact_pii(value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: v if _names_something(k) else redacted(v) for k, v in value.items()}
    return value


def _redacted_json(text: str) -> str | None:
    """The JSON document ``text``, redacted; None if it is not JSON (then it is passed on as it is)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(redacted(value), separators=(",", ":"), ensure_ascii=False)


def _redacted_event(event: str) -> str:
    """One server-sent event: its ``data`` lines joined, redacted as JSON and sent as one line."""
    lines = event.split("\n")
    data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
    if not data:
        return event
    masked = _redacted_json("\n".join(data))
    if masked is None:  # [DONE] and other plain text: still masked, line by line
        masked_lines = [f"data: {redact_pii(d)}" for d in data]
    else:
        masked_lines = [f"data: {masked}"]
    others = [line for line in lines if not line.startswith("data:")]
    return "\n".join([*others, *masked_lines])


class _EventStream:
    """Reframes an SSE body that arrives in arbitrary chunks: only whole events are rewritten and sent."""

    def __init__(self) -> None:
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # a chunk may end inside a character

    def feed(self, chunk: bytes) -> bytes:
        self._pending += self._decoder.decode(chunk)
        *complete, self._pending = self._pending.split("\n\n")
        return "".join(_redacted_event(event) + "\n\n" for event in complete).encode()

    def flush(self) -> bytes:
        rest, self._pending = self._pending, ""
        return _redacted_event(rest).encode() if rest else b""


class RedactionMiddleware:
    """Masks PII in the API's JSON, SSE and WebSocket replies for the tenants the settings name."""

    def __init__(self, app: ASGIApp, *, default: bool, tenants: dict[str, bool]) -> None:
        self.app = app
        self.default = default
        self.tenants = tenants

    def _applies(self, scope: Scope) -> bool:
        principal = scope.get("state", {}).get("principal")
        if principal is None:  # refused before authentication: an error body, redacted all the same
            return self.default
        return self.tenants.get(principal.tenant_id, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(AUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not (self.default or any(self.tenants.values())):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, self._websocket_send(scope, send))
            return
        await self.app(scope, receive, self._http_send(scope, send))

    def _websocket_send(self, scope: Scope, send: Send) -> Send:
        async def masked(message: Message) -> None:
            if message["type"] == "websocket.send" and message.get("text") and self._applies(scope):
                message = {**message, "text": _redacted_json(message["text"]) or redact_pii(message["text"])}
            await send(message)

        return masked

    def _http_send(self, scope: Scope, send: Send) -> Send:
        start: Message | None = None
        mode = "pass"  # pass | json (buffered whole) | sse (event by event)
        body: list[bytes] = []
        events = _EventStream()

        async def masked(message: Message) -> None:
            nonlocal start, mode
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(raw=message["headers"]).get("content-type", "")
                if not self._applies(scope):
                    mode = "pass"
                elif content_type.startswith("application/json"):
                    mode = "json"
                elif content_type.startswith("text/event-stream"):
                    mode = "sse"
                if mode == "json":
                    start = message  # sent once the body is whole: its length changes
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or mode == "pass":
                await send(message)
                return
            more = message.get("more_body", False)
            if mode == "sse":
                out = events.feed(message.get("body", b""))
                if not more:
                    out += events.flush()
                await send({"type": "http.response.body", "body": out, "more_body": more})
                return
            body.append(message.get("body", b""))
            if more:
                return
            raw = b"".join(body)
            masked_text = _redacted_json(raw.decode()) if raw else None
            out = masked_text.encode() if masked_text is not None else raw
            assert start is not None  # a body follows its start
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["content-length"] = str(len(out))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": out, "more_body": False})

        return masked
