"""Graphs from a langgraph.json: file and module specs, every kind of graph, env, dependencies and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.approval import APPROVAL_NODE
from threadline_agent.graphs.assistants import ANSWER_NODES
from threadline_agent.graphs.calculator import make_calculator_tool
from threadline_agent.graphs.loader import BUILTIN_GRAPHS, GraphLoadError, load_graphs
from threadline_agent.graphs.platform import USER_GRAPH, Assistant, Platform

from tests.agent.test_graph import fixed_passages_tool
from tests.conftest import NATS_URL

GRAPHS = """
from dataclasses import dataclass
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.checkpoint.memory import InMemorySaver
from threadline_agent.graphs.platform import Platform


@dataclass
class Counter:
    count: int = 0


def bump(state: Counter) -> dict:
    return {"count": state.count + 1}


builder = StateGraph(Counter)
builder.add_node("bump", bump)
builder.add_edge(START, "bump")
builder.add_edge("bump", END)

as_builder = builder
compiled = builder.compile(checkpointer=InMemorySaver())  # the worker's replaces it
calls = []


def once():
    calls.append("once")
    return builder.compile()


def per_run(config):
    calls.append(config["configurable"].get("flavour"))
    return builder


def with_platform(platform: Platform):
    calls.append([tool.name for tool in platform.tools])
    return builder


