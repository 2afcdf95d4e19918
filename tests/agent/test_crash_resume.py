"""A worker SIGKILLed in the middle of a run: the run ends once, resumed from its last checkpoint.

Real processes on the real NATS: a memory service (PostgreSQL) and an agent worker serving a
three-step graph whose middle step blocks until the test lets it go. The worker is killed there,
between the first step's checkpoint and the next; a second worker gets the redelivered run. Each
step counts its executions in a file, the side channel a killed process cannot take back.
Checkpoint writes are pipelined (LangGraph's ``durability="async"``, batched by the remote saver):
this is the test that says they still keep what a crash may lose.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig
from threadline.events import RunRequested, Topology
from threadline.nats import ensure_streams
from threadline.run_events import RunEvent
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver

from tests.cluster import Process
from tests.conftest import NATS_URL, free_port

GRAPH = "crashy"
# The run is handed to the next worker this long after the killed one took it (the worker's own is 30 s).
ACK_WAIT_S = 2.0

GRAPH_FILE = textwrap.dedent(
    '''
    """Three steps, each one counted in executions.log; the second waits for the file "release"."""
    import asyncio
    import operator
    import os
    from pathlib import Path
    from typing import Annotated

    from typing_extensions import TypedDict

    from langgraph.graph import END, START, StateGraph

    HERE = Path(__file__).parent


    class State(TypedDict):
        done: Annotated[list[str], operator.add]


    def _count(step: str) -> None:
        with (HERE / "executions.log").open("a") as log:
            log.write(f"{step} {os.getpid()}\\n")


    async def one(state: State) -> dict:
        _count("one")
        return {"done": ["one"]}


    async def two(state: State) -> dict:
        _count("two")
        while not (HERE / "release").exists():
            await asyncio.sleep(0.05)
        return {"done": ["two"]}


    async def three(state: State) -> dict:
        _count("three")
        return {"done": ["three"]}


    builder = StateGraph(State)
    builder.add_node("one", one)
    builder.add_node("two", two)
    builder.add_node("three", three)
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", "three")
    builder.add_edge("three", END)
    '''
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def graph_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "graph"
    folder.mkdir()
    (folder / "graph.py").write_text(GRAPH_FILE)
    (folder / "langgraph.json").write_text(json.dumps({"graphs": {GRAPH: "./graph.py:builder"}}))
    return folder


@pytest.fixture
def memory_process(database: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**_base_env(), "MEMORY_PORT": str(port), "DATABASE_URL": database}
    process = Process("memory", [sys.executable, "-m", "threadline_memory"], env, tmp_path / "memory.log")
    process.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.stop()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json"}


def _worker(name: str, namespace: str, memory: str, graph_dir: Path, tmp_path: Path) -> Process:
    env = {
        **_base_env(),
        "NATS_URL": NATS_URL,
        "NATS_NAMESPACE": namespace,
        "MEMORY_TARGET": memory,
        "RETRIEVAL_TARGET": f"127.0.0.1:{free_port()}",  # unused: the graph searches nothing
        "THREADLINE_GRAPHS": str(graph_dir / "langgraph.json"),
        "AGENT_CONCURRENCY": "1",
        "AGENT_MEMORY_TOOLS": "false",
        "AGENT_HEARTBEAT_FILE": str(tmp_path / f"{name}.alive"),
    }
    return Process(name, [sys.executable, "-m", "threadline_agent"], env, tmp_path / f"{name}.log")


def _executions(graph_dir: Path) -> list[tuple[str, int]]:
    log = graph_dir / "executions.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(step, int(pid)) for step, pid in (line.split() for line in lines)]


async def _until(condition, what: str, timeout_s: float = 90.0) -> None:
    """Polls ``condition`` (sync or async); the deadline only keeps a broken run from hanging the suite."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                result = condition()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not seen within {timeout_s:g} s: {what}") from None


async def test_a_killed_worker_s_run_resumes_from_its_last_checkpoint_and_ends_once(
    nats_namespace: str, nc: NatsClient, memory_process: str, graph_dir: Path, tmp_path: Path
) -> None:
    topology = Topology(nats_namespace)
    js = nc.jetstream()
    await ensure_streams(js, topology)
    # The worker binds to an existing consumer as it is: this one hands a dead worker's run on sooner.
    await js.add_consumer(
        topology.runs_stream,
        ConsumerConfig(
            durable_name=topology.runs_consumer_for(GRAPH),
            filter_subject=topology.runs_requested_for(GRAPH),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
        ),
    )
    events: list[RunEvent] = []

    async def on_event(msg) -> None:
        events.append(RunEvent.model_validate_json(msg.data))

    request = RunRequested(
        run_id="crash-" + os.urandom(4).hex(),
        thread_id="thread-" + os.urandom(4).hex(),
        tenant_id="default",
        assistant_id=GRAPH,
        graph_id=GRAPH,
        input={"done": []},
    )
    await nc.subscribe(topology.run_events(request.run_id), cb=on_event)
    saver = RemoteCheckpointSaver(target=memory_process, tenant_id="default")
    # Both up from the start (a worker takes seconds to import): whichever takes the run is killed in it,
    # the other gets it redelivered.
    workers = [_worker(f"agent-{n}", nats_namespace, memory_process, graph_dir, tmp_path) for n in (1, 2)]
    for worker in workers:
        worker.start()
    try:
        await js.publish(topology.runs_requested_for(GRAPH), request.to_bytes())
        await _until(lambda: any(step == "two" for step, _ in _executions(graph_dir)), "a worker reached step two")
        killed_pid = _executions(graph_dir)[-1][1]
        killed = next(w for w in workers if w.proc is not None and w.proc.pid == killed_pid)
        survivor = next(w for w in workers if w is not killed)

        async def one_is_stored() -> bool:
            latest = await saver.aget_tuple({"configurable": {"thread_id": request.thread_id, "checkpoint_ns": ""}})
            return latest is not None and latest.checkpoint["channel_values"].get("done") == ["one"]

        # What the worker has told the memory service by now is what the next one may start from.
        await _until(one_is_stored, "the checkpoint after step one was stored")
        killed.kill()  # SIGKILL, inside step two: no shutdown hook, no nak
        (graph_dir / "release").touch()
        await _until(lambda: any(e.is_final for e in events), "the run ended")

        async def settled() -> bool:
            info = await js.consumer_info(topology.runs_stream, topology.runs_consumer_for(GRAPH))
            return info.num_ack_pending == 0 and info.num_pending == 0

        await _until(settled, "the run was acked")
    finally:
        for worker in workers:
            worker.stop()
        await saver.close()
        for stream in (topology.runs_stream, topology.run_events_stream, topology.webhooks_stream):
            await js.delete_stream(stream)

    finals = [e for e in events if e.is_final]
    assert len(finals) == 1, [e.kind for e in events]
    assert finals[0].kind == "end", finals[0]
    assert finals[0].result().output == {"done": ["one", "two", "three"]}
    runs = _executions(graph_dir)
    # Step one ran once, in the killed worker; the step it died in ran again in the survivor, and so did the rest.
    assert survivor.proc is not None
    assert runs == [("one", killed_pid), ("two", killed_pid), ("two", survivor.proc.pid), ("three", survivor.proc.pid)]
