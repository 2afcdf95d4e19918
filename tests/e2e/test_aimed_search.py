"""A question aimed at one collection and a metadata filter, through the mesh: its citations come from there only."""

from __future__ import annotations

import uuid

import httpx
import openai

from tests.e2e.conftest import Mesh


def _upload(client: httpx.Client, collection: str, names: list[str], word: str) -> None:
    files = [
        (
            "files",
            (name, f"# {name}\n\nThe {word} valve of {name} is bled every ninety days.".encode(), "text/markdown"),
        )
        for name in names
    ]
    uploaded = client.post("/api/v1/documents", files=files, data={"collection": collection})
    assert uploaded.status_code == 201, uploaded.text


def _cited(reply: httpx.Response) -> set[str]:
    assert reply.status_code == 200, reply.text
    return {c["document_id"] for c in reply.json()["citations"]}


def test_an_aimed_question_is_answered_from_its_collection_and_filter_only(client: httpx.Client, mesh: Mesh) -> None:
    word, tag = f"quillon{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    plant, office = f"plant-{tag}", f"office-{tag}"
    _upload(client, plant, ["pumps.md", "boilers.md"], word)
    _upload(client, office, ["kettles.md"], word)
    question = f"How often is the {word} valve bled?"

    assert _cited(client.post("/api/v1/query", json={"input": question, "collection": plant})) == {
        "pumps.md",
        "boilers.md",
    }
    aimed = {"input": question, "collection": plant, "filter": {"filename": "boilers.md"}}
    assert _cited(client.post("/api/v1/query", json=aimed)) == {"boilers.md"}
    # The same question aimed elsewhere is answered from there (never from an answer found in the plant).
    assert _cited(client.post("/api/v1/query", json={"input": question, "collection": office})) == {"kettles.md"}
    # Unaimed, it searches the default collection, which holds none of these.
    assert not _cited(client.post("/api/v1/query", json={"input": question})) & {"pumps.md", "boilers.md", "kettles.md"}

    with openai.OpenAI(base_url=f"{mesh.url}/v1", api_key="local", max_retries=0, timeout=120) as chat:
        completion = chat.chat.completions.create(
            model="agent", messages=[{"role": "user", "content": question}], extra_body={"collection": office}
        )
    assert {c["document_id"] for c in completion.model_extra["citations"]} == {"kettles.md"}

    missing = client.post("/api/v1/query", json={"input": question, "collection": f"nowhere-{tag}"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "collection_not_found")
