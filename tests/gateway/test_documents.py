"""Documents through the gateway into a real retrieval service: upload, list, delete, each tenant its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from fastapi.testclient import TestClient
from nats.js.errors import NotFoundError
from threadline.events import Topology
from threadline_gateway import apikeys

from tests.conftest import NATS_URL, free_port
from tests.gateway.conftest import _grpc_service

FRENCH = [("files", ("foin.txt", b"Les chevaux mangeaient du foin.", "text/plain"))]
ENGLISH = [("files", ("hay.txt", b"The horses ate hay.", "text/plain"))]
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


def _queued_ingests(namespace: str) -> int:
    """How many ingest requests wait on the namespace's INGEST stream."""

    async def count() -> int:
        nc = await nats.connect(NATS_URL)
        try:
            return (await nc.jetstream().stream_info(Topology(namespace).ingest_stream)).state.messages
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


def _finished(gateway: TestClient, status_url: str, headers: dict | None = None) -> dict:
    """The ingestion's status once it has completed or failed (the retrieval service consumes it)."""
    deadline = time.monotonic() + 120
    status = gateway.get(status_url, headers=headers).json()
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = gateway.get(status_url, headers=headers).json()
    return status


def test_a_collections_language_is_set_by_its_first_upload_and_another_is_a_409(tenants) -> None:
    gateway, acme, _ = tenants
    made = gateway.post(
        "/api/v1/documents", headers=acme, files=FRENCH, data={"collection": "fr", "language": "French"}
    )
    assert made.status_code == 201, made.text

    refused = gateway.post(
        "/api/v1/documents", headers=acme, files=ENGLISH, data={"collection": "fr", "language": "english"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "conflict"), refused.text
    assert "is in french, not english" in refused.json()["error"]["message"]
    # Naming no language adds to the collection in the one it was made with.
    added = gateway.post("/api/v1/documents", headers=acme, files=ENGLISH, data={"collection": "fr"})
    assert added.status_code == 201, added.text
    listed = gateway.get("/api/v1/documents", headers=acme, params={"collection": "fr"}).json()
    assert [d["id"] for d in listed["documents"]] == ["foin.txt", "hay.txt"]


@pytest.mark.parametrize("wait", ["true", "false"])
def test_an_unknown_language_is_a_422_and_nothing_is_stored_or_queued(tenants, nats_namespace: str, wait: str) -> None:
    gateway, acme, _ = tenants
    files = [("files", ("a.txt", b"Anvils.", "text/plain"))]
    reply = gateway.post("/api/v1/documents", headers=acme, files=files, data={"language": "klingon", "wait": wait})
    assert (reply.status_code, reply.json()["error"]["code"]) == (422, "validation_error"), reply.text
    (field,) = reply.json()["error"]["details"]["fields"]
    assert field["field"] == "language" and "unknown language 'klingon'; one of:" in field["message"]
    assert "french" in field["message"]
    assert gateway.get("/api/v1/documents", headers=acme).json()["total"] == 0
    assert _queued_ingests(nats_namespace) == 0


@pytest.fixture
def consuming_retrieval(nats_namespace: str, tmp_path: Path) -> Iterator[str]:
    """A real retrieval service that also consumes this test's namespace's ingest stream, as deployed."""
    port = free_port()
    env = {"RETRIEVAL_PORT": str(port), "RETRIEVAL_DATA_DIR": str(tmp_path / "kb")}
    yield from _grpc_service("threadline_retrieval", port, NATS_URL=NATS_URL, NATS_NAMESPACE=nats_namespace, **env)


def test_a_background_upload_carries_its_language_and_a_conflict_fails_the_ingestion(
    make_gateway: Callable[..., TestClient], consuming_retrieval: str
) -> None:
    gateway = make_gateway(RETRIEVAL_TARGET=consuming_retrieval)
    queued = gateway.post(
        "/api/v1/documents", files=FRENCH, data={"collection": "fr", "language": "french", "wait": "false"}
    )
    assert queued.status_code == 202, queued.text
    assert _finished(gateway, queued.headers["location"])["status"] == "completed"
    # The queued request carried the language: the collection is French, so English is refused.
    refused = gateway.post("/api/v1/documents", files=ENGLISH, data={"collection": "fr", "language": "english"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "conflict"), refused.text

    queued = gateway.post(
        "/api/v1/documents", files=ENGLISH, data={"collection": "fr", "language": "english", "wait": "false"}
    )
    assert queued.status_code == 202, queued.text
    failed = _finished(gateway, queued.headers["location"])
    assert (failed["status"], failed["error"]["code"]) == ("failed", "language_mismatch"), failed
    assert "is in french, not english" in failed["error"]["message"]
    assert [d["id"] for d in gateway.get("/api/v1/documents", params={"collection": "fr"}).json()["documents"]] == [
        "foin.txt"
    ]
