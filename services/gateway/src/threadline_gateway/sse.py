"""Server-sent events framing: ``id:`` is the run event's seq, so a reconnect's Last-Event-ID resumes after it."""

from __future__ import annotations

import json
from typing import Any

from threadline.run_events import RunEvent


def frame(event: RunEvent) -> bytes:
    """One event; ``data`` is the event's payload as one JSON line (JSON never needs a raw newline)."""
    payload = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {payload}\n\n".encode()


def gateway_frame(kind: str, data: dict[str, Any]) -> bytes:
    """An event made by the gateway, not the run: it has no id, so it never moves a client's resume point."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


PING = b": ping\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """The seq to resume after: None for no header, -1 (everything) for an empty one, else a seq >= 0.

    Raises ValueError for anything else, so a bogus header is the client's 422 and not a silent replay.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return -1
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ValueError(value)
    return int(value)
