"""The web chat page in headless Chromium (the Debian package), against the real mesh: ask, watch it stream, cite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Mesh


@pytest.fixture
def page(browser: Browser, mesh: Mesh) -> Iterator[Page]:
    context = browser.new_context(base_url=mesh.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        context.close()
    # No script errors, CSP violations or missing files; a refused question's 422 and a refused
    # upload's 415 are the expected failures.
    assert [e for e in errors if "status of 422" not in e and "status of 415" not in e] == [], errors


def ask(page: Page, question: str):
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "done", timeout=90_000)
    return answer


def test_a_question_streams_in_with_citations_and_the_thread_continues(page: Page) -> None:
    page.goto("/")
    assert page.url.endswith("/chat")
    expect(page.locator("#assistant option")).to_have_text(["agent", "research", "planner", "supervisor"])

    # Records every text the answer showed while it was being written, to see it arrive in pieces.
    page.evaluate(
        """() => {
            window.seen = [];
            new MutationObserver(() => {
                const text = document.querySelector('.message.assistant:last-child .text');
                if (text) window.seen.push(text.textContent);
            }).observe(document.querySelector('#log'), {childList: true, subtree: true, characterData: true});
        }"""
    )
    answer = ask(page, "How are runs kept durable?")

    text = answer.locator(".text").inner_text()
    assert "[1]" in text
    # The answer was drawn token by token, and every state it showed on the way was a prefix of the final one.
    assert int(answer.get_attribute("data-tokens")) >= 2
    seen = [s for s in page.evaluate("window.seen") if s]
    assert seen and seen[-1] == text
    assert all(text.startswith(partial) for partial in seen)
    citations = answer.locator(".citation")
    assert citations.count() >= 1
    assert citations.first.locator("strong").inner_text().endswith(".md")
    thread = page.locator("#thread").get_attribute("data-thread-id")
    assert thread

    follow_up = ask(page, "What happens when a worker dies?")
    assert follow_up.locator(".text").inner_text().strip()
    assert page.locator("#thread").get_attribute("data-thread-id") == thread
    assert page.locator(".message.user").all_inner_texts() == [
        "How are runs kept durable?",
        "What happens when a worker dies?",
    ]

    page.click("#new-thread")
    expect(page.locator(".message")).to_have_count(0)
    ask(page, "Which ports do the services listen on?")
    assert page.locator("#thread").get_attribute("data-thread-id") not in ("", thread)


def test_a_refused_question_is_shown_not_thrown(page: Page) -> None:
    page.goto("/chat")
    page.fill("#question", "x" * 8000 + " ")  # within the textarea's limit, past the gateway's after the space
    page.evaluate("document.querySelector('#question').value += 'y'.repeat(10)")
    page.press("#question", "Enter")
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "error", timeout=30_000)
    assert "not valid" in answer.locator(".status").inner_text()


def test_an_uploaded_document_is_found_by_the_next_question(page: Page, tmp_path) -> None:
    note = tmp_path / "zanzibar-rota.md"
    note.write_text("# Zanzibar rota\n\nThe zanzibar rota says the night shift is covered by the Quokka team.\n")
    page.goto("/chat")
    page.set_input_files("#files", str(note))
    page.click("#upload-send")
    expect(page.locator("#notice")).to_contain_text("Indexed and searchable: zanzibar-rota.md", timeout=60_000)

    answer = ask(page, "Who covers the night shift on the zanzibar rota?")
    assert "Quokka" in answer.locator(".text").inner_text()
    assert "zanzibar-rota.md" in answer.locator(".citation strong").all_inner_texts()

    page.set_input_files("#files", {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"})
    page.click("#upload-send")
    expect(page.locator("#notice")).to_contain_text("Upload refused", timeout=30_000)
