"""Structured output: the JSON Schema a run's final answer must match, as it travels on ``RunRequested``.

A client gives one per request (``output_schema`` on ``/api/v1``, ``response_format`` on
``/v1/chat/completions``) or per assistant (``config.configurable["output_schema"]``). The gateway
checks it is a JSON Schema before any run (:func:`schema_problem`); the agent validates the
answer against it (:func:`answer_problem`). Both use ``jsonschema``, so they agree on what a
schema is, and neither ever fetches a remote ``$ref``: only references inside the schema resolve.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from jsonschema import SchemaError, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

# The configurable key an assistant (or a LangGraph client's config) names its schema under.
CONFIGURABLE_KEY = "output_schema"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for a json_schema's name
ANY_OBJECT: dict[str, Any] = {"type": "object"}
_BASE = "urn:threadline:output-schema"  # where a schema's own "#..." references are looked up


class OutputSchema(BaseModel):
    """What the run's final answer must be: a JSON object matching ``json_schema``.

    ``mode`` is how a chat model is asked for it: ``json_schema`` (OpenAI's structured outputs, the
    schema sent along) or ``json_object`` (OpenAI's JSON mode: any JSON object, ``json_schema`` is then
    :data:`ANY_OBJECT`). ``name`` and ``strict`` are OpenAI's ``response_format.json_schema`` fields.
    """

    model_config = ConfigDict(extra="ignore")

    json_schema: dict[str, Any] = Field(description="A JSON Schema whose root is an object.")
    mode: Literal["json_schema", "json_object"] = "json_schema"
    name: str = Field(default="answer", pattern=NAME_PATTERN)
    strict: bool | None = None

    @classmethod
    def any_object(cls) -> OutputSchema:
        return cls(json_schema=dict(ANY_OBJECT), mode="json_object")


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` cannot be an output schema (no JSON Schema, not an object's, a remote ``$ref``); None: it can."""
    if not isinstance(schema, dict):
        return "must be a JSON Schema (an object)"
    dialect = schema.get("$schema")
    # jsonschema returns ``default`` for a dialect it does not know (its stubs type it narrower than its docs).
    validator = validator_for(schema, default=None) if isinstance(dialect, str) else None  # type: ignore[arg-type]
    if dialect is not None and validator is None:
        return f"names a $schema dialect jsonschema does not know: {dialect!r} (leave it out for draft 2020-12)"
    try:
        (validator or validator_for(schema)).check_schema(schema)
    except SchemaError as exc:
        return f"is not a valid JSON Schema: {exc.message} (at {exc.json_path})"
    if schema.get("type") != "object":
        return 'must describe a JSON object: its root needs "type": "object"'
    for ref in _refs(schema):
        if not ref.startswith("#"):
            return f"may only refer within itself ($ref starting with #), not to {ref!r}"
        if problem := _dangling(schema, ref):
            return f"has a $ref that points nowhere: {problem}"
    return None


def answer_problem(schema: dict[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` against ``schema``, said so a model (or a person) can fix it; None: it matches."""
    try:
        error: ValidationError | None = best_match(validator_for(schema)(schema).iter_errors(value))
    except Unresolvable as exc:  # a schema the gateway checked has none; one published some other way may
        return f"the schema has a reference that does not resolve: {exc}"
    if error is None:
        return None
    return f"{error.message} (at {error.json_path})"


def _dangling(schema: dict[str, Any], ref: str) -> str | None:
    """Why the local ``ref`` does not resolve within ``schema``; None when it does."""
    resource: Resource[Any] = Resource.from_contents(schema, default_specification=DRAFT202012)
    try:
        Registry().with_resource(_BASE, resource).resolver(base_uri=_BASE).lookup(ref)
    except Unresolvable:
        return ref
    return None


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
