"""The evaluation's scores on hand-made inputs: passage matching, rank metrics, lexical faithfulness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import metrics
from evals.answers import score
from evals.cases import Case, check_passages, read_cases

PASSAGE = "Sublicensing is not allowed; section 10 makes it unnecessary."


def test_a_chunk_holds_a_passage_when_half_of_it_is_there_in_one_run() -> None:
    assert metrics.coverage(PASSAGE, f"Conveying is permitted. {PASSAGE} Next section.") == 1.0
    cut = metrics.coverage(PASSAGE, "stated below. Sublicensing is not allowed; section")
    assert 0.5 <= cut < 1.0
    # The same words, scattered, are not the passage.
    assert metrics.coverage(PASSAGE, "section it makes allowed: not Sublicensing is 10 unnecessary") < 0.5


def test_rank_metrics_follow_the_first_chunk_that_holds_the_passage() -> None:
    holds = [False, False, True, True]
    assert (metrics.recall_at(holds, 2), metrics.recall_at(holds, 3)) == (0.0, 1.0)
    assert metrics.reciprocal_rank(holds) == pytest.approx(1 / 3)
    assert metrics.ndcg_at(holds) == pytest.approx(0.5)
    assert metrics.ndcg_at([False] * 10 + [True]) == 0.0


def test_faithfulness_is_the_share_of_sentences_their_citation_supports() -> None:
    citations = [PASSAGE, "You may charge any price or no price for each copy that you convey."]
    faithful = "Sublicensing is not allowed; section 10 makes it unnecessary [1]. You may charge any price [2]."
    assert metrics.sentences(faithful) == [
        "Sublicensing is not allowed; section 10 makes it unnecessary [1].",
        "You may charge any price [2].",
    ]
    assert metrics.faithfulness(faithful, citations) == 1.0
    # The right words under the wrong marker, and a sentence citing nothing, are not supported.
    swapped = "Sublicensing is not allowed [2]. Copies must be free of charge."
    assert metrics.faithfulness(swapped, citations) == 0.0
    assert metrics.faithfulness("", citations) is None
    assert not metrics.markers_valid("See [3].", citations)


def test_citation_correctness_asks_whether_a_cited_passage_holds_the_needed_one() -> None:
    case = Case(id="q", question="Is sublicensing allowed?", passage=PASSAGE)
    other = "You may charge any price or no price for each copy that you convey."
    assert score(case, "Yes, any price [1].", [other, PASSAGE])["cites_passage"] is False
    right = score(case, "Sublicensing is not allowed [2].", [other, PASSAGE])
    assert right["cites_passage"] is True and right["retrieved_passage"] is True


def test_a_case_file_names_its_bad_line_and_a_passage_must_be_in_the_document(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "a", "question": "q", "passage": "not there"}) + "\n{}\n")
    with pytest.raises(ValueError, match=r"cases\.jsonl:2"):
        read_cases(cases)
    cases.write_text(json.dumps({"id": "a", "question": "q", "passage": "not there"}) + "\n")
    with pytest.raises(ValueError, match="passages not found in the document: a"):
        check_passages(read_cases(cases), "a document")
