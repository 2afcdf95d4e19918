"""A checkpoint's next tasks, derived as LangGraph's ``StateSnapshot.next`` and ``.tasks`` are, without the graph.

A node of a ``StateGraph`` runs in the next step when the channel that triggers it (``branch:to:<node>``,
or ``__start__`` for the input) holds a value at a version the node has not seen
(``channel_versions`` against ``versions_seen[node]``: LangGraph's ``_triggers``). Its task id is
LangGraph's (a hash of the checkpoint id, the node, the step and the trigger), so the checkpoint's
pending writes tell which task failed and which waits on an ``interrupt()``. As in LangGraph's
``get_state``, ``next`` names every task of the step, those that already wrote included; by name,
where LangGraph orders them as the graph declares its nodes (which the gateway does not know).

Not derived: ``Send`` packets (push tasks), nodes behind a waiting edge of several sources (``join:``
barriers, whose task ids hash more triggers) and subgraph states; such graphs' ``next`` may miss those
tasks. Checked against LangGraph's own ``get_state`` in tests/gateway/test_pending_tasks.py.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

import xxhash

_START = "__start__"
_BRANCH = "branch:to:"
_PULL = "__pregel_pull"
_ERROR, _INTERRUPT = "__error__", "__interrupt__"  # LangGraph's pending-write channels of a failure, a wait


@dataclass
class PendingTask:
    id: str
    name: str
    error: str | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)

    def as_langgraph(self) -> dict[str, Any]:
        """As the LangGraph API lists a thread state's task."""
        return {
            "id": self.id,
            "name": self.name,
            "path": [_PULL, self.name],
            "error": self.error,
            "interrupts": self.interrupts,
            "checkpoint": None,
            "state": None,
            "result": None,
        }


def next_tasks(
    checkpoint: dict[str, Any],
    available: set[str],
    step: int,
    writes: list[tuple[str, str, Any]],
) -> list[PendingTask]:
    """The tasks of the step after ``checkpoint`` (``available``: the channels that hold a value; ``step``: the
    checkpoint's metadata step; ``writes``: its pending writes as (task id, channel, decoded value))."""
    versions: dict[str, Any] = checkpoint.get("channel_versions") or {}
    seen: dict[str, dict[str, Any]] = checkpoint.get("versions_seen") or {}
    tasks: list[PendingTask] = []
    for channel in sorted(versions):
        if channel == _START:
            name = _START
        elif channel.startswith(_BRANCH):
            name = channel[len(_BRANCH) :]
        else:
            continue
        if channel not in available:
            continue
        last_seen = (seen.get(name) or {}).get(channel)
        if last_seen is not None and not _newer(versions[channel], last_seen):
            continue
        tasks.append(PendingTask(_task_id(checkpoint, name, step + 1, channel), name))
    by_id = {t.id: t for t in tasks}
    for task_id, channel, value in writes:
        task = by_id.get(task_id)
        if task is None:
            continue
        if channel == _INTERRUPT:
            task.interrupts.extend(value if isinstance(value, list) else [value])
        elif channel == _ERROR:
            task.error = str(value)
    return tasks


def _newer(version: Any, than: Any) -> bool:
    try:
        return bool(version > than)
    except TypeError:  # an int against a string version: compare as text of the same shape
        return str(version) > str(than)


def _task_id(checkpoint: dict[str, Any], name: str, step: int, trigger: str) -> str:
    namespace = binascii.unhexlify(str(checkpoint.get("id", "")).replace("-", ""))
    data = namespace + b"".join(p.encode() for p in (name, str(step), name, _PULL, trigger))
    if int(checkpoint.get("v", 1)) > 1:
        digest = xxhash.xxh3_128_hexdigest(data)
    else:
        sha = hashlib.sha1(namespace, usedforsecurity=False)
        sha.update(data[len(namespace) :])
        digest = sha.hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
