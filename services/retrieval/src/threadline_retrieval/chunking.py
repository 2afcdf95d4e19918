"""Documents into chunks: markdown by section, HTML as its visible text, plain text by paragraph.

Each chunk keeps the headings it sits under (``section``), so a hit can say where
in the document it came from and a search for a heading's words finds its body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from langchain_text_splitters import Language, MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

CONTENT_TYPES = ("text/plain", "text/markdown", "text/html")
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    metadata: dict[str, str] = field(default_factory=dict)


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self._markdown_sections = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=False)
        self._markdown = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        self._plain = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def split(self, text: str, content_type: str) -> list[Chunk]:
        """Chunks in document order; ``content_type`` must be one of :data:`CONTENT_TYPES`."""
        if content_type == "text/markdown":
            return self._split_markdown(text)
        if content_type == "text/html":
            text = html_to_text(text)
        return [Chunk(part) for part in self._plain.split_text(text) if part.strip()]

    def _split_markdown(self, text: str) -> list[Chunk]:
        chunks = []
        for section in self._markdown_sections.split_text(text):
            heading = " > ".join(section.metadata[key] for _, key in _HEADERS if key in section.metadata)
            metadata = {"section": heading} if heading else {}
            chunks += [
                Chunk(part, metadata) for part in self._markdown.split_text(section.page_content) if part.strip()
            ]
        return chunks


class _TextExtractor(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "head", "template", "noscript"})
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, with block elements as paragraph breaks."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)
