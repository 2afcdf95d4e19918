"""Graphs from a ``langgraph.json``, in the LangGraph CLI's own format: the one way the agent gets its graphs.

``graphs`` maps a graph's name to ``./path/file.py:variable`` (relative to the json's folder) or
``package.module:variable``. The variable is a compiled graph, a ``StateGraph`` (compiled here), or
a factory: one that takes a ``RunnableConfig`` is called for every run with the run's config, one
that takes nothing once at start. A factory parameter annotated :class:`Platform` gets the
platform's model and tools. ``env`` (a .env file's path, or a mapping) goes into ``os.environ``
before anything is imported; ``dependencies`` that are local paths (``.``, ``./src``) go on
``sys.path``; the others name packages, the user's to install. The worker's own checkpointer and
store are attached to every graph: a graph does not bring its own.

Without ``THREADLINE_GRAPHS``, the built-in graphs are loaded from the ``langgraph.json`` shipped
in this package.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from threadline.ids import is_graph_id

from threadline_agent.graphs.platform import METADATA_ATTRIBUTE, USER_GRAPH, Assistant, Platform

BUILTIN_GRAPHS = Path(__file__).with_name("langgraph.json")

log = structlog.get_logger("threadline.agent")


class GraphLoadError(Exception):
    """A graph of langgraph.json cannot be served; the message names the graph, the file and the cause."""


@dataclass(frozen=True)
class GraphsConfig:
    """The parts of a langgraph.json the agent uses."""

    path: Path
    graphs: dict[str, str]  # name -> spec
    env: dict[str, str] = field(default_factory=dict)
    dependencies: tuple[Path, ...] = ()  # local paths only

    @property
    def base(self) -> Path:
        return self.path.parent


def read_config(path: Path) -> GraphsConfig:
    """Parse and check ``path``; a :class:`GraphLoadError` says what is wrong with it."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise GraphLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise GraphLoadError(f"{path} is not valid JSON: {exc}") from None
    graphs = raw.get("graphs") if isinstance(raw, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise GraphLoadError(f'{path} has no "graphs": map each graph\'s name to "./file.py:variable"')
    for name, spec in graphs.items():
        if not is_graph_id(name):
            raise GraphLoadError(
                f"graph {name!r} in {path}: a graph's name must be 1-64 letters, digits, '_' or '-', "
                "the first a letter or digit (it names the graph's NATS subject)"
            )
        if isinstance(spec, dict):  # the CLI also accepts {"path": ..., "description": ...}
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise GraphLoadError(f'graph {name!r} in {path}: expected "./file.py:variable" or "module:variable"')
        graphs[name] = spec
    base = path.parent
    return GraphsConfig(
        path=path,
        graphs=dict(graphs),
        env=_env(raw.get("env"), base, path),
        dependencies=tuple(
            (base / dep).resolve()
            for dep in raw.get("dependencies", [])
            if isinstance(dep, str) and (dep.startswith(".") or dep.startswith("/"))
        ),
    )


def _env(value: Any, base: Path, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        return _dotenv(base / value)
    raise GraphLoadError(f'"env" in {path} must be a .env file\'s path or a mapping')


def _dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines; blank lines, comments and ``export`` prefixes skipped, one pair of quotes stripped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise GraphLoadError(f"cannot read the env file {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass
class LoadedGraph:
    """One graph of langgraph.json, imported: what its name points at, and how to get a runnable graph of it."""

    graph_id: str
    spec: str
    source: str  # the file (or module) it came from, for messages
    target: Any
    assistant: Assistant = USER_GRAPH
    _compiled: CompiledStateGraph | None = None
    _platform: Platform | None = None
    _checkpointer: BaseCheckpointSaver | None = None
    _store: BaseStore | None = None

    @property
    def per_run(self) -> bool:
        """Whether the graph is a factory called for every run with the run's config."""
        return _is_factory(self.target) and any(p != "platform" for p in _factory_params(self.target).values())

    def prepare(self, platform: Platform, checkpointer: BaseCheckpointSaver | None, store: BaseStore | None) -> None:
        """Attach the worker's checkpointer and store; build the graph now unless it is built per run."""
        self._platform, self._checkpointer, self._store = platform, checkpointer, store
        if not self.per_run:
            try:
                self._compiled = self._attach(self._call(None) if _is_factory(self.target) else self.target)
            except GraphLoadError:
                raise
            except Exception as exc:
                raise GraphLoadError(
                    f"graph {self.graph_id!r} ({self.source}) failed: {type(exc).__name__}: {exc}"
                ) from exc

    @property
    def compiled(self) -> CompiledStateGraph | None:
        """The graph, when it is built once (None for a per-run factory)."""
        return self._compiled

    def for_run(self, config: RunnableConfig) -> CompiledStateGraph:
        """The graph a run with ``config`` runs."""
        if self._compiled is not None:
            return self._compiled
        if self._platform is None:
            raise RuntimeError(f"graph {self.graph_id!r} used before prepare()")
        return self._attach(self._call(config))

    def _call(self, config: RunnableConfig | None) -> Any:
        args = {
            name: self._platform if kind == "platform" else config
            for name, kind in _factory_params(self.target).items()
        }
        made = self.target(**args)
        if inspect.isawaitable(made):
            raise GraphLoadError(f"graph {self.graph_id!r} ({self.source}): async factories are not supported yet")
        return made

    def _attach(self, graph: Any) -> CompiledStateGraph:
        """The graph with the worker's checkpointer and store (typed as a compiled StateGraph, as the
        worker runs it; a functional-API Pregel runs alike)."""
        if isinstance(graph, StateGraph):
            return graph.compile(checkpointer=self._checkpointer, store=self._store)
        if isinstance(graph, Pregel):
            if graph.checkpointer not in (None, True, False):
                log.warning("graph brings its own checkpointer; the worker's replaces it", graph=self.graph_id)
            return cast(
                CompiledStateGraph, graph.copy(update={"checkpointer": self._checkpointer, "store": self._store})
            )
        raise GraphLoadError(
            f"graph {self.graph_id!r} ({self.source}): {self.spec.rpartition(':')[2]} is a "
            f"{type(graph).__name__}, not a StateGraph, a compiled graph or a factory of one"
        )


def _is_factory(target: Any) -> bool:
    return callable(target) and not isinstance(target, (StateGraph, Pregel))


def _factory_params(factory: Any) -> dict[str, str]:
    """Each parameter of ``factory``, as what it gets: ``platform`` (annotated Platform) or ``config``."""
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # an annotation that does not resolve: go by its spelling
        hints = {}
    params: dict[str, str] = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, param.annotation)
        is_platform = annotation is Platform or (isinstance(annotation, str) and annotation.endswith("Platform"))
        params[name] = "platform" if is_platform else "config"
    return params


def load_graphs(path: Path | None = None, only: Collection[str] = ()) -> dict[str, LoadedGraph]:
    """Import the graphs of the langgraph.json at ``path`` (the built-ins' without one); ``only``: just those.

    Applies the file's ``env`` and local ``dependencies`` first. Raises :class:`GraphLoadError`
    naming the graph, its file and the exception when one cannot be imported or found.
    """
    config = read_config(path or BUILTIN_GRAPHS)
    unknown = sorted(set(only) - set(config.graphs))
    if unknown:
        raise GraphLoadError(
            f"AGENT_GRAPHS names {', '.join(map(repr, unknown))}, not in {config.path} "
            f"(it has: {', '.join(sorted(config.graphs))})"
        )
    os.environ.update(config.env)
    for dependency in reversed(config.dependencies):
        if str(dependency) not in sys.path:
            sys.path.insert(0, str(dependency))
    modules: dict[Path, ModuleType] = {}  # graphs of one file share its module (imported once)
    return {
        name: _load_one(config, name, spec, modules) for name, spec in config.graphs.items() if not only or name in only
    }


def _load_one(config: GraphsConfig, name: str, spec: str, modules: dict[Path, ModuleType]) -> LoadedGraph:
    where, _, variable = spec.rpartition(":")
    is_file = where.endswith(".py") or "/" in where or where.startswith(".")
    source = str((config.base / where).resolve()) if is_file else where
    try:
        if is_file:
            path = (config.base / where).resolve()
            module = modules.get(path) or modules.setdefault(path, _import_file(path, name))
        else:
            module = importlib.import_module(where)
    except GraphLoadError:
        raise
    except BaseException as exc:  # a SyntaxError or a SystemExit in the user's module is a load error too
        raise GraphLoadError(f"graph {name!r} ({source}) failed to import: {type(exc).__name__}: {exc}") from exc
    try:
        target = getattr(module, variable)
    except AttributeError:
        raise GraphLoadError(f"graph {name!r} ({source}) has no variable {variable!r}") from None
    assistant = getattr(target, METADATA_ATTRIBUTE, None)
    return LoadedGraph(name, spec, source, target, assistant if isinstance(assistant, Assistant) else USER_GRAPH)


def _import_file(path: Path, graph_id: str) -> ModuleType:
    if not path.is_file():
        raise GraphLoadError(f"graph {graph_id!r}: no file {path}")
    module_name = f"threadline_graphs.{graph_id}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise GraphLoadError(f"graph {graph_id!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pydantic look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
