"""Uploaded files into Markdown: the one place a PDF, DOCX or HTML file becomes text the chunker reads.

Both ways in (the gRPC ``Ingest`` call and the ingest events) pass every document through
:func:`to_markdown`, so a file reads the same whichever way it came. Structure is kept as
Markdown text: headings as ``#`` lines (the chunker files each chunk under them), list items as
``-`` lines, table rows as ``| a | b |`` lines.

PDF: pdfminer.six's layout analysis, plus what it does not give: a PDF has no headings, only
bigger or bolder lines, so lines set larger than the body text become headings (one level per
size), and lines side by side in short cells become table rows. DOCX: mammoth, which maps Word's
heading, list and table styles to HTML, then the HTML path. HTML: the standard library's parser.
docs/architecture.md ("Ingestion as events") says why these and not markitdown or docling.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser

PLAIN = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_TYPES = (PLAIN, MARKDOWN, HTML)
# Files, not text: sent as bytes (gRPC ``Document.content``) or base64 in ``text`` (JSON ingest events).
BINARY_TYPES = (PDF, DOCX)
CONTENT_TYPES = (*TEXT_TYPES, *BINARY_TYPES)


class ConversionError(ValueError):
    """The file is not what its type says, or cannot be read (corrupt, encrypted, no text in it)."""


@dataclass(frozen=True, slots=True)
class Converted:
    text: str
    content_type: str  # text/markdown or text/plain: what the chunker splits


def to_markdown(content_type: str, text: str = "", content: bytes = b"") -> Converted:
    """The document as the chunker reads it; a binary type takes ``content``, or else ``text`` as base64.

    Raises ConversionError for a file that cannot be read and ValueError for an unknown type.
    """
    content_type = content_type or PLAIN
    if content_type == PLAIN:
        return Converted(text, PLAIN)
    if content_type == MARKDOWN:
        return Converted(text, MARKDOWN)
    if content_type == HTML:
        return Converted(html_to_markdown(text), MARKDOWN)
    if content_type not in BINARY_TYPES:
        raise ValueError(f"content type {content_type!r} is not one of {', '.join(CONTENT_TYPES)}")
    data = content or _from_base64(text)
    markdown = pdf_to_markdown(data) if content_type == PDF else docx_to_markdown(data)
    if not markdown.strip():
        raise ConversionError("the file holds no text (a scanned PDF needs OCR first)")
    return Converted(markdown, MARKDOWN)


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConversionError("a PDF or DOCX sent as text must be base64") from exc


# --- HTML -------------------------------------------------------------------------------------------------------

# Not the page's content: code, styling, and the site's navigation menus (noise in every chunk they reach).
_SKIPPED = frozenset({"script", "style", "head", "template", "noscript", "svg", "nav"})
_BLOCKS = frozenset(
    {"p", "div", "br", "hr", "section", "article", "main", "header", "footer", "aside", "blockquote"}
    | {"pre", "dd", "dt", "dl", "figure", "figcaption", "caption", "form", "address", "details", "summary"}
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _MarkdownWriter(HTMLParser):
    """Headings, list items and table rows as Markdown lines; every other block as a paragraph."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # (kind, text): kind "item" and "row" blocks join line by line
        self._inline: list[str] = []
        self._prefix, self._kind = "", "para"
        self._skipping = 0
        self._lists: list[list[int]] = []  # per open list: [ordered, items so far]
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._header_row = False
        self._rows_in_table = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._inline).split())
        if text:
            self.blocks.append((self._kind, self._prefix + text))
        self._inline, self._prefix, self._kind = [], "", "para"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif self._skipping:
            return
        elif tag in _HEADINGS:
            self._flush()
            self._prefix, self._kind = "#" * _HEADINGS[tag] + " ", "heading"
        elif tag in ("ul", "ol"):
            self._flush()
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            self._flush()
            depth = max(len(self._lists) - 1, 0)
            marker = "- "
            if self._lists:
                self._lists[-1][1] += 1
                if self._lists[-1][0]:
                    marker = f"{self._lists[-1][1]}. "
            self._prefix, self._kind = "  " * depth + marker, "item"
        elif tag == "table":
            self._flush()
            self._rows_in_table = 0
        elif tag == "tr":
            self._flush()
            self._row, self._header_row = [], False
        elif tag in ("td", "th"):
            self._cell = []
            self._header_row = self._header_row or tag == "th"
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(self._skipping - 1, 0)
        elif self._skipping:
            return
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()).replace("|", "/"))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if any(self._row):
                self.blocks.append(("row", "| " + " | ".join(self._row) + " |"))
                if self._rows_in_table == 0 and self._header_row:
                    self.blocks.append(("row", "|" + " --- |" * len(self._row)))
                self._rows_in_table += 1
            self._row = None
        elif tag in ("ul", "ol"):
            self._flush()
            if self._lists:
                self._lists.pop()
        elif tag in _HEADINGS or tag == "li" or tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        (self._cell if self._cell is not None else self._inline).append(data)

    def markdown(self) -> str:
        self._flush()
        out: list[str] = []
        previous = ""
        for kind, text in self.blocks:
            if out:
                # A list's items, or a table's rows, stay one block: a line each, no blank line between.
                out.append("\n" if kind == previous and kind in ("item", "row") else "\n\n")
            out.append(text)
            previous = kind
        return "".join(out)


