"""Structured output at the gateway: a run's output schema, from wherever the client gave it, checked before any run.

A request gives one as ``output_schema`` (``/api/v1``, the WebSocket) or ``response_format``
(``/v1/chat/completions``), checked by the body's own validation; an assistant, or a LangGraph
client, gives one in ``config.configurable["output_schema"]``, checked here once the assistant's
config is merged in. Either way a schema that is not a JSON Schema of an object is a 422 naming
the field, and no run starts; the agent validates the answer against it.
"""

from __future__ import annotations

from typing import Any

from threadline.events import RunRequested
from threadline.output_schema import CONFIGURABLE_KEY, OutputSchema, schema_problem

from threadline_gateway.errors import invalid_field

# What the OpenAPI document says of an output schema: the part of the gateway's check that JSON Schema can say
# without its meta-schema (the root describes an object). These keywords bind objects only: `null` stays allowed.
DOCUMENTED: dict[str, Any] = {"required": ["type"], "properties": {"type": {"const": "object"}}}


def checked_schema(value: Any) -> dict[str, Any]:
    """``value`` if it may be an output schema; a ValueError saying why not (for a body's field validator)."""
    if problem := schema_problem(value):
        raise ValueError(problem)
    assert isinstance(value, dict)  # schema_problem refuses anything else
    return value


def with_output_schema(run: RunRequested) -> RunRequested:
    """``run`` with its output schema: the request's own, else its config's (the assistant's or the client's)."""
    if run.output_schema is not None:
        return run
    given = run.config.configurable.get(CONFIGURABLE_KEY)
    if given is None:
        return run
    if problem := schema_problem(given):
        raise invalid_field(f"config.configurable.{CONFIGURABLE_KEY}", problem)
    return run.model_copy(update={"output_schema": OutputSchema(json_schema=given)})
