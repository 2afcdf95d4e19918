"""Documents into chunks that start and end between sentences, each filed under its section's heading.

A chunk is whole sentences (or whole list items, table rows, code lines) packed up to the chunk
size, and the next one repeats the last sentences of the one before up to the overlap. Every
chunk of a Markdown document opens with its section's heading line (``## Refunds``) and names
the headings it sits under in ``metadata["section"]`` (``Billing > Refunds``): the heading's words
reach both the keyword and the dense index, a hit says where it came from, and a reader (the
extractive answerer) sees a chunk open on a block, never mid-sentence. Only a single sentence
longer than a chunk is cut, between words. A chunk that repeats what came before (its heading
line, the overlap, a table's header row) says how much in ``metadata["repeated_chars"]``, so a
document can be put back together from its chunks exactly.

Input is Markdown or plain text; converters.py turns HTML, PDF and DOCX into Markdown first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from threadline_retrieval.converters import BINARY_TYPES, CONTENT_TYPES, MARKDOWN, html_to_markdown

__all__ = ["CONTENT_TYPES", "REPEATED_CHARS", "Chunk", "Chunker", "split_sentences"]

# The metadata key of the length of a chunk's start that repeats its document's earlier chunks.
REPEATED_CHARS = "repeated_chars"

_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+\S")
_ROW = re.compile(r"^\s*\|")
_RULE_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
# A sentence ends at . ! or ? (maybe behind a closing quote or bracket) before a space and a capital, a digit or
# an opening mark; not after a common abbreviation or an initial ("e.g. this", "J. Smith").
_SENTENCE_END = re.compile("(?<=[.!?])[\"'\u201d\u2019)\\]]*\\s+(?=[\"'\u201c\u2018(\\[*_`]*[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "cf.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "no.", "fig.", "eq."}
    | {"inc.", "ltd.", "co.", "jr.", "sr.", "al.", "approx.", "dept.", "vol.", "p.", "pp.", "ch.", "sec."}
)


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Unit:
    """The smallest piece a chunk holds whole: a sentence, a list item, a table row, a code line."""

    text: str
    block: int  # units of one block join with ``joiner``, blocks with a blank line
    joiner: str
    header: str = ""  # a table row's: its table's first row, repeated atop a chunk the table runs on into


@dataclass(slots=True)
class _Section:
    path: list[str]
    levels: list[int]  # the heading level of each title in ``path``
    units: list[_Unit] = field(default_factory=list)


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self._size = chunk_size
        self._overlap = chunk_overlap

    def split(self, text: str, content_type: str) -> list[Chunk]:
        """Chunks in document order; ``content_type`` is text/markdown, text/html or (else) plain text.

        A PDF's or DOCX's ``text`` is its Markdown, as converters.to_markdown made it before the service
        stored anything."""
        if content_type == "text/html":
            text, content_type = html_to_markdown(text), MARKDOWN
        chunks = []
        untold = ""  # the heading lines of sections with no text of their own ("# Billing" right before "## Refunds")
        for section in _sections(text, markdown=content_type in (MARKDOWN, *BINARY_TYPES)):
            heading = f"{'#' * section.levels[-1]} {section.path[-1]}" if section.path else ""
            metadata = {"section": " > ".join(section.path)} if section.path else {}
            # A heading so long it would crowd out the text is cut; the section's metadata keeps it whole.
            heading = heading[: self._size // 4]
            if not section.units:
                untold += f"{heading}\n\n" if heading else ""
                continue
            budget = self._size - (len(heading) + 2 if heading else 0) - len(untold)
            for n, (body, repeated) in enumerate(self._pack(section.units, budget)):
                text = f"{heading}\n\n{body}" if heading else body
                if n:  # the heading line (and the overlap) came with the section's earlier chunks
                    repeated += len(text) - len(body)
                    chunks.append(Chunk(text, {**metadata, REPEATED_CHARS: str(repeated)}))
                else:
                    chunks.append(Chunk(untold + text, metadata))
                    untold = ""
        return chunks

    def _pack(self, units: list[_Unit], budget: int) -> list[tuple[str, int]]:
        """Whole units up to ``budget`` characters a chunk, each with the length of its start that repeats the
        chunk before (up to the overlap, and a table's header row)."""
        pieces = [piece for unit in units for piece in _fit(unit, budget)]
        bodies: list[tuple[str, int]] = []
        current: list[_Unit] = []
        repeated = 0
        for unit in pieces:
            if current and len(_render([*current, unit])) > budget:
                bodies.append((_render(current), repeated))
                current = self._tail(current, unit, budget)
                if unit.header and all(u.text != unit.header for u in current):
                    current = _with_header(current, unit, budget)
                repeated = len(_render(current))
            current.append(unit)
        if current:
            bodies.append((_render(current), repeated))
        return bodies

    def _tail(self, previous: list[_Unit], following: _Unit, budget: int) -> list[_Unit]:
        """The last whole units of the previous chunk, up to the overlap, that leave room for ``following``."""
        tail: list[_Unit] = []
        for unit in reversed(previous):
            candidate = [unit, *tail]
            if len(_render(candidate)) > self._overlap or len(_render([*candidate, following])) > budget:
                break
            tail = candidate
        return tail


def _with_header(tail: list[_Unit], row: _Unit, budget: int) -> list[_Unit]:
    """The overlap before a table row that opens a chunk, with the table's header row before its first row
    (overlap dropped from the front to make room for it)."""
    at = next((n for n, unit in enumerate(tail) if unit.block == row.block), len(tail))
    units = [*tail[:at], _Unit(row.header, row.block, "\n"), *tail[at:]]
    while len(_render([*units, row])) > budget and units[0].text != row.header:
        units.pop(0)
    return units if len(_render([*units, row])) <= budget else tail


def _render(units: list[_Unit]) -> str:
    out: list[str] = []
    for n, unit in enumerate(units):
        if n:
            out.append(unit.joiner if unit.block == units[n - 1].block else "\n\n")
        out.append(unit.text)
    return "".join(out)


def _fit(unit: _Unit, budget: int) -> list[_Unit]:
    """A unit longer than a chunk, cut between words: the one place a chunk may end inside a sentence."""
    if len(unit.text) <= budget:
        return [unit]
    pieces, current = [], ""
    for word in unit.text.split(" "):
        while len(word) > budget:  # a "word" longer than a chunk (a URL, a hash): cut anywhere
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:budget])
            word = word[budget:]
        if current and len(current) + 1 + len(word) > budget:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return [_Unit(piece, unit.block, " ") for piece in pieces]


