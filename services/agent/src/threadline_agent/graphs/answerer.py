"""The extractive answerer: the offline chat model that composes cited answers from retrieved passages.

It is not a language model and never generates text of its own: it picks the
sentences of the knowledge-base passages that best match the question and cites
them. It takes part in tool calling exactly like a real chat model (it asks for
the knowledge-base tool first, then answers from the tool's results), so the
same graph runs with it or with ``ChatOpenAI``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, ToolMessage, message_chunk_to_message
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from threadline_agent.graphs.approval import REJECTED
from threadline_agent.graphs.calculator import CALCULATOR_TOOL, find_expression
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL

MODEL_NAME = "extractive-answerer"
NOTHING_RELEVANT = "I found nothing relevant to that question in the knowledge base."
COULD_NOT_CONSULT = (
    "I could not consult the knowledge base just now, so I cannot answer from it. Please try again shortly."
)

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves tell explain describe
    please""".split()
)
# A short question opening with one of these leans on the previous turn ("and for tenants?").
_FOLLOW_UP_OPENERS = (
    "it",
    "its",
    "it's",
    "that",
    "this",
    "they",
    "them",
    "those",
    "these",
    "their",
    "and",
    "also",
    "what about",
    "how about",
    "why is that",
    "so",
)
_FOLLOW_UP_MAX_WORDS = 5
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_HEADING = re.compile(r"#{1,6}\s")
_ITEM = re.compile(r"(?:[-*+]\s|\d+[.)]\s|\||>)")
# Markdown's marks, but not an underscore inside a word: RUN_EVENTS is a name, not emphasis.
_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)|[`*|]|(?<!\w)_+|_+(?!\w)")
# A sentence opens on a capital or a digit, maybe behind an opening quote, bracket or emphasis mark...
_OPENS = re.compile(r"[\"'(\[`*_]*[A-Z0-9]")
# ...and closes on terminal punctuation, maybe before a closing quote, bracket or emphasis mark.
_CLOSES = re.compile(r"[.!?][\"')\]`*_]*$")
_MIN_SENTENCE_WORDS = 4
_MAX_SENTENCE_CHARS = 400
# A chunk's opening is looked for in its neighbours by this many characters (enough to be unique in a document)
# and checked for up to that many (well under the chunks' overlap of 150).
_MIN_OVERLAP_CHARS = 20
_MAX_OVERLAP_CHARS = 80


def _stem(word: str) -> str:
    """A deliberately small suffix stripper: enough that "runs", "running" and "run" meet."""
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                word += "y"
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # "running" -> "runn" -> "run"
    return word


