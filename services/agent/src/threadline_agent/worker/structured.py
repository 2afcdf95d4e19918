"""Structured output: a run's final answer as the JSON object its output schema describes.

A pipeline step around the graph rather than a node inside it, so that every graph with messages,
the built-ins and a user's own, gets it without a change: once the graph has answered, the model is
asked once more, with the thread's whole conversation, for that answer as JSON (as LangGraph's
``create_react_agent`` does with its ``response_format``). The request is langchain's
``with_structured_output`` (``method="json_schema"``, or ``"json_mode"`` for OpenAI's ``json_object``),
and what comes back is validated with ``jsonschema``: a reply that does not match is sent back to
the model once, saying what was wrong, and a second miss ends the run ``output_invalid``. The graph's
answer stays in the thread and the stream as it was; the JSON is the result's ``structured_response``.

The extractive answerer writes no text of its own: it fills only the cited-answer schema
(:mod:`threadline.cited_answer`), from the run's answer and citations, and any other schema is
refused before the graph runs (``output_schema_unsupported``), as is a schema for a graph without
messages, whose state values already are its output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from threadline.cited_answer import cited_answer, fills
from threadline.output_schema import OutputSchema, answer_problem
from threadline.run_events import RunResult, Usage

from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.worker.execution import run_config, takes_messages
from threadline_agent.worker.failures import MODEL_UNAVAILABLE, RunFailed, dependency_failures
from threadline_agent.worker.tracing import SpanCallbacks

if TYPE_CHECKING:  # the pipeline imports this step; its types are only annotations here
    from threadline_agent.worker.pipeline import Next, RunContext

OUTPUT_INVALID = "output_invalid"
OUTPUT_SCHEMA_UNSUPPORTED = "output_schema_unsupported"
ATTEMPTS = 2  # the first answer, and one more after the model is told what was wrong
INSTRUCTIONS = (
    "Give the answer of the conversation below, its last assistant message, as one JSON object that matches "
    "the required schema. Keep its facts and its citations; add nothing it does not say."
)


class StructuredOutput:
    """A pipeline step: the answer of a run with an output schema, as the JSON object that schema describes."""

    def __init__(self, model: BaseChatModel) -> None:
        self._model = model
        self._offline = isinstance(model, ExtractiveAnswerer)

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        output = run.request.output_schema
        if output is None or run.request.update_state is not None:
            return await next()
        if not takes_messages(run.graph):
            raise RunFailed(
                OUTPUT_SCHEMA_UNSUPPORTED,
                "Structured output is for graphs with messages; this graph's output is its state values.",
            )
        if self._offline and not fills(output):
            raise RunFailed(
                OUTPUT_SCHEMA_UNSUPPORTED,
                "The offline extractive answerer can only fill the cited-answer schema "
                "({answer, citations: [{n, document_id, chunk_id, text}]}, threadline.cited_answer) or a JSON object "
                "(json_object); configure a chat model (OPENAI_BASE_URL) for any other schema.",
            )
        result = await next()
        if result.status != "success" or result.tool_calls:
            # No answer yet: the run waits on a person or on the client's tools; the run that goes on may ask again.
            return result
        if self._offline:  # fills() said the cited answer is what the schema asks for
            return result.model_copy(update={"structured_response": cited_answer(result.answer, result.citations)})
        structured, spent = await self._ask(run, output)
        return result.model_copy(update={"structured_response": structured, "usage": _added(result.usage, spent)})

    async def _ask(self, run: RunContext, output: OutputSchema) -> tuple[dict[str, Any], list[AIMessage]]:
        """The model's answer as JSON matching ``output``, and its replies (for their usage); ``output_invalid``
        after :data:`ATTEMPTS` replies that do not match."""
        config = run_config(run.request)
        conversation = await _conversation(run, config)
        schema, method = _request_format(output)
        asking = self._model.with_structured_output(schema, method=method, include_raw=True)  # type: ignore[arg-type]
        messages: list[BaseMessage] = [SystemMessage(INSTRUCTIONS), *conversation]
        replies: list[AIMessage] = []
        problem = ""
        for _ in range(ATTEMPTS):
            try:
                reply = await asking.ainvoke(messages, RunnableConfig(callbacks=[SpanCallbacks()]))
            except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as exc:
                raise RunFailed(
                    MODEL_UNAVAILABLE, f"The model endpoint failed: {type(exc).__name__}.", transient=True
                ) from exc
            except openai.BadRequestError as exc:  # e.g. a model that has no structured outputs
                raise RunFailed(
                    OUTPUT_SCHEMA_UNSUPPORTED, f"The model refused the output schema: {exc.message}"
                ) from exc
            assert isinstance(reply, dict)  # include_raw: {"raw", "parsed", "parsing_error"}
            raw = reply["raw"]
            assert isinstance(raw, AIMessage)  # the model's own message
            replies.append(raw)
            parsed = reply["parsed"]
            if reply["parsing_error"] is not None:
                problem = f"it is not a JSON object ({reply['parsing_error']})"
            else:
                problem = answer_problem(output.json_schema, parsed) or ""
                if not problem and isinstance(parsed, dict):  # the schema's root is an object
                    return parsed, replies
            messages += [
                AIMessage(raw.text),
                HumanMessage(
                    f"That answer does not match the required JSON schema: {problem}. "
                    "Answer again with only the JSON object, matching the schema."
                ),
            ]
        raise RunFailed(
            OUTPUT_INVALID, f"The model's answer did not match the output schema after {ATTEMPTS} tries: {problem}."
        )


def _request_format(output: OutputSchema) -> tuple[dict[str, Any] | None, str]:
    """``with_structured_output``'s schema and method: OpenAI's json_schema object (name, schema, strict) as given."""
    if output.mode == "json_object":
        return None, "json_mode"
    schema: dict[str, Any] = {"name": output.name, "schema": output.json_schema}
    if output.strict is not None:
        schema["strict"] = output.strict
    return schema, "json_schema"


async def _conversation(run: RunContext, config: RunnableConfig) -> list[BaseMessage]:
    """The thread's messages, the graph's answer last, from its checkpoint."""
    with dependency_failures():
        state = await run.graph.aget_state(config)
    return [m for m in state.values.get("messages", []) if isinstance(m, BaseMessage)]


def _added(usage: Usage, replies: list[AIMessage]) -> Usage:
    """The run's usage with the structuring replies' tokens added."""
    counted = [m.usage_metadata for m in replies if m.usage_metadata]
    return usage.model_copy(
        update={
            "input_tokens": usage.input_tokens + sum(u["input_tokens"] for u in counted),
            "output_tokens": usage.output_tokens + sum(u["output_tokens"] for u in counted),
            "total_tokens": usage.total_tokens + sum(u["total_tokens"] for u in counted),
        }
    )
