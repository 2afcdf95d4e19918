"""Documents through the gateway into a real retrieval service: upload, list, delete, each tenant its own."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import nats
import pytest
from fastapi.testclient import TestClient
from nats.js.errors import NotFoundError
from threadline.events import Topology
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_gateway import apikeys

from tests.conftest import NATS_URL, free_port
from tests.gateway import auth_helpers as creds
from tests.gateway.conftest import _grpc_service
from tests.retrieval.fixtures import documents as samples

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
        ([("files", ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"))], 422, "invalid_document"),
        ([("files", ("notes.docx", b"PK\x03\x04 cut short", "application/octet-stream"))], 422, "invalid_document"),
        ([("files", ("empty.pdf", b"", "application/pdf"))], 422, "invalid_document"),
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


PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _chunks(retrieval_target: str, collection: str, document_id: str) -> list[pb.SearchHit]:
    with grpc.insecure_channel(retrieval_target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = pb.GetDocumentsRequest(tenant_id="default", collection=collection, document_ids=[document_id])
        return list(stub.GetDocuments(request, timeout=30).chunks)


def test_pdf_and_docx_files_are_indexed_with_their_headings_lists_and_tables(
    make_gateway: Callable[..., TestClient], retrieval_target: str
) -> None:
    gateway = make_gateway(RETRIEVAL_TARGET=retrieval_target)
    collection = f"files-{uuid.uuid4().hex[:8]}"
    files = [
        ("files", ("handbook.pdf", samples.pdf(), "application/octet-stream")),  # known by its extension
        ("files", ("handbook.docx", samples.docx(), DOCX_TYPE)),
    ]
    uploaded = gateway.post("/api/v1/documents", files=files, data={"collection": collection})
    assert uploaded.status_code == 201, uploaded.text
    for name, content_type in (("handbook.pdf", PDF_TYPE), ("handbook.docx", DOCX_TYPE)):
        chunks = _chunks(retrieval_target, collection, name)
        assert chunks and all(c.metadata["content_type"] == content_type for c in chunks)
        care = [c for c in chunks if c.metadata["section"] == "Anvil Handbook > Care and storage"]
        text = "\n".join(c.text for c in care)
        # The title holds no text of its own: its line opens the first chunk of the section below it.
        assert care[0].text.startswith("# Anvil Handbook\n\n## Care and storage\n\nAnvils rust when"), care[0].text
        assert "- Oil the horn once a week." in text and "| Forge 80 | 80 kg | 650 EUR |" in text
        oiling = [c for c in chunks if c.metadata["section"].endswith("> Oiling schedule")]
        assert oiling and oiling[0].text.startswith("### Oiling schedule\n\nLight oil")


def test_an_unreadable_file_in_the_background_fails_its_ingestion_with_the_reason(
    make_gateway: Callable[..., TestClient], consuming_retrieval: str
) -> None:
    gateway = make_gateway(RETRIEVAL_TARGET=consuming_retrieval)
    good = gateway.post(
        "/api/v1/documents", files=[("files", ("handbook.pdf", samples.pdf(), PDF_TYPE))], data={"wait": "false"}
    )
    assert good.status_code == 202, good.text
    done = _finished(gateway, good.headers["location"])
    assert done["status"] == "completed" and done["documents"][0]["chunks"] >= 2, done

    files = [("files", ("ok.txt", b"Fine words.", "text/plain")), ("files", ("broken.pdf", b"%PDF-1.4 junk", PDF_TYPE))]
    queued = gateway.post("/api/v1/documents", files=files, data={"wait": "false"})
    assert queued.status_code == 202, queued.text
    failed = _finished(gateway, queued.headers["location"])
    assert (failed["status"], failed["error"]["code"]) == ("failed", "invalid_request"), failed
    assert "broken.pdf" in failed["error"]["message"] and "not a readable PDF" in failed["error"]["message"]
    # Nothing of a refused ingest is stored, not even its readable file.
    assert [d["id"] for d in gateway.get("/api/v1/documents").json()["documents"]] == ["handbook.pdf"]


class _Site(BaseHTTPRequestHandler):
    """A small web server for URL fetches: pages, a large file, a wrong type, a redirect away, a slow page."""

    pages = {
        "/guide.html": ("text/html; charset=utf-8", samples.html().encode()),
        "/handbook.pdf": (PDF_TYPE, samples.pdf()),
        "/big.txt": ("text/plain", b"x" * 5000),
        "/photo.png": ("image/png", b"\x89PNG\r\n"),
    }

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)  # the gateway has given up by now: nothing to answer
            return
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/guide.html")
            self.end_headers()
            return
        if self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/guide.html")
            self.end_headers()
            return
        if self.path not in self.pages:
            self.send_error(404)
            return
        content_type, body = self.pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if self.path != "/big.txt":  # sent without a length: the limit holds as it is read
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_fetching_urls_is_off_unless_hosts_are_allowed(make_gateway: Callable[..., TestClient], site: str) -> None:
    gateway = make_gateway()
    reply = gateway.post("/api/v1/documents/urls", json={"urls": [f"{site}/guide.html"]})
    assert (reply.status_code, reply.json()["error"]["code"]) == (403, "url_fetch_disabled"), reply.text


def test_documents_are_fetched_from_allowed_hosts_within_limits(
    make_gateway: Callable[..., TestClient], retrieval_target: str, site: str
) -> None:
    gateway = make_gateway(
        RETRIEVAL_TARGET=retrieval_target,
        GATEWAY_URL_FETCH_HOSTS="127.0.0.1, example.invalid",
        GATEWAY_URL_FETCH_MAX_BYTES="4096",
        GATEWAY_URL_FETCH_TIMEOUT_S="1",
    )
    collection = f"web-{uuid.uuid4().hex[:8]}"
    urls = [f"{site}/guide.html", f"{site}/handbook.pdf#page=1", f"{site}/moved"]
    fetched = gateway.post("/api/v1/documents/urls", json={"urls": urls, "collection": collection})
    assert fetched.status_code == 201, fetched.text
    assert [d["id"] for d in fetched.json()["documents"]] == [f"{site}/guide.html", f"{site}/handbook.pdf", urls[2]]
    (first, *_) = _chunks(retrieval_target, collection, f"{site}/guide.html")
    assert first.metadata["source_url"] == f"{site}/guide.html" and first.metadata["filename"] == "guide.html"
    assert first.metadata["section"] == "Anvil Handbook > Care and storage"
    assert _chunks(retrieval_target, collection, urls[2])[0].metadata["source_url"] == f"{site}/guide.html"

    cases = [
        ("http://other.test/x.html", 403, "host_not_allowed"),
        (f"{site}/away", 403, "host_not_allowed"),  # a redirect to a host not allowed is not followed
        ("ftp://127.0.0.1/x.txt", 422, "invalid_url"),
        (f"{site}/missing", 422, "fetch_failed"),
        (f"{site}/photo.png", 415, "unsupported_media_type"),
        (f"{site}/big.txt", 413, "payload_too_large"),
        (f"{site}/slow", 504, "fetch_timeout"),
        (f"http://127.0.0.1:{free_port()}/gone.html", 502, "fetch_failed"),
    ]
    for url, status, code in cases:
        reply = gateway.post("/api/v1/documents/urls", json={"urls": [url], "collection": collection})
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), (url, reply.text)
    listed = gateway.get("/api/v1/documents", params={"collection": collection}).json()
    assert listed["total"] == 3


def test_an_upload_names_its_uploader_so_erasing_them_deletes_it(
    make_gateway: Callable[..., TestClient], retrieval_target: str
) -> None:
    """A JWT caller's documents carry their subject as ``user_id``, the filter a user's erasure deletes by
    (the retrieval service's ``erase`` deletes each collection's documents matching it, as below)."""
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET, RETRIEVAL_TARGET=retrieval_target)
    collection = f"c{uuid.uuid4().hex[:8]}"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    ana = creds.bearer(creds.hs256(tenant=tenant, sub="ana.lima@example.com"))
    note = ("note.md", b"# Note\n\nThe blue valve is bled weekly.", "text/markdown")
    uploaded = gateway.post("/api/v1/documents", files=[("files", note)], data={"collection": collection}, headers=ana)
    assert uploaded.status_code == 201, uploaded.text
    listed = gateway.get("/api/v1/documents", params={"collection": collection}, headers=ana).json()
    assert listed["documents"][0]["metadata"]["user_id"] == "ana.lima@example.com"

    async def erase() -> None:
        async with grpc.aio.insecure_channel(retrieval_target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            only_ana = {"user_id": "ana.lima@example.com"}
            await stub.DeleteDocuments(
                pb.DeleteDocumentsRequest(tenant_id=tenant, collection=collection, filter=only_ana)
            )

    asyncio.run(erase())
    assert gateway.get("/api/v1/documents", params={"collection": collection}, headers=ana).json()["documents"] == []