def terms(text: str) -> list[str]:
    """Content words of ``text``, lower-cased and stemmed."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1]


def approximate_tokens(text: str) -> int:
    """Whitespace words: the answerer has no tokenizer, so its usage is an estimate."""
    return len(text.split())


def is_follow_up(question: str) -> bool:
    lowered = question.strip().lower()
    opens = any(lowered == o or lowered.startswith(o + " ") for o in _FOLLOW_UP_OPENERS)
    return opens or len(lowered.split()) < _FOLLOW_UP_MAX_WORDS


def search_query(messages: Sequence[BaseMessage]) -> str:
    """The latest question, joined to the previous one when it is a short follow-up that leans on it."""
    questions = [m.text for m in messages if isinstance(m, HumanMessage)]
    if not questions:
        return ""
    question = questions[-1].strip()
    if len(questions) > 1 and is_follow_up(question):
        return f"{questions[-2].strip()} {question}"
    return question


def _paragraphs(text: str) -> list[tuple[str, bool]]:
    """Prose joined across its wrapped lines, each with whether it is a list item or a table row (whole without
    a full stop); headings dropped (they name a topic, they do not answer)."""
    paragraphs: list[tuple[str, bool]] = []
    current: list[str] = []
    item = False
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        starts_item = bool(_ITEM.match(stripped))
        if not stripped or _HEADING.match(stripped) or starts_item:
            if current:
                paragraphs.append((" ".join(current), item))
            current = [stripped] if starts_item else []
            item = starts_item
        else:
            current.append(stripped)
    return paragraphs


def _starts_mid_sentence(text: str, neighbours: Sequence[str]) -> bool:
    """Whether a chunk opens inside a sentence: the splitter cuts at line ends and spaces too, not only between
    paragraphs.

    A heading or a list item opens a block. Otherwise a neighbouring chunk of the same document that holds
    the opening (chunks overlap) shows what came before it; without one, the opening's first letter decides.
    """
    head = text.lstrip()
    if _HEADING.match(head) or _ITEM.match(head):
        return False
    for other in neighbours:
        before = _text_before(head, other)
        if before is not None:
            if not before.strip() or re.search(r"\n\s*\n\s*$", before):
                return False  # the chunk opens a paragraph
            last_line = before.rstrip().splitlines()[-1].strip()
            return not (_CLOSES.search(last_line) or _HEADING.match(last_line))
    return not _OPENS.match(head)


def _text_before(head: str, other: str) -> str | None:
    """What ``other`` holds before the chunk opening with ``head``, if it overlaps that opening; else None.

    The overlap may be shorter than any fixed probe (the previous chunk ends where its size ran out), so the
    match runs from a short probe to wherever either text ends.
    """
    probe = head[:_MIN_OVERLAP_CHARS]
    at = other.find(probe, 1)
    while at > 0:
        length = min(_MAX_OVERLAP_CHARS, len(head), len(other) - at)
        if other[at : at + length] == head[:length]:
            return other[:at]
        at = other.find(probe, at + 1)
    return None


def _sentences(text: str, neighbours: Sequence[str] = ()) -> list[str]:
    """The whole sentences of a passage, in reading order.

    A passage is a chunk of a longer document, so it may open or close in the middle of a sentence: those
    fragments are dropped rather than quoted as if they were whole. ``neighbours`` are the texts of other chunks
    of the same document, which tell whether this one opens mid-sentence.
    """
    paragraphs = _paragraphs(text)
    found = []
    for p_index, (paragraph, item) in enumerate(paragraphs):
        pieces = _SENTENCE_END.split(_MARKUP.sub("", paragraph).strip())
        for s_index, piece in enumerate(pieces):
            sentence = " ".join(piece.split())
            if p_index == 0 and s_index == 0 and _starts_mid_sentence(text, neighbours):
                continue  # the end of a sentence the previous chunk began
            if _is_whole(sentence, item=item):
                found.append(sentence)
    return found


def _is_whole(sentence: str, *, item: bool) -> bool:
    """A sentence worth quoting: it opens like one, closes like one, and is neither a scrap nor a wall of text.

    A list item or table row is whole without a full stop (but not one leading into more items); prose is whole
    only with one, so the last sentence of a chunk cut mid-way is dropped (the next chunk holds it whole).
    """
    closes = bool(_CLOSES.search(sentence)) or (item and not sentence.endswith(":"))
    size_ok = len(sentence.split()) >= _MIN_SENTENCE_WORDS and len(sentence) <= _MAX_SENTENCE_CHARS
    return closes and size_ok and bool(_OPENS.match(sentence))


def compose_answer(question: str, passages: Sequence[dict[str, Any]], max_sentences: int = 3) -> tuple[str, list]:
    """Pick the sentences that best match ``question`` and cite their passages.

    Returns the answer and the cited passages; a marker ``[n]`` in the answer
    points at the n-th cited passage. Sentences are scored by the stemmed
    question terms they share, weighted so that terms rare among the candidate
    sentences count more, then kept in the order they appear in the passages.
    Only whole sentences are candidates, and a sentence two overlapping chunks
    both hold is quoted once, cited to the first.
    """
    query = set(terms(question))
    texts = [str(passage.get("text", "")) for passage in passages]
    candidates: list[tuple[int, int, str, set[str]]] = []
    for p_index, passage in enumerate(passages):
        # The other chunks of its document: where they overlap it, they show whether it opens mid-sentence.
        document = passage.get("document_id")
        neighbours = [texts[i] for i, p in enumerate(passages) if i != p_index and p.get("document_id") == document]
        candidates += [
            (p_index, s_index, sentence, set(terms(sentence)))
            for s_index, sentence in enumerate(_sentences(texts[p_index], neighbours))
        ]
    if not query or not candidates:
        return NOTHING_RELEVANT, []
    frequency = {t: sum(1 for c in candidates if t in c[3]) for t in query}
    idf = {t: math.log(1 + len(candidates) / (1 + n)) for t, n in frequency.items()}
    scored = []
    seen: set[str] = set()
    for p_index, s_index, sentence, sentence_terms in candidates:
        shared = query & sentence_terms
        key = sentence.lower()
        if not shared or key in seen:
            continue
        seen.add(key)
        # Dividing by the root of the length keeps long sentences from winning on size alone.
        score = sum(idf[t] for t in shared) / math.sqrt(len(sentence_terms))
        scored.append((score, p_index, s_index, sentence))
    if not scored:
        return NOTHING_RELEVANT, []
    best = sorted(scored, key=lambda s: -s[0])[:max_sentences]
    cited: list[int] = []
    parts = []
    for _score, p_index, _s_index, sentence in sorted(best, key=lambda s: (s[1], s[2])):
        if p_index not in cited:
            cited.append(p_index)
        parts.append(_cite(sentence, cited.index(p_index) + 1))
    return " ".join(parts), [dict(passages[i]) for i in cited]


def _cite(sentence: str, n: int) -> str:
    """``Runs are durable [1].``: the marker goes before the sentence's closing punctuation; a list item, whole
    without one, closes on a full stop."""
    sentence = sentence.rstrip(",;")
    if sentence[-1] in ".!?":
        return f"{sentence[:-1]} [{n}]{sentence[-1]}"
    return f"{sentence} [{n}]."


class ExtractiveAnswerer(BaseChatModel):
    """A chat model that answers only with cited sentences from knowledge-base passages; not an LLM."""

    model_name: str = MODEL_NAME
    tool_names: list[str] = Field(default_factory=list, description="Names of the tools bound by bind_tools.")
    knowledge_base_tool: str = KNOWLEDGE_BASE_TOOL
    max_sentences: int = Field(default=3, ge=1, le=6)

    @property
    def _llm_type(self) -> str:
        return MODEL_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_sentences": self.max_sentences}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ExtractiveAnswerer:
        """Remember which tools the graph offers; only the knowledge-base tool is ever called."""
        names = [convert_to_openai_tool(tool)["function"]["name"] for tool in tools]
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = [chunk.message for chunk in self._stream(messages, stop=stop, **kwargs)]
        message = message_chunk_to_message(sum(chunks[1:], chunks[0]))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        input_tokens = sum(approximate_tokens(m.text) for m in messages)
        query = search_query(messages)
        results = _tool_results_since_question(messages)
        call: dict[str, Any] | None = None
        expression = find_expression(_question(messages)) if CALCULATOR_TOOL in self.tool_names else None
        if expression and not results:
            call = {"name": CALCULATOR_TOOL, "args": {"expression": expression}}
        elif self.knowledge_base_tool in self.tool_names and not results:
            call = {"name": self.knowledge_base_tool, "args": {"query": query}}
        if call is not None:
            call["id"] = f"call_{uuid.uuid4().hex[:24]}"
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[{**call, "args": json.dumps(call["args"]), "index": 0}],
                    usage_metadata=_usage(input_tokens, 0),
                    response_metadata=self._metadata(finish_reason="tool_calls"),
                    chunk_position="last",
                )
            )
            return
        answer, citations = self._answer(query, results)
        words = re.findall(r"\S+\s*", answer)
        for word in words[:-1]:
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content=words[-1],
                usage_metadata=_usage(input_tokens, approximate_tokens(answer)),
                response_metadata={**self._metadata(finish_reason="stop"), "citations": citations},
                chunk_position="last",
            )
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Pure computation in microseconds: no thread pool needed.
        for chunk in self._stream(messages, stop=stop, **kwargs):
            yield chunk

    def _answer(self, query: str, results: list[ToolMessage]) -> tuple[str, list[dict[str, Any]]]:
        computed = [m for m in results if m.name == CALCULATOR_TOOL]
        if computed:
            # "12 * 7 = 84", or the calculator's refusal ("could not compute this: ..."), said as is.
            return computed[-1].text, []
        passages = [p for m in results if isinstance(m.artifact, list) for p in m.artifact if isinstance(p, dict)]
        if not passages:
            refused = [m for m in results if m.response_metadata.get(REJECTED)]
            if refused:  # a person declined the search: say so, not that the knowledge base failed
                return refused[-1].text, []
            if any(m.status == "error" for m in results):
                return COULD_NOT_CONSULT, []
            if not results and self.knowledge_base_tool not in self.tool_names:
                return "I have no knowledge base to consult for this question.", []
            return NOTHING_RELEVANT, []
        return compose_answer(query, passages, self.max_sentences)

    def _metadata(self, finish_reason: str) -> dict[str, Any]:
        # usage_is_approximate: the token counts are whitespace words, not a tokenizer's count.
        return {"model_name": self.model_name, "finish_reason": finish_reason, "usage_is_approximate": True}


def _question(messages: Sequence[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _tool_results_since_question(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, ToolMessage):
            results.append(message)
    return results[::-1]


def _usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
    )
