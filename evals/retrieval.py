"""Retrieval quality on the question set, through the real retrieval service (gRPC, its own process).

The service runs with its default chunking on a throw-away data directory and free port; the
document is ingested as a user would (one text/plain document), and each question is searched in
every mode. ``pythonpath`` runs another copy of the service's code (the "before" of a change):
the same measurement, a different tree.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import grpc
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from bench.mesh import _free_port, grpc_service
from evals.cases import Case
from evals.metrics import HOLDS, coverage, first_rank, mean, ndcg_at, recall_at, reciprocal_rank

MODES = {"dense": pb.SEARCH_MODE_DENSE, "keyword": pb.SEARCH_MODE_KEYWORD, "hybrid": pb.SEARCH_MODE_HYBRID}
TENANT = "eval"
DEPTH = 10
KS = (1, 3, 5, 10)


def scores(case: Case, hits: list[str]) -> dict[str, Any]:
    """Per case: which of the ranked chunks hold the needed passage (half of it, and whole)."""
    assert case.passage is not None
    covered = [coverage(case.passage, text) for text in hits]
    return {"id": case.id, "holds": [c >= HOLDS for c in covered], "whole": [c == 1.0 for c in covered]}


def _ranks(case: dict[str, Any]) -> dict[str, Any]:
    """What the results file keeps per case: the rank holding the passage, and holding it whole."""
    return {"id": case["id"], "rank": first_rank(case["holds"]), "whole_rank": first_rank(case["whole"])}


def summarise(per_case: list[dict[str, Any]]) -> dict[str, Any]:
    """recall@k, MRR and nDCG@10 of the passage over the cases, and recall@3 of the whole passage."""
    holds = [case["holds"] for case in per_case]
    figures: dict[str, Any] = {f"recall@{k}": mean([recall_at(h, k) for h in holds]) for k in KS}
    figures["mrr@10"] = mean([reciprocal_rank(h) for h in holds])
    figures["ndcg@10"] = mean([ndcg_at(h) for h in holds])
    figures["whole_recall@3"] = mean([recall_at(case["whole"], 3) for case in per_case])
    figures["missed@3"] = [case["id"] for case in per_case if not any(case["holds"][:3])]
    return figures


async def _search(target: str, cases: list[Case], document: Path, text: str, modes: list[str]) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        ingested = await stub.Ingest(
            pb.IngestRequest(tenant_id=TENANT, documents=[pb.Document(id=document.name, text=text)]), timeout=300
        )
        result: dict[str, Any] = {"chunks": sum(d.chunk_count for d in ingested.documents), "modes": {}}
        for mode in modes:
            per_case = []
            for case in cases:
                request = pb.SearchRequest(tenant_id=TENANT, query=case.question, k=DEPTH, mode=MODES[mode])
                reply = await stub.Search(request, timeout=60)
                per_case.append(scores(case, [hit.text for hit in reply.hits]))
            result["modes"][mode] = {**summarise(per_case), "cases": [_ranks(c) for c in per_case]}
        return result


def question_set(
    cases: list[Case], document: Path, modes: list[str] | None = None, pythonpath: str | None = None
) -> dict[str, Any]:
    """Start the retrieval service (optionally from another tree), ingest ``document``, score ``cases``."""
    judged = [case for case in cases if case.passage]
    text = document.read_text(encoding="utf-8")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="threadline-eval-") as data_dir:
        env = {"RETRIEVAL_PORT": str(port), "RETRIEVAL_DATA_DIR": data_dir, "EMBEDDING_PROVIDER": "local"}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        with grpc_service("threadline_retrieval", port, env, timeout_s=180) as target:
            result = asyncio.run(_search(target, judged, document, text, modes or list(MODES)))
    return {"questions": len(judged), **result}
