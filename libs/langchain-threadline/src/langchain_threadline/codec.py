"""LangChain documents to the retrieval API's messages and back.

The API's metadata is a string-to-string map, while LangChain metadata holds any JSON
value. Each document carries its metadata twice: every key as a string (so the service's
exact-match filters work), and the whole as JSON under one reserved key, from which a
read gives back exactly the values that were written (``{"page": 3}``, not ``"3"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from threadline.retrieval.v1 import retrieval_pb2 as pb

METADATA_KEY = "langchain_metadata"
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def as_string(value: Any) -> str:
    """A metadata value as the service stores and filters it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def to_document(document_id: str, text: str, metadata: dict[str, Any], vector: list[float] | None) -> pb.Document:
    flat = {key: as_string(value) for key, value in metadata.items()}
    flat[METADATA_KEY] = json.dumps(metadata, default=str)
    return pb.Document(id=document_id, text=text, metadata=flat, vector=vector or [])


def from_stored(document_id: str, text: str, metadata: Mapping[str, str]) -> Document:
    """A stored chunk as a LangChain document; one written by another client keeps its string metadata."""
    stored = metadata.get(METADATA_KEY)
    values = json.loads(stored) if stored is not None else dict(metadata)
    return Document(id=document_id, page_content=text, metadata=values)


def to_filter(metadata_filter: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: as_string(value) for key, value in (metadata_filter or {}).items()}


def model_name(embedding: Any) -> str:
    """A name for the caller's embedding model that the service accepts (1-64 of ``[A-Za-z0-9_-]``)."""
    raw = getattr(embedding, "model", None) or getattr(embedding, "model_name", None) or type(embedding).__name__
    return (_MODEL_NAME.sub("-", str(raw)).strip("-") or "embeddings")[:64]
