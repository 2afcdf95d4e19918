"""Answers from the real mesh: each question through ``POST /api/v1/query``, scored against its citations.

By default the mesh is started here as ``./task up`` starts it (bench/mesh.py: free ports, a
throw-away data directory, the offline extractive answerer) with the evaluated document as its
only knowledge base; ``url`` scores a gateway that is already running instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.mesh import running_mesh
from evals.cases import Case
from evals.metrics import HOLDS, cited_numbers, coverage, faithfulness, markers_valid, mean

TIMEOUT_S = 120.0
_CHAT_MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL")


@contextmanager
def mesh_with(documents: list[Path], chat_model: bool = False) -> Iterator[str]:
    """A mesh whose knowledge base is ``documents``; with ``chat_model`` the agent uses the configured one."""
    with tempfile.TemporaryDirectory(prefix="threadline-eval-kb-") as sample:
        for document in documents:
            shutil.copy(document, Path(sample) / document.name)
        env = {"THREADLINE_SAMPLE_DIR": sample}
        if chat_model:
            env |= {name: os.environ[name] for name in _CHAT_MODEL_ENV if name in os.environ}
        with running_mesh(extra_env=env) as mesh:
            yield mesh.url


def ask(client: httpx.Client, case: Case) -> dict[str, Any]:
    reply = client.post("/api/v1/query", json={"input": case.question}, timeout=TIMEOUT_S)
    reply.raise_for_status()
    body = reply.json()
    return {"answer": body["answer"], "citations": [c["text"] for c in body["citations"]], "run_id": body["run_id"]}


def score(case: Case, answer: str, citations: list[str]) -> dict[str, Any]:
    """Citation correctness (a cited passage holds the needed one) and lexical faithfulness."""
    cited = [citations[n - 1] for n in sorted(cited_numbers(answer)) if 0 < n <= len(citations)]
    row: dict[str, Any] = {
        "id": case.id,
        "faithfulness": faithfulness(answer, citations),
        "markers_valid": markers_valid(answer, citations),
    }
    if case.passage:
        row["cites_passage"] = any(coverage(case.passage, text) >= HOLDS for text in cited)
        row["retrieved_passage"] = any(coverage(case.passage, text) >= HOLDS for text in citations)
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [row for row in rows if "cites_passage" in row]
    faithful = [row["faithfulness"] for row in rows if row["faithfulness"] is not None]
    return {
        "questions": len(rows),
        "faithfulness": mean(faithful),
        "markers_valid": mean([float(row["markers_valid"]) for row in rows]),
        "cites_passage": mean([float(row["cites_passage"]) for row in judged]),
        "passage_among_citations": mean([float(row["retrieved_passage"]) for row in judged]),
        "answered": mean([float(row["faithfulness"] is not None) for row in rows]),
    }


def evaluate(cases: list[Case], url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ask every case; returns the summary and, per case, its answer, citations and scores."""
    rows = []
    with httpx.Client(base_url=url) as client:
        for case in cases:
            if not case.question.strip():  # feedback on a run whose thread was gone: nothing to ask again
                continue
            given = ask(client, case)
            rows.append({**score(case, given["answer"], given["citations"]), **given, "question": case.question})
    return summarise(rows), rows


def recorded(cases: list[Case]) -> dict[str, Any] | None:
    """The answers cases carry from before (a feedback export): how faithful they were to their citations."""
    rows = [score(case, case.answer, [c.text for c in case.citations]) for case in cases if case.answer is not None]
    return summarise(rows) if rows else None
