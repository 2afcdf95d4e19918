"""Request fields that every memory servicer reads the same way."""

from __future__ import annotations

import json
from typing import Any

from threadline.grpc import BadRequest


def scoped(tenant: str, thread_id: str) -> str:
    """The thread id the savers store: the tenant's prefix keeps each tenant's threads apart, below any caller."""
    return f"{tenant}:{thread_id}"


def json_object(data: bytes, field: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"{field} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be a JSON object")
    return value
