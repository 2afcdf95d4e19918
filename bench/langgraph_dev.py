"""``langgraph dev`` as a peer of the mesh: its own virtual environment, made once, and the server started offline.

``bench/end_to_end.py`` and ``bench/user_graph.py`` both serve a graph with it; the one launcher
keeps their ``langgraph dev`` the same (version, flags, nothing sent off this machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.mesh import ROOT, _free_port

LANGGRAPH_VENV = ROOT / ".venv-langgraph"
PEERS = Path(__file__).parent / "peers"

# langgraph dev would otherwise report to LangSmith and fetch its Studio; nothing leaves this machine.
_OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


@contextmanager
def http_process(
    args: list[str], env: dict[str, str], ready_url: str, timeout_s: float = 180, cwd: Path = ROOT
) -> Iterator[None]:
    """``args`` run in ``cwd`` with ``env`` over this environment, until ``ready_url`` answers 200;
    its whole process group stopped on exit."""
    proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not become ready at {ready_url}")
            time.sleep(0.5)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


# What the venv is made from: a change to any of them makes langgraph_venv() install again over it.
_RECIPE = (
    PEERS / "requirements.txt",
    ROOT / "libs" / "threadline" / "pyproject.toml",
    ROOT / "services" / "agent" / "pyproject.toml",
    ROOT / "services" / "retrieval" / "pyproject.toml",
)
# The agent's MCP client (mcp>=2.3) asks for sse-starlette>=3, which langgraph-api 0.4.28 refuses (<2.2).
# sse-starlette serves only mcp's server side (mcp.server.sse), which the peer graph never imports, so
# these go in without their dependencies, then their dependencies go in but sse-starlette.
_WITHOUT_DEPENDENCIES = ("threadline-agent", "mcp")
_LEFT_OUT = "sse-starlette"


def langgraph_venv() -> Path:
    """``.venv-langgraph`` with langgraph-cli[inmem] and our packages (``peers/requirements.txt``, then the
    agent), made once and again when its recipe changes; kept apart from .venv so its pins cannot move ours.
    Returns its ``langgraph`` command."""
    binary = LANGGRAPH_VENV / "bin" / "langgraph"
    stamp = LANGGRAPH_VENV / "threadline-recipe"
    recipe = hashlib.sha256(b"".join(path.read_bytes() for path in _RECIPE)).hexdigest()
    if binary.exists() and stamp.exists() and stamp.read_text() == recipe:
        return binary
    subprocess.run([sys.executable, "-m", "venv", str(LANGGRAPH_VENV)], check=True)
    python = LANGGRAPH_VENV / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", "requirements.txt"], cwd=PEERS, check=True)
    # pip would report the conflict these steps make on purpose (mcp's sse-starlette) as an ERROR.
    pip.append("--no-warn-conflicts")
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT / "services" / "agent")], check=True)
    mcp = [r for r in _requirements(python, "threadline-agent") if _name(r) in _WITHOUT_DEPENDENCIES]
    subprocess.run([*pip, "--no-deps", *mcp], check=True)
    subprocess.run([*pip, *peer_dependencies(python)], check=True)
    stamp.write_text(recipe)
    return binary


def peer_dependencies(python: Path) -> list[str]:
    """What the agent and mcp, installed without their dependencies in ``python``'s environment, still
    need: their requirements but each other and sse-starlette."""
    needs = [r for name in _WITHOUT_DEPENDENCIES for r in _requirements(python, name)]
    return list(dict.fromkeys(r for r in needs if _name(r) not in (*_WITHOUT_DEPENDENCIES, _LEFT_OUT)))


def _requirements(python: Path, distribution: str) -> list[str]:
    """The requirements of ``distribution`` as installed in ``python``'s environment, read there (the
    packages are not importable here); those of its extras left out, as pip leaves them."""
    script = "import importlib.metadata as m, json, sys; print(json.dumps(m.requires(sys.argv[1]) or []))"
    done = subprocess.run([str(python), "-c", script, distribution], check=True, capture_output=True, text=True)
    return [r for r in json.loads(done.stdout) if "extra ==" not in r]


def _name(requirement: str) -> str:
    """The normalized project name a requirement string starts with (PEP 503)."""
    name = re.split(r"[\s\[<>=!~;@(]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@contextmanager
def langgraph_dev(
    config: Path, jobs_per_worker: int, env: dict[str, str] | None = None, allow_blocking: bool = False
) -> Iterator[str]:
    """``langgraph dev`` serving the graphs of ``config`` (a langgraph.json) on a free port; yields its URL.

    It runs in the config's folder, as a user runs it in their project: its ``./file.py`` paths are
    relative to where it runs.

    ``jobs_per_worker`` is how many runs it works at once; ``allow_blocking`` lets a graph do blocking
    I/O on its event loop (which langgraph dev otherwise refuses).
    """
    port = _free_port()
    args = [str(langgraph_venv()), "dev", "--no-browser", "--no-reload", "--port", str(port)]
    if allow_blocking:
        args.append("--allow-blocking")
    args += ["--config", str(config), "--n-jobs-per-worker", str(jobs_per_worker), "--server-log-level", "WARNING"]
    url = f"http://127.0.0.1:{port}"
    with http_process(args, {**(env or {}), **_OFFLINE}, f"{url}/ok", cwd=config.parent):
        yield url
