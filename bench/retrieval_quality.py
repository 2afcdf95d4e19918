"""Retrieval quality on BEIR SciFact through the real retrieval service: nDCG@10 and recall@100 per mode.

``python -m bench retrieval_quality`` starts ``python -m threadline_retrieval`` on a free port
and a throw-away data directory, ingests the 5,183 abstracts (title + text, one chunk each:
CHUNK_SIZE is raised so a document is not split, as in the published runs), and sends
the 300 test claims through gRPC ``Search`` in dense, keyword and hybrid mode.
Data: ``SCIFACT_DIR``, default ``../shared/data/scifact`` beside the repository.

Hybrid's fusion (RRF k, keyword weight) is tuned from the dense and keyword rankings by two-fold
cross-validation over the claims: the local copy has no train split's judgements, so each half's
pick is scored on the other half, never on the claims it was picked on. ``--quick`` skips the
embedding (minutes on 2 cores): it ingests with placeholder vectors and scores keyword mode only.

Reranking: with ``RETRIEVAL_RERANK_MODEL`` set (an ONNX cross-encoder directory: model.onnx and
tokenizer.json), the service runs with that cross-encoder and a fourth mode, ``hybrid+rerank``,
reranks hybrid's top ``RETRIEVAL_RERANK_TOP_N`` (default 20). No package on PyPI ships cross-encoder
weights and this machine reaches no model hub, so without one only the stage's cost is measured:
``python -m bench.retrieval_quality --rerank-cost`` times a search with and without reranking over
N=20 and N=50 candidates, with the tiny test cross-encoder and with the chat reranker against the
tests' fake chat endpoint (bench/results/retrieval_rerank_cost.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from bench import scifact
from bench.mesh import _free_port, grpc_service
from bench.stats import machine, percentiles

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "retrieval_quality.json"
RERANK_COST = Path(__file__).parent / "results" / "retrieval_rerank_cost.json"
MODES = {"dense": pb.SEARCH_MODE_DENSE, "keyword": pb.SEARCH_MODE_KEYWORD, "hybrid": pb.SEARCH_MODE_HYBRID}
# What a placeholder-vector collection is called in --quick, where only keyword search is scored.
_NO_MODEL = "none"
RRF_KS = (10, 20, 30, 45, 60, 90, 120)
KEYWORD_WEIGHTS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
# This benchmark's figures before BM25 stemmed (run of 2026-11-24, same machine), to compare with.
BEFORE_STEMMING = {"dense": (0.645, 0.925), "keyword": (0.662, 0.886), "hybrid": (0.682, 0.965)}
PUBLISHED = {"dense": (0.645, 0.925), "keyword": (0.665, None), "keyword (Anserini BM25 flat)": (0.679, 0.925)}


def _load() -> tuple[list[pb.Document], dict[str, str], dict[str, dict[str, int]]]:
    documents = [pb.Document(id=a.id, text=a.text) for a in scifact.abstracts()]
    return documents, scifact.test_claims(), scifact.judgements()


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """trec_eval's ndcg_cut: linear gains, log2 discount."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    hits = {doc for doc in ranked[:k] if relevant.get(doc, 0) > 0}
    return len(hits) / sum(1 for gain in relevant.values() if gain > 0)


Rankings = dict[str, list[str]]


def _mean_ndcg(rankings: Rankings, qrels: dict[str, dict[str, int]], query_ids: list[str]) -> float:
    return sum(ndcg_at(rankings[q], qrels[q]) for q in query_ids) / len(query_ids)


def _fuse(dense: list[str], keyword: list[str], rrf_k: int, keyword_weight: float) -> list[str]:
    """The service's reciprocal rank fusion (threadline_retrieval.search.fuse), over document ids."""
    scores: dict[str, float] = {}
    for ranking, weight in ((dense, 1.0), (keyword, keyword_weight)):
        for rank, doc in enumerate(ranking, 1):
            scores[doc] = scores.get(doc, 0.0) + weight / (rrf_k + rank)
    return sorted(scores, key=lambda doc: -scores[doc])


def tune_fusion(dense: Rankings, keyword: Rankings, qrels: dict[str, dict[str, int]]) -> dict[str, object]:
    """Two-fold cross-validated choice of RRF k and keyword weight: each half's best, scored on the other."""
    ids = sorted(dense)
    folds = [ids[0::2], ids[1::2]]
    grid = [(k, w) for k in RRF_KS for w in KEYWORD_WEIGHTS]

    def score(params: tuple[int, float], query_ids: list[str]) -> float:
        fused = {q: _fuse(dense[q], keyword[q], *params) for q in query_ids}
        return _mean_ndcg(fused, qrels, query_ids)

    picks, held_out = [], []
    for tune_on, score_on in (folds, folds[::-1]):
        best = max(grid, key=lambda params: score(params, tune_on))
        picks.append({"rrf_k": best[0], "keyword_weight": best[1]})
        held_out.append(score(best, score_on) * len(score_on))
    return {
        "method": "two-fold cross-validation over the test claims (no train judgements locally)",
        "picks": picks,
        "held_out_ndcg@10": round(sum(held_out) / len(ids), 3),
        "default_ndcg@10 (k 60, weight 1)": round(score((60, 1.0), ids), 3),
    }


