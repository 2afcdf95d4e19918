"""The agent service's graph for ``langgraph dev``, searching the in-process knowledge base in ``BENCH_KB_DIR``."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from langgraph.graph.state import CompiledStateGraph
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.assistants import build_graph

from bench.peers.knowledge_base import KnowledgeBase, load


@cache
def _knowledge_base() -> KnowledgeBase:
    return load(Path(os.environ["BENCH_KB_DIR"]))


def make_graph() -> CompiledStateGraph:
    """Called by langgraph-api; it supplies its own checkpointer."""
    return build_graph(ExtractiveAnswerer(), [_knowledge_base().tool()], None)
