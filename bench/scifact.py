"""BEIR SciFact from ``../shared/data/scifact`` (or ``SCIFACT_DIR``): abstracts, test claims and judgements."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))


@dataclass(frozen=True)
class Abstract:
    id: str
    text: str


def abstracts() -> list[Abstract]:
    """Title and text of every abstract, in corpus order."""
    with (DATA / "corpus.jsonl").open() as corpus:
        rows = [json.loads(line) for line in corpus]
    return [Abstract(row["_id"], f"{row['title']} {row['text']}".strip()) for row in rows]


def judgements() -> dict[str, dict[str, int]]:
    """query id -> {document id: relevance} for the test split."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (DATA / "qrels" / "test.tsv").open() as lines:
        next(lines)
        for line in lines:
            query, doc, score = line.split()
            qrels[query][doc] = int(score)
    return qrels


def test_claims() -> dict[str, str]:
    """query id -> claim text, for the claims that have judgements."""
    judged = judgements()
    claims = {}
    with (DATA / "queries.jsonl").open() as rows:
        for line in rows:
            row = json.loads(line)
            if row["_id"] in judged:
                claims[row["_id"]] = row["text"]
    return claims