not_a_graph = 42
"""


def write_project(tmp_path: Path, graphs: dict[str, str], **extra: object) -> Path:
    (tmp_path / "graphs.py").write_text(GRAPHS)
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, **extra}))
    return config


def platform() -> Platform:
    return Platform(ExtractiveAnswerer(), [fixed_passages_tool([]), make_calculator_tool()], frozenset({"calculator"}))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test's sys.path and imported graph modules are its own."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m.startswith(("threadline_graphs.", "my_agents"))]:
        del sys.modules[name]


def test_the_built_in_graphs_load_from_the_shipped_langgraph_json() -> None:
    assert BUILTIN_GRAPHS.is_file() and BUILTIN_GRAPHS.parent.name == "graphs"
    graphs = load_graphs()
    assert set(graphs) == {"agent", "research", "planner", "supervisor"}
    assert graphs["agent"].assistant == Assistant("agent", frozenset({"agent"}))
    assert graphs["research"].assistant == Assistant("review", frozenset({"write"}))
    assert graphs["planner"].assistant == Assistant("synthesize", frozenset({"synthesize"}))
    assert graphs["supervisor"].assistant == Assistant("writer", frozenset({"writer"}))
    # A graph without its own answer nodes streams those of the first two, by name (execute_run's default).
    assert graphs["agent"].assistant.answer_nodes | graphs["research"].assistant.answer_nodes == ANSWER_NODES
    saver = InMemorySaver()
    for graph in graphs.values():
        assert not graph.per_run
        graph.prepare(platform(), saver, None)
        assert graph.compiled is not None and graph.compiled.checkpointer is saver
    assert APPROVAL_NODE in graphs["agent"].compiled.nodes  # type: ignore[union-attr]


async def test_every_kind_of_graph_gets_the_workers_checkpointer_and_store(tmp_path: Path) -> None:
    config = write_project(
        tmp_path,
        {
            "compiled": "./graphs.py:compiled",
            "builder": "./graphs.py:as_builder",
            "once": "graphs.py:once",
            "per_run": "./graphs.py:per_run",
            "with_platform": "./graphs.py:with_platform",
        },
    )
    graphs = load_graphs(config)
    saver, store = InMemorySaver(), InMemoryStore()
    for graph in graphs.values():
        graph.prepare(platform(), saver, store)
        assert graph.assistant is USER_GRAPH
    calls = sys.modules["threadline_graphs.compiled"].calls  # one module for the graphs of one file
    assert (
        "once" in calls and ["search_knowledge_base", "calculator"] in calls
    )  # the zero-argument and the Platform factory, at start
    assert [name for name, g in graphs.items() if g.per_run] == ["per_run"]
    for name in ("compiled", "builder", "once", "with_platform"):
        compiled = graphs[name].compiled
        assert compiled is not None and compiled.checkpointer is saver and compiled.store is store, name

    run = {"configurable": {"thread_id": "t1", "flavour": "vanilla"}}
    graph = graphs["per_run"].for_run(run)  # type: ignore[arg-type]
    assert graph.checkpointer is saver
    assert calls[-1] == "vanilla"
    assert await graph.ainvoke({"count": 1}, run) == {"count": 2}  # type: ignore[arg-type]
    again = graphs["compiled"].for_run(run)  # type: ignore[arg-type]
    assert (await again.ainvoke({"count": 5}, run))["count"] == 6  # type: ignore[arg-type]
    assert (await saver.aget_tuple(run)) is not None  # type: ignore[arg-type]


def test_a_module_spec_is_imported_from_a_local_dependency(tmp_path: Path) -> None:
    package = tmp_path / "src" / "my_agents"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bot.py").write_text(GRAPHS)
    config = tmp_path / "langgraph.json"
    spec = {"dependencies": ["./src", "langchain-openai"], "graphs": {"bot": "my_agents.bot:compiled"}}
    config.write_text(json.dumps(spec))
    graphs = load_graphs(config)
    assert str(tmp_path / "src") in sys.path
    assert graphs["bot"].source == "my_agents.bot"


def test_the_env_file_and_mapping_are_applied_before_importing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADER_TEST_FROM_FILE", raising=False)
    monkeypatch.delenv("LOADER_TEST_FROM_MAP", raising=False)
    (tmp_path / "reads_env.py").write_text(GRAPHS + "\nimport os\nSEEN = os.environ['LOADER_TEST_FROM_FILE']\n")
    (tmp_path / ".env").write_text("# comment\nexport LOADER_TEST_FROM_FILE='from file'\n\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"env": ".env", "graphs": {"g": "./reads_env.py:compiled"}}))
    load_graphs(config)
    assert sys.modules["threadline_graphs.g"].SEEN == "from file"

    config.write_text(json.dumps({"env": {"LOADER_TEST_FROM_MAP": 7}, "graphs": {"g": "./graphs.py:compiled"}}))
    (tmp_path / "graphs.py").write_text(GRAPHS)
    load_graphs(config)
    assert os.environ["LOADER_TEST_FROM_MAP"] == "7"


def test_agent_graphs_selects_the_graphs_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    config = write_project(tmp_path, {"a": "./graphs.py:compiled", "b": "./graphs.py:as_builder"})
    assert set(load_graphs(config, only={"b"})) == {"b"}
    with pytest.raises(GraphLoadError, match="AGENT_GRAPHS names 'c'"):
        load_graphs(config, only={"c"})


@pytest.mark.parametrize("name", ["has.dot", "has space", "a>", "-dash-first", "x" * 65])
def test_a_graph_name_that_is_no_subject_token_is_refused(tmp_path: Path, name: str) -> None:
    config = write_project(tmp_path, {name: "./graphs.py:compiled"})
    with pytest.raises(GraphLoadError, match="a graph's name must be"):
        load_graphs(config)


def test_what_is_not_a_graph_is_a_load_error_naming_it(tmp_path: Path) -> None:
    config = write_project(tmp_path, {"missing": "./graphs.py:nope"})
    with pytest.raises(GraphLoadError, match=r"graph 'missing' \(.*graphs.py\) has no variable 'nope'"):
        load_graphs(config)
    config = write_project(tmp_path, {"number": "./graphs.py:not_a_graph"})
    graph = load_graphs(config)["number"]
    with pytest.raises(GraphLoadError, match="not_a_graph is a int, not a StateGraph"):
        graph.prepare(platform(), None, None)
    config = write_project(tmp_path, {"gone": "./elsewhere.py:graph"})
    with pytest.raises(GraphLoadError, match=r"no file .*elsewhere\.py"):
        load_graphs(config)


def test_a_broken_graph_file_fails_naming_the_graph_the_file_and_the_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_package_anywhere\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"broken": "./broken.py:graph"}}))
    with pytest.raises(GraphLoadError) as raised:
        load_graphs(config)
    message = str(raised.value)
    assert "'broken'" in message and str(tmp_path / "broken.py") in message
    assert "ModuleNotFoundError: No module named 'no_such_package_anywhere'" in message


def test_the_agent_process_exits_with_one_readable_line(tmp_path: Path, nats_namespace: str) -> None:
    (tmp_path / "broken.py").write_text(
        textwrap.dedent("""
        def graph(:
            pass
    """)
    )
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"broken": "./broken.py:graph"}}))
    env = {
        **os.environ,
        "THREADLINE_GRAPHS": str(config),
        "NATS_URL": NATS_URL,
        "NATS_NAMESPACE": nats_namespace,
        "AGENT_HEARTBEAT_FILE": str(tmp_path / "alive"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "threadline_agent"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("threadline-agent: cannot start: graph 'broken'")
    assert "broken.py" in lines[0] and "SyntaxError" in lines[0]
