"""The worker's NATS log under load: an idle fetch that timed out is a DEBUG line, never a traceback at ERROR."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.worker.nats_logs import NATS_LOGGER, quiet_idle_fetches

from tests.agent.conftest import running_worker
from tests.agent.test_worker import run_and_collect

FETCH_TIMEOUT_S = 0.2


def _timed_out_fetches(caplog: pytest.LogCaptureFixture) -> int:
    """Fetches that ended in a bare TimeoutError, however the log reported them (a DEBUG line, or a traceback)."""
    return sum(
        r.name == NATS_LOGGER
        and (
            "idle fetch for runs timed out" in r.getMessage() or isinstance(r.exc_info and r.exc_info[1], TimeoutError)
        )
        for r in caplog.records
    )


def _busy(seconds: float) -> None:
    """Hold the event loop, as a run's own work does on a loaded worker."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def test_idle_fetches_timing_out_under_load_log_nothing_above_debug(
    nats_namespace: str,
    nc: NatsClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FastStream prints a given traceback once per process and hour: here every one, whatever ran before.
    monkeypatch.setenv("FASTSTREAM_SUPERVISOR_CACHE_TTL", "0")
    caplog.set_level(logging.DEBUG, logger=NATS_LOGGER)
    bursts = random.Random(7)
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), AGENT_FETCH_TIMEOUT_S=FETCH_TIMEOUT_S
    ) as worker:
        # On a busy loop some idle fetches end in the bare TimeoutError that FastStream reports as a crash.
        give_up = time.monotonic() + 30
        while _timed_out_fetches(caplog) < 2 and time.monotonic() < give_up:
            _busy(bursts.uniform(0, FETCH_TIMEOUT_S / 4))
            await asyncio.sleep(0)
        await asyncio.sleep(3 * FETCH_TIMEOUT_S)  # and idle past a few more fetches
        assert _timed_out_fetches(caplog) >= 2, "no fetch timed out: nats-py may have fixed it, see nats_logs.py"

        # The fetch loop went on after each: the worker still takes runs.
        run = RunRequested(run_id=uuid.uuid4().hex, thread_id="t-idle", tenant_id="acme", input="How are runs kept?")
        assert (await run_and_collect(nc, worker.topology, run))[-1][0].kind == "end"

    loud = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == NATS_LOGGER and r.levelno > logging.DEBUG
    ]
    assert loud == []


def test_any_other_failure_of_the_fetch_loop_keeps_its_error(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(NATS_LOGGER)
    quiet_idle_fetches(logger)
    caplog.set_level(logging.INFO, logger=NATS_LOGGER)
    for failure in (TimeoutError("a timeout, but not a fetch's"), ConnectionError("nats: connection closed")):
        try:
            raise failure
        except Exception as exc:
            logger.log(logging.ERROR, "Task-7 raised an exception, retrying...", exc_info=exc)
    logger.error("malformed run request dropped: fix its publisher (it is not a RunRequested)")

    assert [(r.levelno, r.exc_info is not None) for r in caplog.records] == [
        (logging.ERROR, True),
        (logging.ERROR, True),
        (logging.ERROR, False),
    ]
