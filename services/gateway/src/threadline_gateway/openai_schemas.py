"""The slice of the OpenAI chat API that Threadline speaks, so OpenAI clients and chat front-ends work unchanged.

Requests ignore the sampling fields (temperature, max_tokens, ...) an OpenAI client may send: the
assistant decides how it answers. Responses add ``thread_id`` and ``citations``, which clients
that do not know them skip.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from threadline.ids import ID_PATTERN
from threadline.run_events import Citation
from threadline.run_events import Usage as RunUsage


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text; image and audio parts have none and are left out."""
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(pattern=ID_PATTERN, description="An assistant id, as listed by `GET /v1/models`.")
    messages: list[ChatMessage] = Field(
        min_length=1, max_length=1000, description="The last one, a user message, is the question."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256, description="Keeps different end users' threads apart.")
    n: int = Field(default=1, ge=1, le=1, description="One answer per request.")
    thread_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Threadline extension: continue this thread (also as the X-Thread-Id header).",
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, usage: RunUsage) -> Usage:
        """From the run's usage: input and output tokens are OpenAI's prompt and completion tokens."""
        prompt, completion = usage.input_tokens, usage.output_tokens
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class ChatCompletion(BaseModel):
    id: str = Field(description="`chatcmpl-` and the run id.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    thread_id: str = Field(description="Threadline: the thread this answer was added to.")
    citations: list[Citation] = Field(description="Threadline: the passages the answer cites, [1] first.")


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "threadline"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
