"""Evaluation cases, one JSON object a line: a question and what is known about its right answer.

The team's question set (``evals/data/``) and the gateway's feedback export (``GET /api/v1/feedback``)
write the same shape, so ``python -m evals --cases file.jsonl`` reads either: a case with a
``passage`` is judged on retrieval and citations, one with a recorded ``answer`` also on how
faithful that answer was to the passages it cited.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DATA = Path(__file__).parent / "data"
# GPL-3.0 as Debian ships it (/usr/share/common-licenses/GPL-3): its text allows verbatim copies.
DOCUMENT = DATA / "gpl-3.0.txt"
QUESTION_SET = DATA / "gpl-3.0-questions.jsonl"


class CitedPassage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    document_id: str = ""
    chunk_id: str = ""
    text: str


class Case(BaseModel):
    """A question; ``passage`` is the exact span of the document its answer needs (whitespace folded)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    passage: str | None = None
    answer: str | None = Field(default=None, description="An answer given before (a feedback export).")
    citations: list[CitedPassage] = Field(default_factory=list)
    comment: str = ""
    run_id: str | None = None
    rating: int | None = None


def fold(text: str) -> str:
    """Whitespace folded to single spaces: a quote is written on one line, the document wraps it."""
    return " ".join(text.split())


def read_cases(path: Path) -> list[Case]:
    """Every case of a JSONL file; a bad line is an error naming it, not a silently smaller set."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                cases.append(Case.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not an evaluation case: {exc}") from exc
    return cases


def check_passages(cases: list[Case], document: str) -> None:
    """Each needed passage must be a span of the document, or its recall would be meaningless."""
    folded = fold(document)
    missing = [case.id for case in cases if case.passage and fold(case.passage) not in folded]
    if missing:
        raise ValueError(f"passages not found in the document: {', '.join(missing)}")
