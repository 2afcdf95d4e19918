"""Reranking over real gRPC: a cross-encoder on ONNX Runtime, the chat model over real HTTP, and a
reranker that fails, which must never fail the search."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline_gateway.mcp.tools import run_knowledge_tool
from threadline_retrieval.rerank import CrossEncoder, RerankError, Reranking, parse_scores
from threadline_retrieval.settings import RetrievalSettings

from tests.conftest import free_port
from tests.retrieval import cross_encoder
from tests.retrieval.chat_server import ScoringModel, serve_scoring_model
from tests.retrieval.conftest import Server

# Keyword search ranks the seal first (it says "fridge door seal" twice); the tiny cross-encoder and the
# scripted chat model rank by how often a passage says "zebra": the magnet (3), the note (1), the seal (0).
DOCS = [
    pb.Document(id="seal.txt", text="The fridge door seal keeps the fridge door seal tight and the fridge cold."),
    pb.Document(id="magnet.txt", text="A zebra, a zebra: a fridge magnet of a zebra."),
    pb.Document(id="note.txt", text="A note on the fridge door about a zebra."),
]
QUERY = "fridge door seal"
# Generous, so that a busy machine never turns a working reranker into a fallback; the slow case sets its own.
PATIENT = {"RETRIEVAL_RERANK_TIMEOUT_S": 120}
FUSED = ["seal.txt", "note.txt", "magnet.txt"]
RERANKED = ["magnet.txt", "note.txt", "seal.txt"]


async def _ingest(stub) -> None:
    await stub.Ingest(pb.IngestRequest(tenant_id="acme", documents=DOCS))


async def _search(stub, query: str = QUERY, **kwargs) -> pb.SearchResponse:
    kwargs = {"mode": pb.SEARCH_MODE_KEYWORD, "k": 3, **kwargs}
    return await stub.Search(pb.SearchRequest(tenant_id="acme", query=query, **kwargs))


def _ids(reply: pb.SearchResponse) -> list[str]:
    return [hit.document_id for hit in reply.hits]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return cross_encoder.build(tmp_path / "tiny-cross-encoder")


async def test_a_cross_encoder_reorders_every_query_search_when_configured(
    start_retrieval: Server, model_dir: Path
) -> None:
    async with start_retrieval(RETRIEVAL_RERANKER="cross-encoder", RETRIEVAL_RERANK_MODEL=model_dir, **PATIENT) as stub:
        await _ingest(stub)
        plain = await _search(stub, rerank=False)
        for mode in (pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID, pb.SEARCH_MODE_DENSE):
            reply = await _search(stub, mode=mode)
            assert reply.reranked
            assert _ids(reply) == RERANKED
            assert [hit.score for hit in reply.hits] == [cross_encoder.expected_score(h.text) for h in reply.hits]
        top = await _search(stub, k=1)
        # k=1 still reranks RETRIEVAL_RERANK_TOP_N candidates, not just the first.
        assert top.reranked and _ids(top) == ["magnet.txt"]
        # min_score compares with the reranker's scores.
        assert _ids(await _search(stub, min_score=0.5)) == ["magnet.txt", "note.txt"]
    assert not plain.reranked
    assert _ids(plain) == FUSED


async def test_a_two_class_cross_encoder_scores_by_its_relevant_class(start_retrieval: Server, tmp_path: Path) -> None:
    model = cross_encoder.build(tmp_path / "two-class", two_classes=True)
    settings = {"RETRIEVAL_RERANK_MODEL": model / "model.onnx", **PATIENT}
    async with start_retrieval(RETRIEVAL_RERANKER="cross-encoder", **settings) as stub:
        await _ingest(stub)
        assert _ids(await _search(stub)) == RERANKED


async def test_reranking_is_off_by_default_and_cannot_be_asked_of_a_service_without_it(retrieval) -> None:
    await _ingest(retrieval)
    reply = await _search(retrieval)
    assert not reply.reranked and _ids(reply) == FUSED
    assert _ids(await _search(retrieval, rerank=False)) == FUSED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _search(retrieval, rerank=True)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no reranker" in (refused.value.details() or "")


async def test_a_vector_search_is_not_reranked(start_retrieval: Server, model_dir: Path, embedder) -> None:
    async with start_retrieval(RETRIEVAL_RERANKER="cross-encoder", RETRIEVAL_RERANK_MODEL=model_dir, **PATIENT) as stub:
        await _ingest(stub)
        vector = (await embedder.embed([QUERY]))[0].tolist()
        reply = await stub.Search(pb.SearchRequest(tenant_id="acme", vector=vector, k=3))
        assert not reply.reranked and len(reply.hits) == 3
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Search(pb.SearchRequest(tenant_id="acme", vector=vector, k=3, rerank=True))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_chat_model_scores_all_candidates_in_one_request(start_retrieval: Server) -> None:
    async with serve_scoring_model() as model:
        settings = {"OPENAI_BASE_URL": model.base_url, "RETRIEVAL_RERANK_CHAT_MODEL": "judge-1", **PATIENT}
        async with start_retrieval(RETRIEVAL_RERANKER="chat", **settings) as stub:
            await _ingest(stub)
            reply = await _search(stub, k=2)
    assert reply.reranked
    assert _ids(reply) == RERANKED[:2]
    assert [hit.score for hit in reply.hits] == [3.0, 1.0]
    (request,) = model.requests
    assert request["model"] == "judge-1"
    prompt = request["messages"][-1]["content"]
    assert QUERY in prompt
    # Every candidate, in the search's order, though only two hits were asked for.
    assert [p.split(" ")[1] for p in ScoringModel.passages(prompt)] == ["fridge", "note", "zebra,"]


@pytest.mark.parametrize("behaviour", ["error", "garbage", "slow"])
async def test_a_failing_chat_model_leaves_the_search_in_its_own_order(start_retrieval: Server, behaviour) -> None:
    async with serve_scoring_model(ScoringModel(behaviour=behaviour)) as model:
        timeout = 0.3 if behaviour == "slow" else 120
        settings = {"OPENAI_BASE_URL": model.base_url, "RETRIEVAL_RERANK_TIMEOUT_S": timeout}
        async with start_retrieval(RETRIEVAL_RERANKER="chat", **settings) as stub:
            await _ingest(stub)
            reply = await _search(stub)
    # Tried once, no retry (a slow reply's request may not even have arrived when the search gave up on it).
    assert len(model.requests) <= 1 if behaviour == "slow" else len(model.requests) == 1
    assert not reply.reranked
    assert _ids(reply) == FUSED


async def test_an_unreachable_chat_endpoint_leaves_the_search_in_its_own_order(start_retrieval: Server) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    async with start_retrieval(RETRIEVAL_RERANKER="chat", OPENAI_BASE_URL=nobody) as stub:
        await _ingest(stub)
        reply = await _search(stub)
    assert not reply.reranked and _ids(reply) == FUSED


async def test_the_mcp_search_tool_passes_rerank_through(start_retrieval: Server, model_dir: Path) -> None:
    async with start_retrieval(RETRIEVAL_RERANKER="cross-encoder", RETRIEVAL_RERANK_MODEL=model_dir, **PATIENT) as stub:
        await _ingest(stub)
        found = {}
        for rerank in (False, True):
            arguments = {"query": QUERY, "mode": "keyword", "k": 3, "rerank": rerank}
            result = await run_knowledge_tool("search_knowledge_base", arguments, stub, "acme")
            found[rerank] = [passage.document_id for passage in result.results]  # type: ignore[attr-defined]
    assert found == {False: FUSED, True: RERANKED}


async def test_failures_and_successes_are_counted(model_dir: Path) -> None:
    class Broken:
        name = "broken"

        async def score(self, query: str, passages: list[str]) -> list[float]:
            raise ConnectionError("endpoint down")

        async def aclose(self) -> None:
            return None

    registry = CollectorRegistry()
    ranked = [(0, 0.9), (1, 0.5)]
    texts = {0: "no stripes", 1: "a zebra"}
    broken = Reranking(Broken(), registry=registry)
    assert await broken.apply("q", ranked, texts.__getitem__, 2) == (ranked, False)
    count = "threadline_retrieval_rerank_seconds_count"
    assert registry.get_sample_value(count, {"outcome": "failed"}) == 1
    assert registry.get_sample_value(count, {"outcome": "ok"}) == 0
    registry = CollectorRegistry()
    working = Reranking(CrossEncoder(model_dir), registry=registry)
    assert await working.apply("q", ranked, texts.__getitem__, 1) == ([(1, 1.0)], True)
    assert registry.get_sample_value(count, {"outcome": "ok"}) == 1
    assert registry.get_sample_value(count, {"outcome": "failed"}) == 0


def test_parse_scores_wants_one_number_per_passage() -> None:
    assert parse_scores('Here: {"scores": [3, 0.5, 10]}', 3) == [3.0, 0.5, 10.0]
    for bad in ('{"scores": [1, 2]}', "no json", '{"scores": [1, "high", 2]}', '{"scores": [true, 1, 2]}', "{oops}"):
        with pytest.raises(RerankError):
            parse_scores(bad, 3)


def test_a_reranker_needs_what_it_runs_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="RETRIEVAL_RERANK_MODEL"):
        RetrievalSettings(RETRIEVAL_RERANKER="cross-encoder")
    with pytest.raises(ValidationError, match="OPENAI_BASE_URL"):
        RetrievalSettings(RETRIEVAL_RERANKER="chat")
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        CrossEncoder(tmp_path)
