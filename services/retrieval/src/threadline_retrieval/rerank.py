"""Reranking: a second, slower look at a search's top candidates, reading the query and each passage together.

Dense and keyword search score a passage without seeing it beside the query; a cross-encoder (or the
chat model) reads both at once and orders the top few better, at a cost per candidate. The stage is
optional (``RETRIEVAL_RERANKER``, off by default) and never fails a search: when the reranker
errs or runs out of time, the search answers in the order it had, and says so (``reranked`` false).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Histogram

from threadline_retrieval.settings import RetrievalSettings

log = structlog.get_logger("threadline_retrieval")
# A cross-encoder reads query and passage as one sequence; BERT-sized models stop at 512 tokens.
MAX_TOKENS = 512
# Pairs per ONNX run, of similar lengths (sorted first): one batch padded to its longest pair cost a
# MiniLM-L6 cross-encoder 2.3x the CPU time of the pairs run alone (SciFact abstracts, docs/benchmarks.md).
_BATCH = 8
# The chat prompt quotes this much of each passage: enough to judge it, and 20 passages fit any model.
PASSAGE_CHARS = 1500
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
Ranked = list[tuple[int, float]]


class RerankError(Exception):
    """The reranker answered, but not with one score per passage."""


class Reranker(Protocol):
    name: str

    async def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage, higher is better; raises when it cannot."""
        ...

    async def aclose(self) -> None: ...


class CrossEncoder:
    """A cross-encoder exported to ONNX (e.g. ms-marco-MiniLM-L-6-v2) on ONNX Runtime, so no PyTorch.

    ``path`` is a directory holding ``model.onnx`` and ``tokenizer.json`` (what Hugging Face's ONNX
    exports lay out), or the ``.onnx`` file with ``tokenizer.json`` beside it. The model takes
    ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` if it declares it) of the pair
    (query, passage) and gives one logit per pair, or two classes of which the last is "relevant".
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime  # type: ignore[import-untyped]  # ships no annotations
        from tokenizers import Tokenizer

        model = path / "model.onnx" if path.is_dir() else path
        tokenizer = model.parent / "tokenizer.json"
        for needed in (model, tokenizer):
            if not needed.is_file():
                raise FileNotFoundError(f"RETRIEVAL_RERANK_MODEL: no {needed}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(MAX_TOKENS)  # longest_first: the query is kept, the passage cut
        self._tokenizer.no_padding()  # padded here, per batch of similar lengths (score_pairs)
        self._pad = self._tokenizer.token_to_id("[PAD]") or 0
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.name = f"cross-encoder:{model.parent.name if model.name == 'model.onnx' else model.stem}"
        # One run at a time: ONNX Runtime already spreads one batch over the cores.
        self._lock = asyncio.Lock()

    def score_pairs(self, query: str, passages: Sequence[str]) -> list[float]:
        """Blocking: the logits of (query, passage) for each passage."""
        encodings = self._tokenizer.encode_batch([(query, p) for p in passages])
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        scores = [0.0] * len(encodings)
        for start in range(0, len(order), _BATCH):
            group = order[start : start + _BATCH]
            width = max(len(encodings[i].ids) for i in group)
            ids = np.full((len(group), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            types = np.zeros((len(group), width), dtype=np.int64)
            for row, i in enumerate(group):
                n = len(encodings[i].ids)
                ids[row, :n], mask[row, :n], types[row, :n] = encodings[i].ids, 1, encodings[i].type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            logits = np.asarray(self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0])
            if logits.ndim == 2:
                logits = logits[:, -1]  # (n, 1): the logit; (n, 2): the "relevant" class
            for row, i in enumerate(group):
                scores[i] = float(logits.reshape(-1)[row])
        return scores

    async def score(self, query: str, passages: Sequence[str]) -> list[float]:
        async with self._lock:
            return await asyncio.to_thread(self.score_pairs, query, passages)

    async def aclose(self) -> None:
        return None


_SYSTEM = (
    "You judge search results. Given a query and numbered passages, rate how well each passage answers "
    "the query, from 0 (unrelated) to 10 (answers it fully). Reply with JSON only."
)


def chat_prompt(query: str, passages: Sequence[str]) -> str:
    """One prompt for all the candidates: one request per search, not one per passage."""
    quoted = "\n\n".join(f"[{n}] {' '.join(p.split())[:PASSAGE_CHARS]}" for n, p in enumerate(passages, 1))
    return (
        f"Query: {query}\n\nPassages:\n{quoted}\n\n"
        f'Reply {{"scores": [s1, ..., s{len(passages)}]}}: one number per passage, in the order given.'
    )


def parse_scores(content: str, count: int) -> list[float]:
    """The scores in the model's reply; RerankError unless there is exactly one number per passage."""
    found = re.search(r"\{.*\}", content, re.DOTALL)
    try:
        reply: Any = json.loads(found.group(0)) if found else None
    except json.JSONDecodeError:
        reply = None
    scores = reply.get("scores") if isinstance(reply, dict) else None
    if not isinstance(scores, list) or len(scores) != count:
        raise RerankError(f"expected {{'scores': [...]}} with {count} numbers, got {content[:200]!r}")
    if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
        raise RerankError(f"scores must be numbers, got {scores[:10]!r}")
    return [float(s) for s in scores]


