"""The recipe of ``.venv-langgraph``: what the agent still needs once installed without its dependencies.

Read from the agent and mcp as installed in this environment, so a new dependency of either shows here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import langgraph_dev


def test_the_agent_needs_its_dependencies_and_mcps_but_sse_starlette() -> None:
    needs = langgraph_dev.peer_dependencies(Path(sys.executable))

    names = [langgraph_dev._name(r) for r in needs]
    assert {"threadline", "langgraph", "redis", "mcp-types", "httpx2"} <= set(names)
    assert "sse-starlette" not in names
    assert "mcp" not in names and "threadline-agent" not in names
    assert len(needs) == len(set(needs))


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("mcp>=2.3", "mcp"),
        ("faststream[nats]>=0.6", "faststream"),
        ("Sse_Starlette<2.2.0,>=2.1.0", "sse-starlette"),
        ("uvicorn>=0.31.1; sys_platform != 'emscripten'", "uvicorn"),
        ("threadline", "threadline"),
    ],
)
def test_a_requirement_is_named_as_pip_names_it(requirement: str, name: str) -> None:
    assert langgraph_dev._name(requirement) == name
