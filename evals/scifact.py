"""SciFact retrieval (BEIR test claims) through the real retrieval service, with bench's loader.

The data and the ingest are bench/retrieval_quality.py's (one chunk per abstract); this adds
recall@10 and MRR@10 beside its nDCG@10. ``keyword`` ingests placeholder vectors and scores
keyword search only (seconds); ``full`` embeds the 5,183 abstracts (minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import grpc
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from bench import scifact
from bench.mesh import _free_port, grpc_service
from bench.retrieval_quality import ndcg_at
from evals.metrics import mean, recall_at, reciprocal_rank
from evals.retrieval import MODES

TENANT = "scifact"


async def _evaluate(target: str, modes: list[str], keyword_only: bool) -> dict[str, Any]:
    documents = [pb.Document(id=a.id, text=a.text) for a in scifact.abstracts()]
    if keyword_only:
        for document in documents:
            document.vector.append(1.0)
    claims, qrels = scifact.test_claims(), scifact.judgements()
    figures: dict[str, Any] = {"documents": len(documents), "queries": len(claims), "modes": {}}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for i in range(0, len(documents), 256):
            request = pb.IngestRequest(
                tenant_id=TENANT, documents=documents[i : i + 256], embedding_model="none" if keyword_only else ""
            )
            await stub.Ingest(request, timeout=600)
        for mode in modes:
            ndcg, recall, rr = [], [], []
            for query_id, text in claims.items():
                reply = await stub.Search(pb.SearchRequest(tenant_id=TENANT, query=text, k=10, mode=MODES[mode]))
                ranked = list(dict.fromkeys(hit.document_id for hit in reply.hits))
                holds = [qrels[query_id].get(doc, 0) > 0 for doc in ranked]
                ndcg.append(ndcg_at(ranked, qrels[query_id]))
                recall.append(recall_at(holds, 10))
                rr.append(reciprocal_rank(holds))
            figures["modes"][mode] = {"ndcg@10": mean(ndcg), "recall@10": mean(recall), "mrr@10": mean(rr)}
    return figures


def run(level: str) -> dict[str, Any]:
    """``keyword`` or ``full`` (every mode, with the packaged embedding model)."""
    keyword_only = level == "keyword"
    modes = ["keyword"] if keyword_only else list(MODES)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="threadline-eval-scifact-") as data_dir:
        env = {
            "RETRIEVAL_PORT": str(port),
            "RETRIEVAL_DATA_DIR": data_dir,
            "CHUNK_SIZE": "20000",
            "EMBEDDING_PROVIDER": "local",
        }
        with grpc_service("threadline_retrieval", port, env, timeout_s=180) as target:
            figures = asyncio.run(_evaluate(target, modes, keyword_only))
    return {"dataset": "BEIR SciFact test", "level": level, **figures}
