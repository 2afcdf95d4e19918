"""Ranking: dense, keyword (BM25) and their reciprocal-rank fusion."""

from __future__ import annotations

import numpy as np

from threadline_retrieval.collection import Collection

RRF_K = 60
# Each side of a hybrid search ranks this many times k candidates before fusion.
_HYBRID_DEPTH = 4


def fuse(rankings: list[list[tuple[int, float]]], weights: list[float], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``sum(w / (RRF_K + rank))`` over the rankings a row appears in."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (row, _) in enumerate(ranking, 1):
            scores[row] = scores.get(row, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


def hybrid(
    collection: Collection,
    query: str,
    vector: np.ndarray,
    k: int,
    allowed: set[int] | None,
    dense_weight: float = 1.0,
    keyword_weight: float = 1.0,
) -> list[tuple[int, float]]:
    depth = max(k * _HYBRID_DEPTH, 20)
    return fuse(
        [collection.dense(vector, depth, allowed), collection.keyword(query, depth, allowed)],
        [dense_weight, keyword_weight],
        k,
    )
