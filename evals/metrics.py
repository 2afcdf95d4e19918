"""Scores: whether a retrieved chunk holds the needed passage, rank metrics, and lexical faithfulness.

A chunk *holds* the passage when at least half of the passage's words appear in it as one run
(chunk boundaries may cut a passage; half is enough to find and read it), and holds it *whole*
when all of them do. Faithfulness is lexical, so it runs offline: an answer sentence is supported
when most of its words are in a passage it cites.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from difflib import SequenceMatcher

HOLDS = 0.5
SUPPORTED = 0.8
_WORD = re.compile(r"\w+")
_MARKER = re.compile(r"\[(\d+)\]")
# A sentence ends at . ! or ? followed by space (its citation markers stay with it), or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+\])*\s+|\n+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def coverage(passage: str, text: str) -> float:
    """Share of the passage's words found in ``text`` as one contiguous run."""
    needed, found = words(passage), words(text)
    if not needed:
        return 0.0
    match = SequenceMatcher(None, needed, found, autojunk=False).find_longest_match(0, len(needed), 0, len(found))
    return match.size / len(needed)


def first_rank(holds: Sequence[bool]) -> int | None:
    """1-based rank of the first chunk holding the passage, None if none does."""
    return next((rank for rank, hit in enumerate(holds, 1) if hit), None)


def recall_at(holds: Sequence[bool], k: int) -> float:
    return 1.0 if any(holds[:k]) else 0.0


def reciprocal_rank(holds: Sequence[bool]) -> float:
    rank = first_rank(holds)
    return 1.0 / rank if rank else 0.0


def ndcg_at(holds: Sequence[bool], k: int = 10) -> float:
    """One needed passage: the ideal ranking has it first, so nDCG is the discount at its first rank."""
    rank = first_rank(holds[:k])
    return 1.0 / math.log2(rank + 1) if rank else 0.0


def sentences(answer: str) -> list[str]:
    """The answer's sentences, each with its own citation markers."""
    parts, start = [], 0
    for end in _SENTENCE_END.finditer(answer):
        parts.append(answer[start : end.end()].strip())
        start = end.end()
    parts.append(answer[start:].strip())
    return [part for part in parts if words(_MARKER.sub("", part))]


def supported(sentence: str, cited: Sequence[str]) -> bool:
    """Most of the sentence's words (markers aside) are in one passage it cites."""
    said = set(words(_MARKER.sub("", sentence)))
    return any(len(said & set(words(passage))) >= SUPPORTED * len(said) for passage in cited)


def faithfulness(answer: str, citations: Sequence[str]) -> float | None:
    """Share of the answer's sentences supported by the passages their markers name; None: no sentences."""
    parts = sentences(answer)
    if not parts:
        return None
    backed = 0
    for sentence in parts:
        cited = [citations[int(n) - 1] for n in _MARKER.findall(sentence) if 0 < int(n) <= len(citations)]
        backed += supported(sentence, cited)
    return backed / len(parts)


def cited_numbers(answer: str) -> set[int]:
    return {int(n) for n in _MARKER.findall(answer)}


def markers_valid(answer: str, citations: Sequence[str]) -> bool:
    """Every [n] in the answer names a citation that was returned."""
    return all(0 < n <= len(citations) for n in cited_numbers(answer))


def mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None
