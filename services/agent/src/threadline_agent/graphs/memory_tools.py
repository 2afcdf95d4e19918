"""Long-term memory tools: the agent remembers facts about a user, and recalls them in any thread.

Facts live in the memory service's store under ``("users", <escaped user_id>, "memories")``, the
namespace the memory service erases when that user is erased. The user is the run's
(``configurable.user_id``, else the run metadata's ``user_id``) and the tenant the run's too
(read by :class:`~threadline_agent.remote.store.RemoteStore`), so one compiled graph serves everyone
and a run can only reach its own user's facts. Without a user there is nothing to remember
by: the tools say so to the model rather than fail the run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
import structlog
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.store.base import BaseStore
from threadline.namespaces import user_namespace

REMEMBER_TOOL = "remember"
RECALL_TOOL = "recall"
MEMORY_TOOLS = frozenset({REMEMBER_TOOL, RECALL_TOOL})
MAX_FACT_CHARS = 2000
# Recall reads the user's most recent facts and ranks them here: the store has no vector index yet.
_RECALL_WINDOW = 200
_RECALL_SHOWN = 10
_WORD = re.compile(r"\w+")
T = TypeVar("T")

log = structlog.get_logger("threadline.agent")


def memory_namespace(user_id: str) -> tuple[str, ...]:
    return user_namespace(user_id, "memories")


def user_of(config: RunnableConfig) -> str | None:
    """The run's user: ``configurable.user_id``, else the run metadata's (the client's labels)."""
    user = config.get("configurable", {}).get("user_id") or config.get("metadata", {}).get("user_id")
    return str(user) if user else None


def make_memory_tools(store: BaseStore) -> list[BaseTool]:
    """``remember(fact)`` and ``recall(query)`` over ``store`` (a RemoteStore in the worker)."""

    async def remember(fact: str, config: RunnableConfig) -> str:
        user = _required_user(config)
        fact = fact.strip()
        if not fact:
            raise ToolException("Nothing to remember: the fact is empty.")
        if len(fact) > MAX_FACT_CHARS:
            raise ToolException(f"The fact is too long to remember (at most {MAX_FACT_CHARS} characters).")
        value = {"fact": fact, "remembered_at": datetime.now(UTC).isoformat()}
        await _guarded(store.aput(memory_namespace(user), uuid.uuid4().hex, value))
        return f"Remembered: {fact}"

    async def recall(config: RunnableConfig, query: str = "") -> str:
        user = _required_user(config)
        items = await _guarded(store.asearch(memory_namespace(user), limit=_RECALL_WINDOW))
        facts = [str(item.value.get("fact", "")) for item in items if item.value.get("fact")]
        if not facts:
            return "Nothing is remembered about this user yet."
        wanted = {w.lower() for w in _WORD.findall(query)}
        if wanted:
            # Most words in common first; ties keep the store's order, newest first.
            facts.sort(key=lambda f: -len(wanted & {w.lower() for w in _WORD.findall(f)}))
        return "\n".join(f"- {fact}" for fact in facts[:_RECALL_SHOWN])

    return [
        StructuredTool.from_function(
            coroutine=remember,
            name=REMEMBER_TOOL,
            description=(
                "Remember a lasting fact about the user (a preference, their role, a detail they asked you to "
                "keep) for later conversations. One short, self-contained sentence per call."
            ),
            handle_tool_error=True,
        ),
        StructuredTool.from_function(
            coroutine=recall,
            name=RECALL_TOOL,
            description=(
                "Recall facts remembered about the user in earlier conversations, the most relevant to the "
                "query first (an empty query: the most recent)."
            ),
            handle_tool_error=True,
        ),
    ]


def _required_user(config: RunnableConfig) -> str:
    user = user_of(config)
    if user is None:
        raise ToolException("No user is known for this conversation, so nothing can be remembered or recalled.")
    return user


async def _guarded(call: Awaitable[T]) -> T:
    """A memory service outage becomes an error the model reads, never a failed run."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        log.warning(
            "long-term memory unavailable; the model carries on without it (check the memory service at MEMORY_TARGET)",
            code=exc.code().name,
            detail=exc.details(),
        )
        raise ToolException(f"Long-term memory could not be reached ({exc.code().name}); carry on without it.") from exc