def html_to_markdown(html: str) -> str:
    """The visible text of an HTML document, its headings, lists and tables as Markdown."""
    writer = _MarkdownWriter()
    writer.feed(html)
    writer.close()
    return writer.markdown()


# --- DOCX -------------------------------------------------------------------------------------------------------


def docx_to_markdown(data: bytes) -> str:
    """Word's headings, lists and tables, through mammoth's HTML."""
    import mammoth  # type: ignore[import-untyped]  # imported when a DOCX comes: most ingests never need it

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ConversionError("not a DOCX file (a DOCX is a zip archive)")
    try:
        result = mammoth.convert_to_html(io.BytesIO(data))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise ConversionError(f"not a readable DOCX file ({type(exc).__name__})") from exc
    except Exception as exc:  # mammoth's XML parser raises its own errors for a broken document.xml
        raise ConversionError(f"not a readable DOCX file ({type(exc).__name__})") from exc
    return html_to_markdown(result.value)


# --- PDF --------------------------------------------------------------------------------------------------------

# Bullets a PDF sets before a list item (•, ◦, ▪, ▫, ●, ○, ■, □, ‣, ∙, ·, *, en dash, -), or "1." / "(1)".
_BULLETS = "\u2022\u25e6\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u2023\u2219\u00b7*\u2013-"
_BULLET = re.compile(f"^(?:[{_BULLETS}]|\\(?\\d{{1,3}}[.)])\\s+")
_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
_MAX_HEADING_CHARS = 120
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE)
_CLOSED = re.compile(r"[.!?:][\"')\]]*$")
_CELL_WIDTH = 0.3  # of the page's width: wider pieces side by side are text columns, not table cells


@dataclass(slots=True)
class _Line:
    text: str
    size: float
    bold: bool
    x0: float
    x1: float
    y0: float
    y1: float


