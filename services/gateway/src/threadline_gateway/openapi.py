"""The OpenAPI document, with the one error body on every 4xx and 5xx a route declares.

Routes name their error statuses with a description only (``{404: {"description": ...}}``);
every one of them answers with :class:`~threadline_gateway.schemas.ErrorResponse`, so the
document says so once here instead of in each route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from threadline_gateway.schemas import NOT_BLANK_PATTERN, ErrorResponse

_REF = "#/components/schemas/ErrorResponse"


def add_input_limits(schema: dict[str, Any], max_input_chars: int) -> dict[str, Any]:
    """A question must hold a non-blank character, unless the request resumes a thread with a decision, and
    at most GATEWAY_MAX_INPUT_CHARS: say so in the schema.

    Checked by the gateway itself (one clear message), so the models do not carry it; the document does.
    """
    for name in ("QueryRequest", "WsQuery"):
        model = schema.get("components", {}).get("schemas", {}).get(name)
        if model is None:
            continue
        model["properties"]["input"]["maxLength"] = max_input_chars
        model["anyOf"] = [
            {
                "required": ["input"],
                "properties": {"input": {"pattern": NOT_BLANK_PATTERN}, "resume": {"type": "null"}},
            },
            {
                "required": ["resume", "thread_id"],
                "properties": {"resume": {"type": "object"}, "thread_id": {"type": "string"}},
            },
        ]
    return schema


def add_header_formats(schema: dict[str, Any]) -> dict[str, Any]:
    """``Last-Event-ID`` is the seq of an event seen (or empty for "from the start"), not any string."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name", "").lower() == "last-event-id":
                    parameter["schema"] = {"type": "string", "pattern": "^[0-9]{0,18}$"}
                    parameter["description"] = "The `id` of the last event received; the stream resumes after it."
    return schema


def add_error_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in schemas:
        defs = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(defs.pop("$defs", {}))
        schemas["ErrorResponse"] = defs
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[:1] in ("4", "5") and "content" not in response:
                    response["content"] = {"application/json": {"schema": {"$ref": _REF}}}
    return schema


def install(app: FastAPI, max_input_chars: int) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = add_header_formats(add_error_bodies(generate()))
            app.openapi_schema = add_input_limits(document, max_input_chars)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
