"""What the LangChain client adds beyond the standard suite: filters, scores, service-side embedding."""

from __future__ import annotations

import grpc
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_threadline import ThreadlineVectorStore
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

EMBEDDING = DeterministicFakeEmbedding(size=8)


def store(target: str, collection: str, **kwargs) -> ThreadlineVectorStore:
    return ThreadlineVectorStore(target, "acme", collection, kwargs.pop("embedding", EMBEDDING), **kwargs)


def test_filters_match_typed_metadata_and_it_reads_back_typed(retrieval_target: str, collection: str) -> None:
    vs = store(retrieval_target, collection)
    vs.add_texts(["alpha", "beta", "gamma"], [{"page": 1, "tags": ["a"]}, {"page": 2}, {"page": 2, "draft": True}])
    found = vs.similarity_search("beta", k=3, filter={"page": 2})
    assert sorted(d.page_content for d in found) == ["beta", "gamma"]
    assert vs.similarity_search("alpha", k=1, filter={"tags": ["a"]})[0].metadata == {"page": 1, "tags": ["a"]}
    assert vs.similarity_search("gamma", k=1, filter={"draft": True})[0].metadata == {"page": 2, "draft": True}
    vs.delete(filter={"page": 2})
    assert [d.page_content for d in vs.similarity_search("beta", k=3)] == ["alpha"]


def test_scores_are_cosine_similarities_and_relevance_is_in_unit_range(retrieval_target: str, collection: str) -> None:
    vs = store(retrieval_target, collection)
    vs.add_texts(["north", "south"], ids=["n", "s"])
    (best, score), _ = vs.similarity_search_with_score("north", k=2)
    assert (best.id, score) == ("n", pytest.approx(1.0, abs=1e-5))
    relevance = vs.similarity_search_with_relevance_scores("north", k=2)
    assert relevance[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= r <= 1.0 for _, r in relevance)
    by_vector = vs.similarity_search_by_vector(EMBEDDING.embed_query("south"), k=1)
    assert [d.id for d in by_vector] == ["s"]


def test_many_texts_travel_in_batches(retrieval_target: str, collection: str) -> None:
    vs = store(retrieval_target, collection, batch_size=3)
    ids = vs.add_texts([f"text {n}" for n in range(10)], ids=[str(n) for n in range(10)])
    assert [d.id for d in vs.get_by_ids(ids)] == ids


def test_a_collection_refuses_another_models_vectors(retrieval_target: str, collection: str) -> None:
    store(retrieval_target, collection).add_texts(["one"])
    other = store(retrieval_target, collection, embedding=DeterministicFakeEmbedding(size=8), embedding_model="other")
    with pytest.raises(grpc.RpcError) as raised:
        other.add_texts(["two"])
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_from_texts_then_search(retrieval_target: str, collection: str) -> None:
    vs = ThreadlineVectorStore.from_texts(
        ["red", "green"],
        EMBEDDING,
        [{"c": "r"}, {"c": "g"}],
        target=retrieval_target,
        tenant_id="acme",
        collection=collection,
    )
    (green,) = vs.similarity_search("green", k=1)
    assert (green.page_content, green.metadata) == ("green", {"c": "g"})
    assert vs.get_by_ids([green.id]) == [green]


async def test_afrom_texts_and_async_search(retrieval_target: str, collection: str) -> None:
    vs = await ThreadlineVectorStore.afrom_texts(
        ["red", "green"], EMBEDDING, ids=["r", "g"], target=retrieval_target, tenant_id="acme", collection=collection
    )
    assert [d.id for d in await vs.asimilarity_search("red", k=2)] == ["r", "g"]
    assert [d.id for d in await vs.asimilarity_search_by_vector(await EMBEDDING.aembed_query("green"), k=1)] == ["g"]
    await vs.aclose()


async def test_without_an_embedding_the_service_chunks_and_embeds(retrieval_target: str, collection: str) -> None:
    vs = ThreadlineVectorStore(retrieval_target, "acme", collection)
    sauce = "Simmer the tomato sauce for twenty minutes and season it with basil."
    await vs.aadd_texts([sauce, "Every run request is stored in a JetStream work queue."], ids=["sauce", "queue"])
    hits = await vs.asimilarity_search("how long does tomato sauce cook?", k=1)
    assert hits == [Document(id="sauce", page_content=sauce)]
    dense = ThreadlineVectorStore(retrieval_target, "acme", collection, search_mode="dense")
    assert (await dense.asimilarity_search_with_relevance_scores("tomato sauce", k=1))[0][0].id == "sauce"
    with pytest.raises(NotImplementedError):
        await vs.asimilarity_search_with_relevance_scores("tomato", k=1)
    await vs.aclose()


def test_documents_from_other_clients_keep_their_string_metadata(retrieval_target: str, collection: str) -> None:
    with grpc.insecure_channel(retrieval_target) as channel:
        retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(
            pb.IngestRequest(
                tenant_id="acme",
                collection=collection,
                documents=[pb.Document(id="g", text="from the gateway", metadata={"source": "upload"})],
            )
        )
    vs = ThreadlineVectorStore(retrieval_target, "acme", collection)
    assert vs.get_by_ids(["g"]) == [
        Document(id="g", page_content="from the gateway", metadata={"source": "upload", "content_type": "text/plain"})
    ]
