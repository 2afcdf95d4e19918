"""An in-memory BM25 index: the keyword half of hybrid search.

Exact terms (error codes, identifiers, names) are where dense embeddings are weak;
BM25 over the same chunks catches them. Rebuilt from the collection's SQLite file at start.

Written here rather than taken from bm25s or rank_bm25: both build a static index, so every
ingest or delete would re-index the whole collection, while this one adds and removes a chunk
in place. It is Okapi BM25 over Snowball stems with the collection language's stop words dropped,
as Anserini's default analyser does for English (docs/benchmarks.md has the SciFact figures).

The index lives in memory only and is rebuilt from the stored chunk texts whenever a collection
opens, so a change of stop words or tokens here applies to every existing collection at the next
start: no index on disk to migrate or version.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter

import Stemmer  # type: ignore[import-not-found]  # a C extension (PyStemmer) without stubs
import stop_words  # type: ignore[import-untyped]  # data package without annotations
import stopwordsiso
from threadline.grpc import BadRequest
from threadline.languages import DEFAULT_LANGUAGE, normalise_language

# Lucene's English stop set, which Anserini's BM25 uses (and its SciFact figures were measured with):
# the short list, not a library's longer one, which would drop words people search for.
_ENGLISH = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
# Languages the `stop-words` package has no list for, taken from `stopwordsiso` by ISO 639-1 code.
# stop-words comes first: its lists are the shorter ones (German's is Snowball's), where stopwordsiso's
# add content words (German "mensch", "jahr", "gott") that a search must still find.
_ISO_CODES = {
    "armenian": "hy",
    "basque": "eu",
    "esperanto": "eo",
    "estonian": "et",
    "irish": "ga",
    "lithuanian": "lt",
    "sesotho": "st",
}


@functools.cache
def stop_words_of(language: str) -> frozenset[str]:
    """The stop words of a (normalised) language; empty where no list exists (nepali, serbian, tamil, yiddish).

    Cached: every collection in a language shares one set, read once from the package data.
    """
    if language in ("english", "porter"):
        return _ENGLISH
    if language in _ISO_CODES:
        return frozenset(w.lower() for w in stopwordsiso.stopwords(_ISO_CODES[language]))
    name = "dutch" if language == "dutch_porter" else language
    return frozenset(w.lower() for w in stop_words.safe_get_stop_words(name))


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Words: ``\\w`` plus the combining marks, which ``\\w`` lacks and Hindi, Nepali or Tamil write vowels with.

    Built on first use (a pass over the Basic Multilingual Plane), not at import.
    """
    marks = "".join(chr(c) for c in range(0x300, 0x10000) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me"))
    return re.compile(f"[\\w{re.escape(marks)}]+")


class UnknownLanguage(BadRequest):
    """A collection's language has no Snowball stemmer: the caller's mistake, INVALID_ARGUMENT."""


def check_language(language: str) -> str:
    """``language`` normalised (empty: English); :class:`UnknownLanguage` names the choices.

    Checked against threadline.languages, the list the gateway refuses unknown languages by, so both agree.
    """
    try:
        return normalise_language(language)
    except ValueError as exc:
        raise UnknownLanguage(str(exc)) from exc


class Analyzer:
    """Text to index terms: lower-cased words, stop words dropped, Snowball-stemmed."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        self.language = check_language(language)
        self._stemmer = Stemmer.Stemmer(self.language)
        self._stop_words = stop_words_of(self.language)
        self._token = _token_pattern()

    def terms(self, text: str) -> list[str]:
        words = [w for w in self._token.findall(text.lower()) if w not in self._stop_words]
        return self._stemmer.stemWords(words)


class KeywordIndex:
    def __init__(self, language: str = DEFAULT_LANGUAGE, k1: float = 1.2, b: float = 0.75) -> None:
        self._analyzer = Analyzer(language)
        self._k1, self._b = k1, b
        self._postings: dict[str, dict[int, int]] = {}
        self._terms: dict[int, list[str]] = {}
        self._lengths: dict[int, int] = {}
        self._total_length = 0

    @property
    def language(self) -> str:
        return self._analyzer.language

    def add(self, row: int, text: str) -> None:
        counts = Counter(self._analyzer.terms(text))
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
        for term in set(self._analyzer.terms(query)):
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