def pdf_to_markdown(data: bytes) -> str:
    """A PDF's text in reading order, with headings guessed from font size and table rows from layout."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTChar, LTTextContainer, LTTextLine
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException

    if not data.lstrip()[:5] == b"%PDF-":
        raise ConversionError("not a PDF file (it does not start with %PDF-)")
    pages: list[tuple[float, list[list[_Line]]]] = []  # per page: its width and its text boxes' lines
    try:
        for page in extract_pages(io.BytesIO(data), laparams=LAParams()):
            boxes = []
            for element in page:
                if not isinstance(element, LTTextContainer):
                    continue
                lines = []
                for line in element:
                    if not isinstance(line, LTTextLine) or not (text := " ".join(line.get_text().split())):
                        continue
                    chars = [c for c in line if isinstance(c, LTChar) and c.get_text().strip()]
                    if not chars:
                        continue
                    size = Counter(round(c.size, 1) for c in chars).most_common(1)[0][0]
                    bold = all("bold" in c.fontname.lower() for c in chars)
                    lines.append(_Line(text, size, bold, line.x0, line.x1, line.y0, line.y1))
                if lines:
                    boxes.append(lines)
            pages.append((page.width, boxes))
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise ConversionError("the PDF is encrypted") from exc
    except (PDFSyntaxError, PSException) as exc:
        raise ConversionError(f"not a readable PDF file ({exc})") from exc
    except Exception as exc:  # pdfminer raises plain errors (TypeError, KeyError, ...) deep in a broken file
        raise ConversionError(f"not a readable PDF file ({type(exc).__name__})") from exc
    return _pdf_markdown(pages)


def _without_running_lines(pages: list[tuple[float, list[list[_Line]]]]) -> list[tuple[float, list[list[_Line]]]]:
    """The pages less their running headers and footers (a line at a page's top or bottom edge, repeated on
    many pages) and page numbers: noise in every chunk of their page, and they cut a paragraph that goes on
    over the page. A line repeated inside pages (a table's "Yes") stays."""
    edges: list[set[int]] = []
    seen: Counter[str] = Counter()
    for _, boxes in pages:
        lines = [line for box in boxes for line in box]
        top = max((line.y1 for line in lines), default=0.0)
        bottom = min((line.y0 for line in lines), default=0.0)
        edge = {id(x) for x in lines if top - x.y1 < 2 * (x.y1 - x.y0) or x.y0 - bottom < 2 * (x.y1 - x.y0)}
        edges.append(edge)
        seen.update({line.text for line in lines if id(line) in edge})
    repeated = max(3, len(pages) // 2)
    kept = []
    for (width, boxes), edge in zip(pages, edges, strict=True):
        left = [
            [x for x in box if id(x) not in edge or (seen[x.text] < repeated and not _PAGE_NUMBER.match(x.text))]
            for box in boxes
        ]
        kept.append((width, [box for box in left if box]))
    return kept


def _pdf_markdown(pages: list[tuple[float, list[list[_Line]]]]) -> str:
    pages = _without_running_lines(pages)
    every = [line for _, boxes in pages for box in boxes for line in box]
    if not every:
        return ""
    weight: Counter[float] = Counter()
    for line in every:
        weight[line.size] += len(line.text)
    body = weight.most_common(1)[0][0]
    larger = sorted({line.size for line in every if line.size >= body * _HEADING_RATIO}, reverse=True)
    levels = {size: min(n + 1, 6) for n, size in enumerate(larger)}
    blocks: list[tuple[str, str]] = []
    for width, boxes in pages:
        rows = _table_rows([line for box in boxes for line in box], width)
        done: set[int] = set()
        for box in boxes:
            paragraph: list[str] = []
            kind = "para"

            def close() -> None:
                nonlocal paragraph, kind
                if paragraph:
                    blocks.append((kind, _join_lines(paragraph)))
                paragraph, kind = [], "para"

            for line in box:
                row = rows.get(id(line))
                if row is not None:
                    close()
                    if id(row[0]) not in done:
                        done.add(id(row[0]))
                        blocks.append(("row", "| " + " | ".join(cell.text for cell in row) + " |"))
                elif line.size in levels and len(line.text) <= _MAX_HEADING_CHARS:
                    close()
                    blocks.append(("heading", "#" * levels[line.size] + " " + line.text))
                elif _BULLET.match(line.text):
                    close()
                    paragraph, kind = ["- " + _BULLET.sub("", line.text)], "item"
                else:
                    paragraph.append(line.text)
            close()
    out: list[str] = []
    previous = ""
    for kind, text in blocks:
        if out and kind == previous == "para" and not _CLOSED.search(out[-1]) and text[:1].islower():
            # Layout analysis split a paragraph in two (a wide line gap, a page break): one paragraph again.
            out[-1] = _join_lines([out[-1], text])
            continue
        if out:
            out.append("\n" if kind == previous and kind in ("item", "row") else "\n\n")
        out.append(text)
        previous = kind
    return "".join(out)


def _table_rows(lines: list[_Line], page_width: float) -> dict[int, list[_Line]]:
    """Lines that sit side by side as short cells, each mapped (by id) to its whole row, cells left to right.

    Two columns of running text also sit side by side, but their lines are wide: only pieces narrower than
    a third of the page count as cells.
    """
    bands: list[list[_Line]] = []
    for line in sorted(lines, key=lambda item: -(item.y0 + item.y1)):
        middle = (line.y0 + line.y1) / 2
        for band in bands:
            other = band[0]
            if abs((other.y0 + other.y1) / 2 - middle) < (other.y1 - other.y0) / 2:
                band.append(line)
                break
        else:
            bands.append([line])
    rows: dict[int, list[_Line]] = {}
    for band in bands:
        if len(band) >= 2 and all(line.x1 - line.x0 < page_width * _CELL_WIDTH for line in band):
            cells = sorted(band, key=lambda item: item.x0)
            for line in cells:
                rows[id(line)] = cells
    return rows


def _join_lines(lines: list[str]) -> str:
    """A paragraph's wrapped lines as one line, a word broken by a hyphen at a line's end made whole."""
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower():
            text = text[:-1] + line
        else:
            text += " " + line
    return text
