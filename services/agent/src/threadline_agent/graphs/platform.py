"""What Threadline hands a graph: the platform's model and tools (``Platform``), and what it knows of a graph.

A graph factory named in ``langgraph.json`` that takes a parameter annotated ``Platform`` is called
with the deployment's chat model, its tools (the tenant's knowledge base, the calculator, and
remember/recall when long-term memory is on) and the tools that wait for a person's approval,
as langgraph-api passes ``ServerRuntime`` to a factory that asks for it::

    from threadline_agent.graphs.platform import Platform

    def make_graph(platform: Platform):
        ...  # platform.model, platform.tools, platform.approval_tools

``platform.tools`` are the deployment's own tools, the same for every run. The tools of the MCP
servers a run's assistant names, and the tools its OpenAI client offers, differ run by run: a
node gets them with ``await platform.run_tools(config)`` (the ``agent`` graph does).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from threadline_agent.graphs.client_tools import ClientTools, client_tools_of
from threadline_agent.graphs.mcp_tools import McpToolbox


@dataclass(frozen=True)
class Platform:
    """The deployment's model and tools, for a graph factory that asks for them by annotation."""

    model: BaseChatModel
    tools: Sequence[BaseTool]
    approval_tools: frozenset[str] = frozenset()
    mcp: McpToolbox | None = None  # None: MCP servers named in a run's config are not connected

    async def run_tools(self, config: RunnableConfig | None) -> RunTools:
        """The tools of the run with ``config``: the platform's, its MCP servers' and its client's.

        A name is one tool: a client tool shadows a platform or MCP tool of its name (the client
        asked for it, and runs it), and a platform tool one of an MCP server.
        """
        client = client_tools_of(config)
        found = await self.mcp.tools_for((config or {}).get("configurable") or {}) if self.mcp else None
        taken = set(client.names)
        tools: list[BaseTool] = []
        for tool in [*self.tools, *(found.tools if found else [])]:
            if tool.name not in taken:
                taken.add(tool.name)
                tools.append(tool)
        return RunTools(tools, client, found.unavailable if found else {})

    def tool(self, name: str) -> BaseTool:
        """The platform's tool called ``name`` (e.g. ``search_knowledge_base``)."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(f"no platform tool named {name!r} (have: {', '.join(t.name for t in self.tools)})")


@dataclass(frozen=True)
class RunTools:
    """What one run may call: ``tools`` run here, ``client`` tools by the client; ``unavailable`` MCP servers
    gave none (by name, with why), which the model is told."""

    tools: list[BaseTool]
    client: ClientTools = field(default_factory=ClientTools)
    unavailable: dict[str, str] = field(default_factory=dict)


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
