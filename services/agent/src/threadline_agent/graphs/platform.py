"""What Threadline hands a graph: the platform's model and tools (``Platform``), and what it knows of a graph.

A graph factory named in ``langgraph.json`` that takes a parameter annotated ``Platform`` is called
with the deployment's chat model, its tools (the tenant's knowledge base, the calculator, and
remember/recall when long-term memory is on) and the tools that wait for a person's approval,
as langgraph-api passes ``ServerRuntime`` to a factory that asks for it::

    from threadline_agent.graphs.platform import Platform

    def make_graph(platform: Platform):
        ...  # platform.model, platform.tools, platform.approval_tools
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool


@dataclass(frozen=True)
class Platform:
    """The deployment's model and tools, for a graph factory that asks for them by annotation."""

    model: BaseChatModel
    tools: Sequence[BaseTool]
    approval_tools: frozenset[str] = frozenset()

    def tool(self, name: str) -> BaseTool:
        """The platform's tool called ``name`` (e.g. ``search_knowledge_base``)."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(f"no platform tool named {name!r} (have: {', '.join(t.name for t in self.tools)})")


@dataclass(frozen=True)
class Assistant:
    """What the worker knows of a graph beyond the graph itself.

    ``final_node``: the node whose update ends a run of a message graph; a turn recorded without
    running (a cached answer) is written as it. None: the graph's answers are never cached.
    ``answer_nodes``: the nodes whose model output is the answer the user reads.
    """

    final_node: str | None = None
    answer_nodes: frozenset[str] = field(default_factory=frozenset)


# A graph named in langgraph.json without this metadata: no answer cache, nothing assumed of its nodes.
USER_GRAPH = Assistant()
METADATA_ATTRIBUTE = "__threadline_assistant__"

F = TypeVar("F", bound=Callable[..., Any])


def assistant(final_node: str, answer_nodes: Collection[str] = ()) -> Callable[[F], F]:
    """Mark a graph factory with its :class:`Assistant` metadata, which the loader reads."""

    def mark(factory: F) -> F:
        setattr(factory, METADATA_ATTRIBUTE, Assistant(final_node, frozenset(answer_nodes)))
        return factory

    return mark
