"""A serializer that lets the official savers store values the service never decodes.

Agents send channel values and pending writes already serialized by their own
LangGraph serializer, as (type, bytes) pairs. The savers call ``serde.dumps_typed``
on every value they store; :class:`OpaqueSerde` hands such a pair back unchanged,
so what a saver writes is byte for byte what the agent produced, and the service
needs none of the agent's state types.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

# The type tag of a structure (e.g. a whole checkpoint, which the SQLite saver serializes at once)
# holding opaque values.
OPAQUE_JSON = "opaque-json"
_MARK = "__opaque__"


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value serialized by the caller: its serializer's type tag and bytes."""

    type: str
    data: bytes


def _encode(obj: Any) -> Any:
    if isinstance(obj, Opaque):
        return {_MARK: [obj.type, base64.b64encode(obj.data).decode("ascii")]}
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _MARK in obj:
        type_, data = obj[_MARK]
        return Opaque(type_, base64.b64decode(data))
    return obj


class OpaqueSerde:
    """``SerializerProtocol`` for :class:`Opaque` values and JSON structures that contain them."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, Opaque):
            return obj.type, obj.data
        return OPAQUE_JSON, json.dumps(obj, default=_encode, ensure_ascii=False).encode()

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ == OPAQUE_JSON:
            return json.loads(payload, object_hook=_decode)
        return Opaque(type_, bytes(payload))
