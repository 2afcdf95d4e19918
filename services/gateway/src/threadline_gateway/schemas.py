"""The public request and response bodies of the v1 API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class QueryRequest(BaseModel):
    """A question; without ``thread_id`` it starts a new conversation."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, description="The question.", examples=["How are runs kept durable?"])
    thread_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Continue this conversation; an id that does not exist yet starts a thread under that id.",
    )
    assistant_id: str = Field(default="agent", pattern=ID_PATTERN, description="Which graph answers.")


class Citation(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float


class QueryResponse(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str
    answer: str
    citations: list[Citation]
    model: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
