"""Chunks open and close between sentences and carry their section's heading."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from threadline_retrieval.chunking import REPEATED_CHARS, Chunker, split_sentences

from tests.retrieval.fixtures import documents


def test_markdown_chunks_carry_their_section() -> None:
    text = "# Guide\n\nIntro words.\n\n## Durability\n\nRuns are kept in JetStream.\n\n## Speed\n\nFAISS is fast.\n"
    chunks = Chunker(200, 20).split(text, "text/markdown")
    by_section = {c.metadata.get("section"): c.text for c in chunks}
    assert by_section["Guide > Durability"] == "## Durability\n\nRuns are kept in JetStream."
    assert "FAISS" in by_section["Guide > Speed"]
    assert "JetStream" not in by_section["Guide > Speed"]


def test_a_heading_sits_under_the_open_headings_of_higher_levels_only() -> None:
    text = "# A\n\nOne.\n\n### C\n\nThree.\n\n## B\n\nTwo.\n\n# D\n\nFour.\n"
    sections = [c.metadata["section"] for c in Chunker(200, 20).split(text, "text/markdown")]
    assert sections == ["A", "A > C", "A > B", "D"]


def test_long_text_is_split_with_overlap_of_whole_sentences() -> None:
    sentences = [f"Sentence number {n} says something." for n in range(200)]
    chunks = Chunker(300, 60).split(" ".join(sentences), "text/plain")
    assert len(chunks) > 10
    assert all(len(c.text) <= 300 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.text.split(". ")[0] + "." in before.text  # overlap: the next repeats the last sentence
    for chunk in chunks:  # every chunk is whole sentences: never opens or closes mid-way
        assert set(split_sentences(chunk.text)) <= set(sentences), chunk.text


def test_every_chunk_of_a_long_section_keeps_its_heading_and_whole_sentences() -> None:
    body = " ".join(f"The anvil number {n} weighs {n + 40} kilograms, e.g. for farriers." for n in range(60))
    text = f"# Catalogue\n\n## Heavy anvils\n\n{body}\n"
    chunks = Chunker(400, 100).split(text, "text/markdown")
    assert len(chunks) > 5
    for n, chunk in enumerate(chunks):
        assert chunk.metadata["section"] == "Catalogue > Heavy anvils"
        # "# Catalogue" holds no text of its own: its line opens the first chunk of the section below it.
        opening = "# Catalogue\n\n## Heavy anvils\n\n" if n == 0 else "## Heavy anvils\n\n"
        assert chunk.text.startswith(opening) and len(chunk.text) <= 400
        body_text = chunk.text.removeprefix(opening)
        assert re.match(r"The anvil number \d+ weighs", body_text), body_text
        assert body_text.endswith("for farriers."), body_text


def test_sentences_do_not_end_at_abbreviations_initials_or_decimals() -> None:
    text = 'Dr. Smith weighed 3.5 kg, e.g. on J. Doe\'s scale. It was "fine." Then? Yes! done.'
    assert split_sentences(text) == [
        "Dr. Smith weighed 3.5 kg, e.g. on J. Doe's scale.",
        'It was "fine."',
        "Then?",
        "Yes! done.",
    ]


def test_list_items_and_table_rows_stay_whole_and_the_rule_row_stays_under_the_header() -> None:
    text = (
        "## Parts\n\n- A horn for bending.\n- A face for flattening.\n  It is hardened.\n\n"
        "| Part | Use |\n| --- | --- |\n| Horn | Bending |\n"
    )
    (chunk,) = Chunker(500, 50).split(text, "text/markdown")
    assert chunk.text == (
        "## Parts\n\n- A horn for bending.\n- A face for flattening. It is hardened.\n\n"
        "| Part | Use |\n| --- | --- |\n| Horn | Bending |"
    )


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    sentence = " ".join(["word"] * 100) + "."
    chunks = Chunker(100, 10).split(sentence, "text/plain")
    assert all(len(c.text) <= 100 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == sentence.split()


def test_html_chunks_keep_headings_lists_and_tables_but_no_hidden_text() -> None:
    chunks = Chunker(1000, 100).split(documents.html(), "text/html")
    text = "\n".join(c.text for c in chunks)
    assert "hidden" not in text and "Home" not in text and "p {}" not in text
    care = next(c for c in chunks if c.metadata.get("section") == "Anvil Handbook > Care and storage")
    assert "- Oil the horn once a week." in care.text and "| Forge 80 | 80 kg | 650 EUR |" in care.text


def test_a_table_that_runs_on_into_the_next_chunk_repeats_its_header_row() -> None:
    rows = "\n".join(f"| Forge {n} | {n} kg | {10 * n} EUR |" for n in range(40, 60))
    text = f"## Price list\n\n| Model | Weight | Price |\n| --- | --- | --- |\n{rows}\n"
    chunks = Chunker(200, 30).split(text, "text/markdown")
    assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk.text.startswith("## Price list\n\n| Model | Weight | Price |\n| --- | --- | --- |\n| Forge"), (
            chunk.text
        )
    seen = [line for c in chunks for line in c.text.splitlines() if line.startswith("| Forge")]
    assert sorted(set(seen)) == sorted(rows.splitlines())


@pytest.mark.parametrize("name", ["architecture.md", "benchmarks.md"])
def test_a_document_is_put_back_together_from_its_chunks_by_what_each_repeats(name: str) -> None:
    """Headings, overlaps and repeated table headers are said once: what a reader of the whole document gets."""
    text = (Path(__file__).parents[2] / "docs" / name).read_text()
    joined = ""
    for chunk in Chunker(1000, 150).split(text, "text/markdown"):
        rest = chunk.text[int(chunk.metadata.get(REPEATED_CHARS, "0")) :]
        joined += rest if rest[:1].isspace() or not joined else f"\n\n{rest}"
    assert joined.split() == text.split()
