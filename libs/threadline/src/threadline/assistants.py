"""Assistants as every service names them: each graph's default assistant has one id, everywhere.

As on LangGraph Platform, a graph's default assistant is made by the system when an agent first
serves the graph, and its id is derived from the graph's name alone (not the tenant), so every
replica, service and tenant computes the same one; the graph's name also addresses it.
"""

from __future__ import annotations

import uuid

# LangGraph Platform's namespace for graph ids, so a default assistant has the id it would have there.
GRAPH_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
SYSTEM_METADATA = {"created_by": "system"}


def default_assistant_id(graph_id: str) -> str:
    """The id of ``graph_id``'s default assistant: a UUID 5 of the graph's name."""
    return str(uuid.uuid5(GRAPH_NAMESPACE, graph_id))