def split_sentences(text: str) -> list[str]:
    """The sentences of one paragraph, each with its closing punctuation; abbreviations do not end one."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].rsplit(None, 1)
        last_word = before[-1].lower() if before else ""
        stripped = last_word.rstrip("\"'\u201d\u2019)]")
        if stripped in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", stripped):
            continue
        sentences.append(text[start : match.start()] + text[match.start() : match.end()].rstrip())
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


def _sections(text: str, *, markdown: bool) -> list[_Section]:
    """The document as sections (heading path, units); plain text has one section and no headings."""
    sections = [_Section([], [])]
    block = 0
    paragraph: list[str] = []
    fence: list[str] | None = None

    def close_paragraph() -> None:
        nonlocal block
        if paragraph:
            for sentence in split_sentences(" ".join(paragraph)):
                sections[-1].units.append(_Unit(sentence, block, " "))
            paragraph.clear()
            block += 1

    previous_kind = ""
    table_header = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if fence is not None:
            if markdown and _FENCE.match(line):
                sections[-1].units.extend(_Unit(code, block, "\n") for code in [*fence, line] if code.strip())
                block += 1
                fence = None
            else:
                fence.append(line)
            continue
        heading = _ATX.match(line) if markdown else None
        if markdown and _FENCE.match(line):
            close_paragraph()
            fence = [line]
            previous_kind = "code"
        elif heading:
            close_paragraph()
            level, title = len(heading.group(1)), heading.group(2).strip()
            # A heading sits under the open headings of a higher level: "## Refunds" after "# Billing".
            parents = [(t, n) for t, n in zip(sections[-1].path, sections[-1].levels, strict=True) if n < level]
            sections.append(_Section([t for t, _ in parents] + [title], [n for _, n in parents] + [level]))
            previous_kind = "heading"
        elif not line.strip():
            close_paragraph()
            previous_kind = ""
        elif _ITEM.match(line) or _ROW.match(line):
            close_paragraph()
            kind = "row" if _ROW.match(line) else "item"
            if kind != previous_kind:
                block += 1
            if kind == "item":
                sections[-1].units.append(_Unit(line, block, "\n"))
            elif _RULE_ROW.match(line):
                units = sections[-1].units
                if units and units[-1].text == table_header:  # the header's underline: kept with the header row,
                    head = units.pop()  # so a chunk's table, header repeated, is still a Markdown table
                    table_header = f"{head.text}\n{line.strip()}"
                    units.append(_Unit(table_header, head.block, head.joiner))
            else:
                first = kind != previous_kind
                sections[-1].units.append(_Unit(line.strip(), block, "\n", "" if first else table_header))
                table_header = line.strip() if first else table_header
            previous_kind = kind
        elif previous_kind == "item" and raw[:1].isspace() and sections[-1].units:
            # An item's wrapped continuation line: part of that item, not a paragraph of its own.
            last = sections[-1].units.pop()
            sections[-1].units.append(_Unit(f"{last.text} {line.strip()}", last.block, last.joiner))
        else:
            if previous_kind in ("item", "row"):
                block += 1
            paragraph.append(line.strip())
            previous_kind = "para"
    if fence is not None:  # an unclosed fence: its lines are text all the same
        sections[-1].units.extend(_Unit(code, block, "\n") for code in fence if code.strip())
    close_paragraph()
    return sections if sections[0].units else sections[1:]  # the text before any heading, if there is some
