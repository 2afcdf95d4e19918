"""What the gateway put on the RUNS stream: the run request as an agent worker would receive it."""

from __future__ import annotations

import nats
from threadline.events import RunRequested, Topology

from tests.conftest import NATS_URL


async def last_run_request(namespace: str) -> RunRequested:
    """The newest run request on ``namespace``'s RUNS stream."""
    nc = await nats.connect(NATS_URL)
    try:
        topology = Topology(namespace)
        info = await nc.jetstream().stream_info(topology.runs_stream)
        stored = await nc.jetstream().get_msg(topology.runs_stream, info.state.last_seq)
    finally:
        await nc.close()
    return RunRequested.model_validate_json(stored.data)
