"""Checks on a run's event stream that several end-to-end tests share."""

from __future__ import annotations

import httpx

from tests.gateway.sse_client import Frame, frames


def check_run_order(events: list[tuple[int, str]]) -> None:
    """metadata first, one final event last, seqs 0, 1, 2, ... with no gap and no repeat."""
    seqs = [seq for seq, _ in events]
    kinds = [kind for _, kind in events]
    assert seqs == list(range(len(seqs))), seqs
    assert kinds[0] == "metadata"
    assert kinds[-1] == "end", kinds
    assert "end" not in kinds[:-1] and "error" not in kinds


def read_frames(reply: httpx.Response, limit: int | None = None) -> list[Frame]:
    """The SSE frames of a reply, stopping after `limit` so a test can drop the connection mid-run."""
    got: list[Frame] = []
    for frame in frames(reply.iter_lines()):
        got.append(frame)
        if len(got) == limit:
            break
    return got
