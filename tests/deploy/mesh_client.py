"""The questions the deployment tests ask a running mesh through its gateway, over real HTTP and SSE."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

COLLECTION = "deploycheck"
DOCUMENT = "lighthouse.md"
TEXT = (
    "The lighthouse on Quill Point was built in 1871. Its keeper is named Ada Morrow. "
    "The light flashes white every ten seconds and can be seen for twenty nautical miles."
)
QUESTION = "Who keeps the lighthouse on Quill Point?"


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 2.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last error."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # the thing is not up yet: keep the reason for the message
            last = exc
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s (last: {last!r})")


def index_document(base: str) -> None:
    reply = httpx.post(
        f"{base}/api/v1/documents",
        data={"collection": COLLECTION},
        files={"files": (DOCUMENT, TEXT.encode(), "text/markdown")},
        timeout=180,
    )
    assert reply.status_code == 201, reply.text


def ask(base: str, timeout_s: float = 150) -> dict[str, Any]:
    """One question; raises unless it is answered with a citation of the document."""
    reply = httpx.post(f"{base}/api/v1/query", json={"input": QUESTION, "collection": COLLECTION}, timeout=timeout_s)
    assert reply.status_code == 200, f"{reply.status_code} {reply.text[:300]}"
    body: dict[str, Any] = reply.json()
    cited = {c["document_id"] for c in body["citations"]}
    assert body["answer"] and DOCUMENT in cited, f"no answer citing {DOCUMENT}: {body}"
    return body


def start_run(base: str) -> str:
    reply = httpx.post(f"{base}/api/v1/runs", json={"input": QUESTION, "collection": COLLECTION}, timeout=30)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["run_id"])


def read_stream(base: str, run_id: str, last_event_id: str | None = None, limit: int = 10_000) -> list[dict[str, str]]:
    """The run's SSE events from ``base`` (after ``last_event_id``), at most ``limit``, up to its end."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with httpx.stream("GET", f"{base}/api/v1/runs/{run_id}/stream", headers=headers, timeout=150) as reply:
        assert reply.status_code == 200, reply.read().decode()[:300]
        for line in reply.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                field, _, value = line.partition(":")
                current[field] = current.get(field, "") + value.removeprefix(" ")
                continue
            if current:
                events.append(current)
                current = {}
                if len(events) >= limit or events[-1].get("event") in ("end", "error"):
                    break
    return events
