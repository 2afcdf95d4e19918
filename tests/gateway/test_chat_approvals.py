"""The chat page in headless Chromium when a tool needs approval: a gateway on real NATS, with the
test playing the agent (it reads each run off the RUNS stream and publishes its events)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from playwright.sync_api import Browser, expect
from threadline.events import RunRequested

from tests.gateway.conftest import publish_events
from tests.gateway.test_multitask import _submitted

WAITING = {"id": "i-1", "tool_call_id": "call-1", "name": "calculator", "args": {"expression": "6*7"}}


def _off_loop(call: Callable[..., Any], *args: Any) -> Any:
    """NATS from another thread: Playwright's sync API holds this one's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result()


def _next_run(namespace: str, seen: set[str]) -> RunRequested:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = _off_loop(_submitted, namespace)
        if fresh := [r for run_id, r in runs.items() if run_id not in seen]:
            seen.add(fresh[0].run_id)
            return fresh[0]
        time.sleep(0.1)
    raise AssertionError("the page sent no run")


def test_a_paused_run_is_approved_from_the_page(
    browser: Browser, serve: Callable[..., str], nats_namespace: str
) -> None:
    context = browser.new_context(base_url=serve())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    seen: set[str] = set()
    try:
        page.goto("/chat")
        page.fill("#question", "What is 6 * 7?")
        page.press("#question", "Enter")
        first = _next_run(nats_namespace, seen)
        run = {"run_id": first.run_id, "thread_id": first.thread_id, "assistant_id": "agent"}
        paused = {**run, "answer": "", "citations": [], "status": "interrupted", "interrupts": [WAITING]}
        _off_loop(publish_events, nats_namespace, first.run_id, [(0, "metadata", run), (1, "end", paused)])

        waiting = page.locator(".message.assistant").first
        expect(waiting).to_have_attribute("data-state", "waiting")
        expect(waiting.locator(".approval span")).to_have_text('Run calculator with {"expression":"6*7"}?')
        waiting.locator("button.approve").click()

        second = _next_run(nats_namespace, seen)
        assert (second.thread_id, second.resume, second.input) == (first.thread_id, {"action": "approve"}, "")
        run = {"run_id": second.run_id, "thread_id": second.thread_id, "assistant_id": "agent"}
        answered = {**run, "answer": "6 * 7 = 42", "citations": [], "status": "success"}
        events = [(0, "metadata", run), (1, "token", {"text": "6 * 7 = 42"}), (2, "end", answered)]
        _off_loop(publish_events, nats_namespace, second.run_id, events)

        answer = page.locator(".message.assistant").last
        expect(answer).to_have_attribute("data-state", "done")
        expect(answer.locator(".text")).to_have_text("6 * 7 = 42")
        expect(waiting.locator("button.approve")).to_be_disabled()
    finally:
        context.close()
    assert errors == []
