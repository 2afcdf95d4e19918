"""Documents embedded by the caller, and reading stored documents back by id, over real gRPC."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from threadline.retrieval.v1 import retrieval_pb2 as pb

from tests.retrieval.conftest import Server


def doc(document_id: str, text: str, vector: list[float], **metadata: str) -> pb.Document:
    return pb.Document(id=document_id, text=text, vector=vector, metadata=metadata)


DOCS = [
    doc("north", "points north", [0.0, 1.0, 0.0], side="n"),
    doc("east", "points east", [1.0, 0.0, 0.0], side="e"),
    doc("up", "points up " * 300, [0.0, 0.0, 2.0], side="u"),  # long, yet one chunk: the caller chose the unit
]


async def ingest(stub, documents=DOCS, model: str = "toy-3d", collection: str = "vectors") -> pb.IngestResponse:
    request = pb.IngestRequest(tenant_id="acme", collection=collection, documents=documents, embedding_model=model)
    return await stub.Ingest(request)


async def by_vector(stub, vector: list[float], collection: str = "vectors", k: int = 3) -> list[pb.SearchHit]:
    request = pb.SearchRequest(tenant_id="acme", collection=collection, vector=vector, k=k)
    return list((await stub.Search(request)).hits)


async def test_caller_vectors_are_stored_as_one_chunk_each_and_searched_by_vector(retrieval) -> None:
    reply = await ingest(retrieval)
    assert [(d.document_id, d.chunk_count) for d in reply.documents] == [("north", 1), ("east", 1), ("up", 1)]
    hits = await by_vector(retrieval, [0.1, 0.9, 0.0])
    assert [h.document_id for h in hits][:2] == ["north", "east"]
    assert hits[0].score == pytest.approx(0.9 / (0.1**2 + 0.9**2) ** 0.5, abs=1e-5)
    assert (await by_vector(retrieval, [0.0, 0.0, 1.0], k=1))[0].score == pytest.approx(1.0)  # stored unit length
    stats = (await retrieval.ListCollections(pb.ListCollectionsRequest(tenant_id="acme"))).collections
    assert [(c.name, c.embedding_model, c.dimension, c.embedding_model_version) for c in stats] == [
        ("vectors", "toy-3d", 3, "")
    ]


async def test_keyword_search_works_but_text_needs_the_callers_model(retrieval) -> None:
    await ingest(retrieval)
    keyword = pb.SearchRequest(tenant_id="acme", collection="vectors", query="east", mode=pb.SEARCH_MODE_KEYWORD)
    assert (await retrieval.Search(keyword)).hits[0].document_id == "east"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await retrieval.Search(pb.SearchRequest(tenant_id="acme", collection="vectors", query="east"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "toy-3d" in raised.value.details()


@pytest.mark.parametrize(
    ("documents", "model"),
    [
        ([doc("a", "x", [1.0, 0.0])], "toy-3d"),  # another dimension
        ([doc("a", "x", [1.0, 0.0, 0.0])], "toy-other"),  # another model
        ([pb.Document(id="a", text="x")], ""),  # the service's own model
    ],
)
async def test_a_collection_keeps_to_one_model(retrieval, documents, model) -> None:
    await ingest(retrieval)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest(retrieval, documents=documents, model=model)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("documents", "model", "message"),
    [
        ([doc("a", "x", [1.0, 0.0])], "", "embedding_model"),
        ([doc("a", "x", [1.0, 0.0]), pb.Document(id="b", text="y")], "m", "every document"),
        ([doc("a", "x", [1.0, 0.0]), doc("b", "y", [1.0, 0.0, 0.0])], "m", "must have 2 values"),
        ([doc("a", "x", [0.0, 0.0])], "m", "not all zeros"),
        ([pb.Document(id="a", text="x")], "m", "with vectors only"),
    ],
)
async def test_malformed_caller_vectors_are_invalid_argument(retrieval, documents, model, message) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest(retrieval, documents=documents, model=model)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


async def test_get_documents_returns_chunks_in_the_order_asked(retrieval) -> None:
    await ingest(retrieval)
    request = pb.GetDocumentsRequest(tenant_id="acme", collection="vectors", document_ids=["east", "nope", "north"])
    chunks = (await retrieval.GetDocuments(request)).chunks
    assert [(c.document_id, c.chunk_id, c.text, c.metadata["side"]) for c in chunks] == [
        ("east", "east#0", "points east", "e"),
        ("north", "north#0", "points north", "n"),
    ]
    missing = pb.GetDocumentsRequest(tenant_id="acme", collection="none", document_ids=["east"])
    assert list((await retrieval.GetDocuments(missing)).chunks) == []


async def test_service_embedded_documents_come_back_chunk_by_chunk(start_retrieval: Server) -> None:
    async with start_retrieval(CHUNK_SIZE=100, CHUNK_OVERLAP=0) as stub:
        text = " ".join(f"sentence number {n} of a long document." for n in range(20))
        await stub.Ingest(pb.IngestRequest(tenant_id="acme", documents=[pb.Document(id="long", text=text)]))
        chunks = (await stub.GetDocuments(pb.GetDocumentsRequest(tenant_id="acme", document_ids=["long"]))).chunks
        assert len(chunks) > 1
        assert [c.chunk_id for c in chunks] == [f"long#{n}" for n in range(len(chunks))]


async def test_a_caller_model_collection_reopens_after_a_restart(start_retrieval: Server, tmp_path: Path) -> None:
    async with start_retrieval(tmp_path / "kept") as stub:
        await ingest(stub)
    async with start_retrieval(tmp_path / "kept") as stub:
        assert (await by_vector(stub, [1.0, 0.0, 0.0], k=1))[0].document_id == "east"
        await ingest(stub, documents=[doc("west", "points west", [-1.0, 0.0, 0.0])])
        assert (await by_vector(stub, [-1.0, 0.0, 0.0], k=1))[0].document_id == "west"
