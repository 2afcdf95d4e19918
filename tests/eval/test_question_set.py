"""The question set through the real retrieval service: fails when finding the needed passage gets worse.

The bounds sit a little under what the set measured on this tree (docs/eval.md): two more
misses in the top 3 than measured, in the default (hybrid) and the keyword mode.
"""

from __future__ import annotations

from typing import Any

import pytest

from evals.cases import DOCUMENT, QUESTION_SET, check_passages, fold, read_cases
from evals.retrieval import question_set

# Measured (docs/eval.md): hybrid recall@3 0.955, MRR 0.878; keyword recall@3 0.932, MRR 0.858.
BOUNDS = {
    "hybrid": {"recall@3": 0.9, "mrr@10": 0.8},
    "keyword": {"recall@3": 0.88, "mrr@10": 0.78},
}


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    return question_set(read_cases(QUESTION_SET), DOCUMENT, modes=list(BOUNDS))


def test_the_question_set_is_sound() -> None:
    cases = read_cases(QUESTION_SET)
    assert 30 <= len(cases) <= 50
    assert len({case.id for case in cases}) == len(cases)
    check_passages(cases, DOCUMENT.read_text(encoding="utf-8"))
    # Each passage is one span, found once: a question needs one place of the document.
    document = fold(DOCUMENT.read_text(encoding="utf-8"))
    assert all(document.count(fold(case.passage or "")) == 1 for case in cases)


@pytest.mark.parametrize("mode", list(BOUNDS))
def test_retrieval_finds_the_needed_passage_at_least_as_often_as_measured(measured: dict[str, Any], mode: str) -> None:
    figures = measured["modes"][mode]
    for metric, bound in BOUNDS[mode].items():
        assert figures[metric] >= bound, f"{mode} {metric} {figures[metric]} < {bound}; missed: {figures['missed@3']}"
