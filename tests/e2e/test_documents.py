"""Uploads through the mesh: one indexed in the background by the retrieval service's ingest consumer, then cited."""

from __future__ import annotations

import re
import time
import uuid

import httpx

from tests.retrieval.fixtures import documents as samples


def _completed(client: httpx.Client, accepted: httpx.Response) -> dict:
    deadline = time.monotonic() + 120
    status = accepted.json()
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(accepted.headers["location"]).json()
    return status


def test_a_pdf_is_answered_from_in_whole_sentences_under_its_heading(client: httpx.Client) -> None:
    word = f"vorpal{uuid.uuid4().hex[:6]}"
    oiling = f"The {word} anvil must be oiled every ninety days. Heavy grease gathers grit and should be avoided."
    pdf = samples.pdf(sub_paragraph=oiling)
    accepted = client.post(
        "/api/v1/documents", files=[("files", (f"{word}.pdf", pdf, "application/pdf"))], data={"wait": "false"}
    )
    assert accepted.status_code == 202, accepted.text
    status = _completed(client, accepted)
    assert status["status"] == "completed", status

    answer = client.post("/api/v1/query", json={"input": f"How often must the {word} anvil be oiled?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    cited = [c for c in body["citations"] if c["document_id"] == f"{word}.pdf"]
    assert cited, body
    assert cited[0]["metadata"]["section"] == "Anvil Handbook > Care and storage > Oiling schedule", cited
    # The sentence is quoted whole (the chunk starts at its heading, not mid-sentence), with its citation.
    n = body["citations"].index(cited[0]) + 1
    assert re.search(rf"The {word} anvil must be oiled every ninety days \[{n}\]\.", body["answer"]), body["answer"]


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
