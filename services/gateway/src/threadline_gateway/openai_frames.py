"""A run as OpenAI's streamed chat completion: ``chat.completion.chunk`` events, then ``data: [DONE]``.

A run that fails mid-stream sends an ``{"error": ...}`` chunk, which the ``openai`` client raises as
``APIError``. The final chunk adds Threadline's ``thread_id`` and ``citations``. With a
``response_format`` the content is the structured answer's JSON text, sent whole at the end: the
answer's tokens are prose, not that JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from threadline.run_events import RunEvent, RunResult, Token

from threadline_gateway.openai_schemas import Usage
from threadline_gateway.openai_tools import ChatToolCall
from threadline_gateway.run_bus import RunRecord

_DONE = b"data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def _error(code: str, message: str) -> bytes:
    return _data({"error": {"message": message, "type": "run_error", "code": code}})


def content_of(result: RunResult, structured: bool) -> str:
    """The assistant message's content: the answer, or with a response format its structured answer as JSON text."""
    if structured and result.structured_response is not None:
        return json.dumps(result.structured_response, ensure_ascii=False)
    return result.answer


class ChatChunks:
    """The frames of one streamed completion; ``remember`` is told the answer exactly as the client saw it."""

    def __init__(
        self,
        record: RunRecord,
        include_usage: bool,
        remember: Callable[[str], Awaitable[None]],
        *,
        structured: bool = False,
    ) -> None:
        self.record, self.include_usage, self.remember = record, include_usage, remember
        self.structured = structured  # a response format: the content is the end's JSON, not the tokens
        self.streamed: list[str] = []
        self.base = {
            "id": f"chatcmpl-{record.run_id}",
            "object": "chat.completion.chunk",
            "created": int(record.created_at.timestamp()),
            "model": record.assistant_id,
        }

    def opening(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    async def frame(self, event: RunEvent) -> bytes | None:
        if event.kind == "token" and not self.structured:
            token = event.payload()
            assert isinstance(token, Token)  # a token event's payload, by RunEvent.payload's contract
            if not token.text:
                return None
            self.streamed.append(token.text)
            return self._chunk({"content": token.text})
        if event.kind == "error":
            failure = event.failure()
            return _error(failure.code, failure.message or "The run failed.")
        if event.kind == "end":
            return await self._last(event.result())
        return None

    def timed_out(self) -> bytes:
        follow_at = f"/api/v1/runs/{self.record.run_id}/stream"
        return _error("stream_timeout", f"The run has not ended yet; follow it at {follow_at}.")

    async def _last(self, result: RunResult) -> bytes:
        frames = []
        content = content_of(result, self.structured)
        if not self.streamed and content:
            self.streamed.append(content)
            frames.append(self._chunk({"content": content}))
        calls = [{"index": n, **ChatToolCall.of(call).model_dump()} for n, call in enumerate(result.tool_calls)]
        if calls:  # whole, in one chunk: the agent has them only once the model's reply is complete
            frames.append(self._chunk({"tool_calls": calls}))
        citations = [c.model_dump(mode="json") for c in result.citations]
        finish = "tool_calls" if calls else "stop"
        frames.append(self._chunk({}, finish, thread_id=self.record.thread_id, citations=citations))
        if self.include_usage:
            frames.append(_data({**self.base, "choices": [], "usage": Usage.of(result.usage).model_dump()}))
        frames.append(_DONE)
        # Before the client has [DONE]: its next turn, sent right after, must find this thread.
        await self.remember("".join(self.streamed))
        return b"".join(frames)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _data({**self.base, "choices": [choice], **({"usage": None} if self.include_usage else {}), **extra})
