"""The gateway's error contract: one JSON shape with a request id, 413 enforced while reading."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from threadline_gateway.errors import ApiError, RequestContextMiddleware, install_error_handlers


class Body(BaseModel):
    text: str


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=1000)

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, str]:
        return {"text": body.text}

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise ApiError(503, "unavailable", "Try again.", headers={"Retry-After": "2"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_request_id_is_given_or_kept(client: TestClient) -> None:
    assert len(client.post("/echo", json={"text": "a"}).headers["x-request-id"]) == 32
    assert client.post("/echo", json={"text": "a"}, headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"


def test_validation_errors_name_the_field(client: TestClient) -> None:
    reply = client.post("/echo", json={"text": 1})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["fields"][0]["field"] == "text"
    assert error["request_id"] == reply.headers["x-request-id"]


def test_a_declared_oversized_body_is_refused_before_reading(client: TestClient) -> None:
    reply = client.post("/echo", json={"text": "x" * 2000})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_oversized_body_is_refused_while_reading(client: TestClient) -> None:
    reply = client.post("/echo", content=iter([b'{"text": "', b"x" * 600, b"x" * 600, b'"}']))
    assert reply.status_code == 413


def test_a_bogus_content_length_is_refused(client: TestClient) -> None:
    reply = client.post("/echo", content=b"{}", headers={"content-length": "nan"})
    assert reply.status_code == 413


def test_api_errors_keep_their_status_and_headers(client: TestClient) -> None:
    reply = client.get("/unavailable")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "unavailable"


def test_unexpected_errors_hide_their_internals(client: TestClient) -> None:
    reply = client.get("/boom")
    assert reply.status_code == 500
    assert "secret" not in reply.text
    assert reply.json()["error"]["code"] == "internal_error"
