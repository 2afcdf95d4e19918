from threadline_retrieval.chunking import Chunker, html_to_text


def test_markdown_chunks_carry_their_section() -> None:
    text = "# Guide\n\nIntro words.\n\n## Durability\n\nRuns are kept in JetStream.\n\n## Speed\n\nFAISS is fast.\n"
    chunks = Chunker(200, 20).split(text, "text/markdown")
    by_section = {c.metadata.get("section"): c.text for c in chunks}
    assert "JetStream" in by_section["Guide > Durability"]
    assert "FAISS" in by_section["Guide > Speed"]
    assert "JetStream" not in by_section["Guide > Speed"]


def test_long_text_is_split_with_overlap() -> None:
    sentences = [f"Sentence number {n} says something." for n in range(200)]
    chunks = Chunker(300, 60).split(" ".join(sentences), "text/plain")
    assert len(chunks) > 10
    assert all(len(c.text) <= 300 for c in chunks)
    # Overlap: each chunk starts with words the previous one ended with.
    assert chunks[1].text.split()[0] in chunks[0].text


def test_html_keeps_visible_text_only() -> None:
    html = (
        "<html><head><style>p{}</style><script>var x=1</script></head><body><h1>Title</h1><p>One &amp; two</p></body>"
    )
    assert html_to_text(html) == "Title\n\nOne & two"
