"""Browser-facing protections: security headers on every response, CORS for the configured origins."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline_gateway.settings import GatewaySettings

# The chat page loads only its own script and style and talks only to this gateway: no CDN, no inline code.
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
]
# FastAPI's /docs page loads Swagger UI from a CDN and runs an inline script; it keeps its own policy.
_DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(_DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message.setdefault("headers", []).extend(
                    (name, value)
                    for name, value in _HEADERS
                    if name not in present and not (is_docs and name == b"content-security-policy")
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cors_origins(settings: GatewaySettings) -> list[str]:
    return [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]


def add_cors(app: FastAPI, settings: GatewaySettings) -> None:
    """Only the listed origins may call the API from a browser; none listed, no CORS headers at all."""
    origins = cors_origins(settings)
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID", "X-Request-ID"],
        expose_headers=["Location", "Content-Location", "Retry-After", "X-Request-ID", "WWW-Authenticate"],
        max_age=600,
    )