class ChatReranker:
    """Scores the candidates with the configured chat model (any OpenAI-compatible endpoint), in one prompt."""

    def __init__(self, model: str, base_url: str | None, api_key: str | None, timeout_s: float) -> None:
        from openai import AsyncOpenAI

        # No retries: a search waits for one attempt at most, then keeps its own order (see Reranking.apply).
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0)
        self._model = model
        self.name = f"chat:{model}"

    async def score(self, query: str, passages: Sequence[str]) -> list[float]:
        messages: Any = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": chat_prompt(query, passages)},
        ]
        reply = await self._client.chat.completions.create(model=self._model, messages=messages, temperature=0)
        return parse_scores(reply.choices[0].message.content or "", len(passages))

    async def aclose(self) -> None:
        await self._client.close()


def open_reranker(settings: RetrievalSettings) -> Reranker | None:
    """The configured reranker, or None when ``RETRIEVAL_RERANKER`` is off."""
    if settings.reranker == "cross-encoder":
        assert settings.rerank_model is not None  # the settings require it
        return CrossEncoder(settings.rerank_model)
    if settings.reranker == "chat":
        return ChatReranker(
            settings.rerank_chat_model, settings.openai_base_url, settings.openai_api_key, settings.rerank_timeout_s
        )
    return None


class Reranking:
    """The stage as a search uses it: whether to rerank, over how many candidates, and what a failure does."""

    def __init__(
        self,
        reranker: Reranker | None,
        top_n: int = 20,
        timeout_s: float = 5.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.reranker = reranker
        self.top_n = top_n
        self._timeout_s = timeout_s
        self._seconds = Histogram(
            "threadline_retrieval_rerank_seconds",
            "Time to rerank a search's candidates, by outcome (ok, or failed: the search kept its own order).",
            ["outcome"],
            buckets=_BUCKETS,
            registry=registry,
        )
        for outcome in ("ok", "failed"):  # both series from the start, so a rate of failures reads 0, not nothing
            self._seconds.labels(outcome)

    @classmethod
    def from_settings(cls, settings: RetrievalSettings, registry: CollectorRegistry | None = None) -> Reranking:
        return cls(open_reranker(settings), settings.rerank_top_n, settings.rerank_timeout_s, registry)

    def depth(self, k: int) -> int:
        """Candidates to fetch for a reranked search of ``k`` hits."""
        return max(k, self.top_n)

    async def apply(self, query: str, ranked: Ranked, text: Callable[[int], str], k: int) -> tuple[Ranked, bool]:
        """The top ``k`` of ``ranked`` in the reranker's order with its scores, and True; or, when the reranker
        fails or is slower than RETRIEVAL_RERANK_TIMEOUT_S, the top ``k`` as they were, and False."""
        if self.reranker is None or not ranked:
            return ranked[:k], False
        rows = [row for row, _ in ranked]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                scores = await self.reranker.score(query, [text(row) for row in rows])
            if len(scores) != len(rows):
                raise RerankError(f"{len(scores)} scores for {len(rows)} passages")
        except Exception as exc:  # any failure of the reranker keeps the search's own order
            self._seconds.labels("failed").observe(time.perf_counter() - started)
            log.warning(
                "rerank failed; the search keeps its own order",
                reranker=self.reranker.name,
                candidates=len(rows),
                error=repr(exc) if not isinstance(exc, TimeoutError) else f"no answer in {self._timeout_s} s",
            )
            return ranked[:k], False
        self._seconds.labels("ok").observe(time.perf_counter() - started)
        # A stable sort: passages the reranker scores alike (a chat model's whole numbers) keep the search's order.
        order = sorted(range(len(rows)), key=lambda i: -scores[i])
        return [(rows[i], scores[i]) for i in order[:k]], True

    async def aclose(self) -> None:
        if self.reranker is not None:
            await self.reranker.aclose()
