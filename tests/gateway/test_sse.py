"""SSE framing and the Last-Event-ID a reconnecting client sends."""

from __future__ import annotations

import json

import pytest
from threadline.run_events import RunEvent
from threadline_gateway import sse


def test_a_run_event_is_one_frame_with_its_seq_as_id() -> None:
    event = RunEvent(run_id="r", seq=7, kind="token", data={"text": "two\nlines"})
    frame = sse.frame(event).decode()
    assert frame.endswith("\n\n")
    lines = frame[:-2].split("\n")
    assert lines[:2] == ["id: 7", "event: token"]
    assert len(lines) == 3  # the newline inside the text is escaped in JSON, never a raw line break
    assert json.loads(lines[2].removeprefix("data: ")) == {"text": "two\nlines"}


def test_a_gateway_frame_has_no_id_so_it_does_not_move_the_resume_point() -> None:
    frame = sse.gateway_frame("error", {"code": "stream_timeout"}).decode()
    assert "id:" not in frame
    assert frame.startswith("event: error\n")


@pytest.mark.parametrize(("header", "after"), [(None, None), ("", -1), (" 0 ", 0), ("41", 41)])
def test_last_event_id_is_the_seq_to_resume_after(header: str | None, after: int | None) -> None:
    assert sse.parse_last_event_id(header) == after


@pytest.mark.parametrize("header", ["-1", "abc", "1.5", "²", "9" * 40])
def test_a_bogus_last_event_id_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        sse.parse_last_event_id(header)
