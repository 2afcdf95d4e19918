"""The slice of the OpenAI chat API that Threadline speaks, so OpenAI clients and chat front-ends work unchanged.

Requests ignore the sampling fields (temperature, max_tokens, ...) an OpenAI client may send: the
assistant decides how it answers. Responses add ``thread_id`` and ``citations``, which clients
that do not know them skip.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from threadline.aim import CollectionName, SearchFilter
from threadline.ids import ID_PATTERN
from threadline.output_schema import NAME_PATTERN, OutputSchema
from threadline.run_events import Citation
from threadline.run_events import Usage as RunUsage

from threadline_gateway.openai_tools import ChatTool, ChatToolCall, ToolChoice
from threadline_gateway.output_schemas import DOCUMENTED, checked_schema


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ChatToolCall] | None = Field(default=None, description="An assistant message's tool calls.")
    tool_call_id: str | None = Field(default=None, description="A tool message's: the call it answers.")

    def text(self) -> str:
        """The message's text; image and audio parts have none and are left out."""
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    """OpenAI's ``response_format.json_schema``: the schema the answer must match, named."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=4000)
    schema_: dict[str, Any] = Field(
        alias="schema", description="A JSON Schema whose root is an object.", json_schema_extra=DOCUMENTED
    )
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _a_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return checked_schema(value)


class ResponseFormat(BaseModel):
    """OpenAI's ``response_format``: ``text`` (no structure), ``json_object`` or ``json_schema``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> Self:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("a json_schema response format needs json_schema: {name, schema}")
        return self

    def output_schema(self) -> OutputSchema | None:
        """What the run's answer must be, as the run carries it; None for plain text."""
        if self.type == "json_object":
            return OutputSchema.any_object()
        if self.json_schema is None:
            return None
        given = self.json_schema
        return OutputSchema(json_schema=given.schema_, name=given.name, strict=given.strict)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(pattern=ID_PATTERN, description="An assistant id, as listed by `GET /v1/models`.")
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=1000,
        description="The last one, a user message, is the question; or the last ones are `tool` messages, "
        "the results of the client's tools the previous answer called.",
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
    collection: CollectionName | None = Field(
        default=None,
        description="Threadline extension (the openai client's `extra_body`): search this knowledge-base "
        "collection; one the tenant does not have is a 404 collection_not_found.",
    )
    filter: SearchFilter | None = Field(
        default=None, description="Threadline extension: search only passages whose metadata has these values."
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description="Structured output: the answer (`message.content`) is JSON matching the schema. The offline "
        "extractive answerer fills only its cited-answer schema or `json_object` (others: 422).",
    )
    tools: list[ChatTool] | None = Field(
        default=None,
        max_length=128,
        description="Functions the client runs: the model may call them (message.tool_calls, finish_reason "
        "`tool_calls`), and the next request returns their results as `tool` messages. An assistant whose config "
        "sets `client_tools: false` refuses them (422). The offline extractive answerer never calls them.",
    )
    tool_choice: ToolChoice | None = Field(
        default=None, description="`none`, `auto`, `required` or a named function: binds the model's first reply."
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ChatToolCall] | None = Field(default=None, description="Calls of the client's tools.")


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "tool_calls"] = "stop"
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
