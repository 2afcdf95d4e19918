"""Uploads through the mesh: one indexed in the background by the retrieval service's ingest consumer, then cited."""

from __future__ import annotations

import time
import uuid

import httpx


def test_a_background_upload_is_indexed_and_then_answers(client: httpx.Client) -> None:
    word = f"zorblax{uuid.uuid4().hex[:6]}"
    note = f"# Zorblax\n\nThe {word} valve must be bled every ninety days.".encode()
    accepted = client.post(
        "/api/v1/documents", files=[("files", (f"{word}.md", note, "text/markdown"))], data={"wait": "false"}
    )
    assert accepted.status_code == 202, accepted.text

    deadline = time.monotonic() + 120
    status = accepted.json()
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(accepted.headers["location"]).json()
    assert status["status"] == "completed", status
    assert status["documents_done"] == status["documents_total"] == 1
    assert [d["id"] for d in status["documents"]] == [f"{word}.md"] and status["documents"][0]["chunks"] >= 1

    answer = client.post("/api/v1/query", json={"input": f"How often must the {word} valve be bled?"})
    assert answer.status_code == 200, answer.text
    assert f"{word}.md" in {c["document_id"] for c in answer.json()["citations"]}