async def _evaluate(target: str, quick: bool, rerank_top_n: int = 0) -> dict[str, object]:
    """``rerank_top_n``: also score ``hybrid+rerank`` (the service runs a cross-encoder), over that many."""
    documents, queries, qrels = _load()
    if quick:
        for document in documents:
            document.vector.append(1.0)
    modes = {"keyword": MODES["keyword"]} if quick else MODES
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        started = time.perf_counter()
        for i in range(0, len(documents), 256):
            batch = documents[i : i + 256]
            request = pb.IngestRequest(tenant_id="scifact", documents=batch, embedding_model=_NO_MODEL if quick else "")
            await stub.Ingest(request, timeout=600)
        ingest_s = time.perf_counter() - started
        figures: dict[str, object] = {}
        rankings: dict[str, Rankings] = {}
        for name, mode in modes.items():
            rankings[name] = {}
            for query_id, text in queries.items():
                request = pb.SearchRequest(tenant_id="scifact", query=text, k=100, mode=mode, rerank=False)
                reply = await stub.Search(request)
                rankings[name][query_id] = list(dict.fromkeys(hit.document_id for hit in reply.hits))
            ranked = rankings[name]
            figures[name] = {
                "ndcg@10": round(_mean_ndcg(ranked, qrels, list(queries)), 3),
                "recall@100": round(sum(recall_at(ranked[q], qrels[q]) for q in queries) / len(queries), 3),
            }
        if rerank_top_n:
            figures["hybrid+rerank"] = await _reranked(stub, queries, qrels, rerank_top_n)
    result: dict[str, object] = {
        "documents": len(documents),
        "queries": len(queries),
        "ingest_docs_per_s": round(len(documents) / ingest_s, 1),
        "modes": figures,
    }
    if not quick:
        result["fusion_tuning"] = tune_fusion(rankings["dense"], rankings["keyword"], qrels)
    result["before_stemming"] = {k: {"ndcg@10": v[0], "recall@100": v[1]} for k, v in BEFORE_STEMMING.items()}
    result["published"] = {k: {"ndcg@10": v[0], "recall@100": v[1]} for k, v in PUBLISHED.items()}
    return result


async def _reranked(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, queries: dict[str, str], qrels: dict[str, dict[str, int]], n: int
) -> dict[str, object]:
    """nDCG@10 of hybrid's top ``n`` reranked, and a search's time with and without the rerank, in turns."""
    ranked: Rankings = {}
    times: dict[bool, list[float]] = {False: [], True: []}
    for query_id, text in queries.items():
        for rerank in (False, True):
            started = time.perf_counter()
            request = pb.SearchRequest(tenant_id="scifact", query=text, k=n, mode=pb.SEARCH_MODE_HYBRID, rerank=rerank)
            reply = await stub.Search(request)
            times[rerank].append((time.perf_counter() - started) * 1000)
            if rerank:
                if not reply.reranked:
                    raise RuntimeError("the cross-encoder failed; see the service's log")
                ranked[query_id] = list(dict.fromkeys(hit.document_id for hit in reply.hits))
    return {
        "ndcg@10": round(_mean_ndcg(ranked, qrels, list(queries)), 3),
        "reranked_top_n": n,
        "search_ms_without_rerank": percentiles(times[False]),
        "search_ms_with_rerank": percentiles(times[True]),
    }


def run(quick: bool = False) -> dict[str, object]:
    port = _free_port()
    rerank_model = os.environ.get("RETRIEVAL_RERANK_MODEL", "") if not quick else ""
    top_n = int(os.environ.get("RETRIEVAL_RERANK_TOP_N", "20"))
    with tempfile.TemporaryDirectory(prefix="threadline-scifact-") as data_dir:
        env = {
            "RETRIEVAL_PORT": str(port),
            "RETRIEVAL_DATA_DIR": data_dir,
            "CHUNK_SIZE": "20000",
            "EMBEDDING_PROVIDER": "local",
            "RETRIEVAL_RERANKER": "cross-encoder" if rerank_model else "off",
        }
        with grpc_service("threadline_retrieval", port, env, timeout_s=120) as target:
            figures = asyncio.run(_evaluate(target, quick, top_n if rerank_model else 0))
    result = {"benchmark": "retrieval_quality", "dataset": "BEIR SciFact test", "machine": machine(), **figures}
    if not quick:  # a keyword-only smoke run must not replace the full figures
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


