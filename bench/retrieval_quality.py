"""Retrieval quality on BEIR SciFact through the real retrieval service: nDCG@10 and recall@100 per mode.

``python -m bench retrieval_quality`` starts ``python -m threadline_retrieval`` on a free port
and a throw-away data directory, ingests the 5,183 abstracts (title + text, one chunk each:
CHUNK_SIZE is raised so a document is not split, as in the published runs), and sends
the 300 test claims through gRPC ``Search`` in dense, keyword and hybrid mode.
Data: ``SCIFACT_DIR``, default ``../shared/data/scifact`` beside the repository.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from pathlib import Path

import grpc
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from bench import scifact
from bench.mesh import _free_port, grpc_service
from bench.stats import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "retrieval_quality.json"
MODES = {"dense": pb.SEARCH_MODE_DENSE, "keyword": pb.SEARCH_MODE_KEYWORD, "hybrid": pb.SEARCH_MODE_HYBRID}
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


async def _evaluate(target: str) -> dict[str, object]:
    documents, queries, qrels = _load()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        started = time.perf_counter()
        for i in range(0, len(documents), 256):
            await stub.Ingest(pb.IngestRequest(tenant_id="scifact", documents=documents[i : i + 256]), timeout=600)
        ingest_s = time.perf_counter() - started
        figures: dict[str, object] = {}
        for name, mode in MODES.items():
            ndcg, recall = [], []
            for query_id, text in queries.items():
                reply = await stub.Search(pb.SearchRequest(tenant_id="scifact", query=text, k=100, mode=mode))
                ranked = list(dict.fromkeys(hit.document_id for hit in reply.hits))
                ndcg.append(ndcg_at(ranked, qrels[query_id]))
                recall.append(recall_at(ranked, qrels[query_id]))
            figures[name] = {
                "ndcg@10": round(sum(ndcg) / len(ndcg), 3),
                "recall@100": round(sum(recall) / len(recall), 3),
            }
    return {
        "documents": len(documents),
        "queries": len(queries),
        "ingest_docs_per_s": round(len(documents) / ingest_s, 1),
        "modes": figures,
        "published": {k: {"ndcg@10": v[0], "recall@100": v[1]} for k, v in PUBLISHED.items()},
    }


def run(quick: bool = False) -> dict[str, object]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="threadline-scifact-") as data_dir:
        env = {
            "RETRIEVAL_PORT": str(port),
            "RETRIEVAL_DATA_DIR": data_dir,
            "CHUNK_SIZE": "20000",
            "EMBEDDING_PROVIDER": "local",
        }
        with grpc_service("threadline_retrieval", port, env, timeout_s=120) as target:
            figures = asyncio.run(_evaluate(target))
    result = {"benchmark": "retrieval_quality", "dataset": "BEIR SciFact test", "machine": machine(), **figures}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
