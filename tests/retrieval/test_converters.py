"""PDF, DOCX and HTML files into Markdown with their headings, lists and tables; unreadable files refused."""

from __future__ import annotations

import base64
import io
import itertools
import re
import zipfile

import pytest
from threadline_retrieval.chunking import Chunker, split_sentences
from threadline_retrieval.converters import DOCX, HTML, PDF, ConversionError, to_markdown

from tests.retrieval.fixtures import documents

EXPECTED = [
    "# Anvil Handbook",
    "## Care and storage",
    documents.PARAGRAPH,
    "- Wipe the face after every job.\n- Oil the horn once a week.\n- Check the hardy hole for cracks.",
    "| Forge 50 | 50 kg | 400 EUR |\n| Forge 80 | 80 kg | 650 EUR |",
    "### Oiling schedule",
    documents.SUB_PARAGRAPH,
]


@pytest.mark.parametrize(
    ("content_type", "make"), [(PDF, documents.pdf), (DOCX, documents.docx), (HTML, documents.html)], ids=str
)
def test_headings_lists_and_tables_survive_as_markdown(content_type: str, make) -> None:
    made = make()
    converted = (
        to_markdown(content_type, text=made) if isinstance(made, str) else to_markdown(content_type, content=made)
    )
    assert converted.content_type == "text/markdown"
    at = 0
    for part in EXPECTED:  # each in the document's order
        found = converted.text.find(part, at)
        assert found >= 0, f"{part!r} missing after offset {at} in:\n{converted.text}"
        at = found + len(part)
    assert "| Model | Weight | Price |" in converted.text


@pytest.mark.parametrize(("content_type", "make"), [(PDF, documents.pdf), (DOCX, documents.docx)], ids=str)
def test_chunks_of_a_converted_file_carry_headings_and_whole_sentences(content_type: str, make) -> None:
    markdown = to_markdown(content_type, content=make()).text
    chunks = Chunker(220, 60).split(markdown, content_type)
    assert len(chunks) >= 3
    whole = set(split_sentences(documents.PARAGRAPH)) | set(split_sentences(documents.SUB_PARAGRAPH))
    for chunk in chunks:
        # A chunk opens with its heading line, after those of the sections above it that hold no text of their own.
        blocks = chunk.text.split("\n\n")
        headings = [b for b in itertools.takewhile(lambda b: b.startswith("#"), blocks)]
        assert headings[-1].lstrip("#").strip() == chunk.metadata["section"].split(" > ")[-1]
        for line in blocks[len(headings) :]:
            if not line.startswith(("-", "|")):
                assert set(split_sentences(line)) <= whole, line
    assert {c.metadata["section"] for c in chunks} == {
        "Anvil Handbook > Care and storage",
        "Anvil Handbook > Care and storage > Oiling schedule",
    }


def test_a_pdfs_running_header_and_page_numbers_are_dropped() -> None:
    text = to_markdown(PDF, content=documents.pdf(pages=4)).text
    assert documents.RUNNING_HEADER not in text and not re.search(r"^\d+$", text, re.MULTILINE), text
    assert text.count(documents.MORE[0]) == 2 and text.count(documents.MORE[1]) == 1
    assert text.startswith("# Anvil Handbook\n\n## Care and storage\n\nAnvils rust")


def test_a_file_may_come_base64_encoded_as_text() -> None:
    text = base64.b64encode(documents.pdf()).decode()
    assert "# Anvil Handbook" in to_markdown(PDF, text=text).text


def _docx_without_body() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    return out.getvalue()


@pytest.mark.parametrize(
    ("content_type", "content", "reason"),
    [
        (PDF, b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "not a readable PDF"),
        (PDF, documents.pdf()[:200], "not a readable PDF"),
        (PDF, b"GIF89a not a pdf", "not a PDF file"),
        (DOCX, b"PK\x03\x04 truncated zip", "not a"),
        (DOCX, _docx_without_body(), "not a readable DOCX"),
        (DOCX, documents.pdf(), "not a DOCX file"),
    ],
    ids=["corrupt-pdf", "truncated-pdf", "not-pdf", "corrupt-docx", "docx-without-body", "pdf-as-docx"],
)
def test_an_unreadable_file_is_a_conversion_error_that_says_why(content_type: str, content: bytes, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason):
        to_markdown(content_type, content=content)


def test_a_pdf_without_text_is_refused_as_needing_ocr() -> None:
    empty = documents.pdf().replace(b"Tj", b"Tz")  # the text-showing operators gone: a page of no text
    with pytest.raises(ConversionError, match="no text"):
        to_markdown(PDF, content=empty)


def test_bad_base64_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="base64"):
        to_markdown(PDF, text="not base64!")


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="image/png"):
        to_markdown("image/png", text="x")