# The cost of the rerank stage alone: keyword search over placeholder vectors (no embedding to time),
# each claim searched without and then with the rerank, over N candidates (k=N, RETRIEVAL_RERANK_TOP_N=N).
_COST_DOCUMENTS = 2000
_COST_QUERIES = 100
_COST_NS = (20, 50)


async def _time_reranks(target: str, queries: list[str]) -> dict[str, object]:
    documents = [pb.Document(id=a.id, text=a.text, vector=[1.0]) for a in scifact.abstracts()[:_COST_DOCUMENTS]]
    figures: dict[str, object] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = pb.IngestRequest(tenant_id="cost", documents=documents, embedding_model=_NO_MODEL)
        await stub.Ingest(request, timeout=600)
        for n in _COST_NS:
            times: dict[bool, list[float]] = {False: [], True: []}
            for text in queries:
                for rerank in (False, True):
                    search = pb.SearchRequest(
                        tenant_id="cost", query=text, k=n, mode=pb.SEARCH_MODE_KEYWORD, rerank=rerank
                    )
                    started = time.perf_counter()
                    reply = await stub.Search(search, timeout=60)
                    times[rerank].append((time.perf_counter() - started) * 1000)
                    if rerank and not reply.reranked:
                        raise RuntimeError("the reranker failed; see the service's log")
            without, with_ = percentiles(times[False]), percentiles(times[True])
            figures[f"N={n}"] = {
                "search_ms_without_rerank": without,
                "search_ms_with_rerank": with_,
                "rerank_ms_p50": round(with_["p50"] - without["p50"], 2),
            }
    return figures


@contextmanager
def _fake_chat_endpoint() -> Iterator[str]:
    """The tests' scripted chat model (real HTTP) on a thread of its own: the service is another process."""
    from tests.retrieval.chat_server import serve_scoring_model

    ready = threading.Event()
    state: dict[str, object] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        async with serve_scoring_model() as model:
            state.update(url=model.base_url, loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the fake chat endpoint did not start")
    try:
        yield str(state["url"])
    finally:
        loop, stop = state["loop"], state["stop"]
        loop.call_soon_threadsafe(stop.set)  # type: ignore[attr-defined]
        thread.join(30)


def rerank_cost() -> dict[str, object]:
    """Milliseconds the rerank stage adds to a search: the tiny test cross-encoder, and the chat reranker
    against a local fake endpoint (so: prompt, HTTP and parsing, not a model's thinking time)."""
    from tests.retrieval import cross_encoder

    queries = list(scifact.test_claims().values())[:_COST_QUERIES]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="threadline-rerank-") as tmp, _fake_chat_endpoint() as chat_url:
        model = cross_encoder.build(Path(tmp) / "tiny-cross-encoder")
        rerankers = {
            "tiny cross-encoder (ONNX Runtime)": {
                "RETRIEVAL_RERANKER": "cross-encoder",
                "RETRIEVAL_RERANK_MODEL": str(model),
            },
            "chat (fake endpoint, real HTTP)": {"RETRIEVAL_RERANKER": "chat", "OPENAI_BASE_URL": chat_url},
        }
        for name, settings in rerankers.items():
            port = _free_port()
            env = {
                "RETRIEVAL_PORT": str(port),
                "RETRIEVAL_DATA_DIR": str(Path(tmp) / name.split()[0]),
                "CHUNK_SIZE": "20000",
                "RETRIEVAL_RERANK_TOP_N": "1",  # so k alone sets N
                **settings,
            }
            with grpc_service("threadline_retrieval", port, env, timeout_s=120) as target:
                figures[name] = asyncio.run(_time_reranks(target, queries))
    result = {
        "benchmark": "retrieval_rerank_cost",
        "what": f"keyword search over {_COST_DOCUMENTS} SciFact abstracts, {len(queries)} claims, k=N, "
        "each claim without then with the rerank",
        "machine": machine(),
        "rerankers": figures,
    }
    RERANK_COST.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval_quality", description=__doc__)
    parser.add_argument("--rerank-cost", action="store_true", help="time the rerank stage only")
    parser.add_argument("--quick", action="store_true", help="keyword mode only, no embedding")
    arguments = parser.parse_args()
    print(json.dumps(rerank_cost() if arguments.rerank_cost else run(arguments.quick), indent=2))
