"""Documents through the gateway into a real retrieval service: upload, list, delete, each tenant its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from threadline_gateway import apikeys

MARKDOWN = b"# Billing\n\nInvoices are sent on the first day of each month.\n\n## Refunds\n\nRefunds take five days."


@pytest.fixture
def tenants(make_gateway: Callable[..., TestClient], retrieval_target: str) -> tuple[TestClient, dict, dict]:
    """One gateway with two new tenants' API keys (the retrieval service is shared); it and their headers."""
    keys = [apikeys.generate()[1] for _ in range(2)]
    names = [f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "globex")]
    static = ",".join(f"{t}:{apikeys.digest(k).hex()}" for t, k in zip(names, keys, strict=True))
    gateway = make_gateway(
        GATEWAY_AUTH="required",
        GATEWAY_API_KEYS=static,
        RETRIEVAL_TARGET=retrieval_target,
        GATEWAY_MAX_UPLOAD_BYTES=4096,
    )
    return gateway, {"X-API-Key": keys[0]}, {"X-API-Key": keys[1]}


def test_uploaded_files_are_indexed_listed_and_deleted(tenants) -> None:
    gateway, acme, globex = tenants
    files = [
        ("files", ("billing.md", MARKDOWN, "application/octet-stream")),
        ("files", ("notes", b"Plain notes without an extension.", "application/octet-stream")),
        ("files", ("page.html", b"<html><body><h1>About</h1><p>We make anvils.</p></body></html>", "text/html")),
    ]
    uploaded = gateway.post("/api/v1/documents", headers=acme, files=files)
    assert uploaded.status_code == 201, uploaded.text
    assert {d["id"]: d["status"] for d in uploaded.json()["documents"]} == {
        "billing.md": "indexed",
        "notes": "indexed",
        "page.html": "indexed",
    }
    assert next(d for d in uploaded.json()["documents"] if d["id"] == "billing.md")["chunks"] >= 1

    listed = gateway.get("/api/v1/documents", headers=acme, params={"limit": 2}).json()
    assert [d["id"] for d in listed["documents"]] == ["billing.md", "notes"] and listed["total"] == 3
    assert listed["documents"][0]["metadata"]["filename"] == "billing.md"
    assert gateway.get("/api/v1/documents", headers=globex).json()["total"] == 0

    assert gateway.delete("/api/v1/documents/notes", headers=globex).status_code == 404
    assert gateway.delete("/api/v1/documents/notes", headers=acme).status_code == 204
    assert gateway.delete("/api/v1/documents/notes", headers=acme).status_code == 404
    assert [d["id"] for d in gateway.get("/api/v1/documents", headers=acme).json()["documents"]] == [
        "billing.md",
        "page.html",
    ]


def test_bad_files_get_a_clear_error_and_nothing_is_stored(tenants) -> None:
    gateway, acme, _ = tenants
    cases = [
        ([("files", ("photo.png", b"\x89PNG\r\n", "image/png"))], 415, "unsupported_media_type"),
        ([("files", ("latin1.txt", "caf\xe9".encode("latin-1"), "text/plain"))], 422, "invalid_document"),
        ([("files", ("big.txt", b"x" * 5000, "text/plain"))], 413, "payload_too_large"),
        ([("other", ("a.txt", b"text", "text/plain"))], 422, "validation_error"),
    ]
    for files, status, code in cases:
        reply = gateway.post("/api/v1/documents", headers=acme, files=files)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), reply.text
    good_and_bad = [("files", ("ok.txt", b"fine", "text/plain")), ("files", ("bad.png", b"\x89PNG", "image/png"))]
    assert gateway.post("/api/v1/documents", headers=acme, files=good_and_bad).status_code == 415
    assert gateway.get("/api/v1/documents", headers=acme).json()["total"] == 0


def test_no_retrieval_service_is_a_503_with_retry_after(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway()  # its RETRIEVAL_TARGET is a port nobody listens on
    reply = gateway.get("/api/v1/documents")
    assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "retrieval_unavailable"


def test_a_background_upload_is_queued_and_only_its_tenant_sees_it(tenants) -> None:
    gateway, acme, globex = tenants
    files = [("files", ("a.md", MARKDOWN, "text/markdown")), ("files", ("b.txt", b"Anvils.", "text/plain"))]
    accepted = gateway.post("/api/v1/documents", headers=acme, files=files, data={"wait": "false"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (body["status"], body["documents_done"], body["documents_total"]) == ("queued", 0, 2)
    assert accepted.headers["location"] == body["status_url"]
    assert body["status_url"].endswith(f"/api/v1/documents/ingestions/{body['ingest_id']}")

    # No retrieval service consumes this namespace's ingest stream: the request waits there, durable.
    assert gateway.get(body["status_url"], headers=acme).json()["status"] == "queued"
    assert gateway.get(body["status_url"], headers=globex).status_code == 404
    assert gateway.get("/api/v1/documents/ingestions/never-was", headers=acme).status_code == 404
    assert gateway.get("/api/v1/documents/ingestions/..%2Fx", headers=acme).status_code in (404, 422)
