"""A run to follow: its owner record and the bus its events arrive on, whether it was just started or looked up."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from threadline.run_events import RunError

from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.metrics import GatewayMetrics, RunOutcomeLabel
from threadline_gateway.run_bus import RunBus, RunEventStream, RunOutcome, RunRecord


@dataclass(frozen=True)
class RunHandle:
    """``metrics`` is set only on a run this request started, so each run's outcome is counted once,
    by the request that submitted it, however many clients join or stream it later."""

    record: RunRecord
    bus: RunBus
    metrics: GatewayMetrics | None = None

    def follow(self, after_seq: int = -1) -> AbstractAsyncContextManager[RunEventStream]:
        """The run's events after ``after_seq`` (-1: all of them), replayed from its first."""
        return self.bus.follow(self.record.run_id, after_seq)

    async def outcome(self, timeout_s: float) -> RunOutcome:
        """The run's result or failure once it has ended (at once if it already has).

        A 504 ``run_timeout`` after ``timeout_s`` (the run goes on), a 503 if NATS is unavailable.
        """
        try:
            with nats_errors_as_503():
                async with self.follow() as events:
                    outcome = await asyncio.wait_for(events.outcome(), timeout=timeout_s)
        except TimeoutError as exc:
            self.finished("timeout")
            raise ApiError(
                504,
                "run_timeout",
                f"The run did not finish within {timeout_s:g} s; it goes on in the background.",
                run_id=self.record.run_id,
                thread_id=self.record.thread_id,
            ) from exc
        self.finished("error" if isinstance(outcome, RunError) else "success")
        return outcome

    def finished(self, outcome: RunOutcomeLabel) -> None:
        """Count how a run this request started ended for its client (a no-op for a run looked up)."""
        if self.metrics is not None:
            self.metrics.run_finished(outcome)
