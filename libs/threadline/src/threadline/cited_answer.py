"""The cited-answer schema: the one structured output the offline extractive answerer can give.

The extractive answerer writes no text of its own, so it cannot fill an arbitrary schema; what it
has is an answer and the passages it cites. A client that wants that as JSON sends this schema
(or OpenAI's ``{"type": "json_object"}``) and gets ``{"answer", "citations": [{n, document_id,
chunk_id, text}]}``, ``n`` being the ``[n]`` marker in the answer. With a chat model configured the
same schema works like any other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from threadline.output_schema import OutputSchema
from threadline.run_events import Citation

_CITED_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "description": "The answer, citing passages as [n]."},
        "citations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": 1, "description": "The [n] marker in the answer."},
                    "document_id": {"type": "string"},
                    "chunk_id": {"type": "string"},
                    "text": {"type": "string", "description": "The cited passage."},
                },
                "required": ["n", "document_id", "chunk_id", "text"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["answer", "citations"],
    "additionalProperties": False,
}
# Words about a schema, not its shape: a client may title or describe the cited-answer schema (or not) as it likes.
_ANNOTATIONS = frozenset({"title", "description", "$schema", "$id", "$comment"})


def cited_answer_schema() -> dict[str, Any]:
    """The cited-answer JSON Schema (a copy: callers may change theirs)."""
    return copy.deepcopy(_CITED_ANSWER_SCHEMA)


def fills(output: OutputSchema) -> bool:
    """Whether a cited answer is what ``output`` asks for: JSON mode, or the cited-answer schema (titles aside)."""
    if output.mode == "json_object":
        return True
    return _canonical(_shape(output.json_schema)) == _canonical(_shape(_CITED_ANSWER_SCHEMA))


def cited_answer(answer: str, citations: Sequence[Citation]) -> dict[str, Any]:
    """The cited answer of a run: its text and its citations numbered as the answer's markers are."""
    return {
        "answer": answer,
        "citations": [
            {"n": n, "document_id": c.document_id, "chunk_id": c.chunk_id, "text": c.text}
            for n, c in enumerate(citations, start=1)
        ],
    }


def _shape(node: Any, *, names: bool = False) -> Any:
    """``node`` without annotations at any depth; ``names``: a ``properties`` object, whose keys are names, kept."""
    if isinstance(node, dict):
        return {
            k: _shape(v, names=k == "properties" and not names)
            for k, v in node.items()
            if names or k not in _ANNOTATIONS
        }
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return node


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
