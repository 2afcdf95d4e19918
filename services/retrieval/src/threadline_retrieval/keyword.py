"""An in-memory BM25 index: the keyword half of hybrid search.

Exact terms (error codes, identifiers, names) are where dense embeddings are weak;
BM25 over the same chunks catches them. Rebuilt from the collection's SQLite file at start.

Written here rather than taken from bm25s or rank_bm25: both build a static index, so every
ingest or delete would re-index the whole collection, while this one adds and removes a chunk
in place. It is textbook Okapi BM25; on SciFact it scores nDCG@10 0.662 against BEIR's 0.665
(docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class KeywordIndex:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self._k1, self._b = k1, b
        self._postings: dict[str, dict[int, int]] = {}
        self._terms: dict[int, list[str]] = {}
        self._lengths: dict[int, int] = {}
        self._total_length = 0

    def add(self, row: int, text: str) -> None:
        counts = Counter(tokenize(text))
        for term, count in counts.items():
            self._postings.setdefault(term, {})[row] = count
        self._terms[row] = list(counts)
        length = sum(counts.values())
        self._lengths[row] = length
        self._total_length += length

    def remove(self, row: int) -> None:
        for term in self._terms.pop(row, []):
            posting = self._postings[term]
            posting.pop(row, None)
            if not posting:
                del self._postings[term]
        self._total_length -= self._lengths.pop(row, 0)

    def search(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` best rows for ``query`` with their BM25 scores, best first."""
        n = len(self._lengths)
        if not n:
            return []
        average = self._total_length / n or 1.0
        scores: dict[int, float] = {}
        for term in set(tokenize(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for row, tf in posting.items():
                if allowed is not None and row not in allowed:
                    continue
                norm = tf + self._k1 * (1 - self._b + self._b * self._lengths[row] / average)
                scores[row] = scores.get(row, 0.0) + idf * tf * (self._k1 + 1) / norm
        return sorted(scores.items(), key=lambda item: -item[1])[:k]
