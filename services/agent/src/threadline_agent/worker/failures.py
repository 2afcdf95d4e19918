"""How a run fails: the error its final event carries, and whether another delivery may do better."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from threadline.run_events import RunError

from threadline_agent.resilience import TRANSIENT_CODES, CircuitOpen

MODEL_UNAVAILABLE = "model_unavailable"
DEPENDENCY_UNAVAILABLE = "dependency_unavailable"


class RunFailed(Exception):
    """A run that ends with an error event; ``transient`` ones are worth another delivery."""

    def __init__(self, code: str, message: str, *, transient: bool = False, retry_in_s: float = 0.0) -> None:
        super().__init__(message)
        self.code, self.message, self.transient = code, message, transient
        self.retry_in_s = retry_in_s  # no sooner is another delivery worth it (an open breaker says when)

    def redelivery_delay(self, attempt: int, max_delay_s: float) -> float:
        """How long a transient failure's run waits before its next delivery: backing off 1, 2, 4 s... and
        never before its breaker lets calls through again, or every attempt would fail at once against it."""
        return min(max(2.0 ** (attempt - 1), self.retry_in_s), max_delay_s)

    def error(self) -> RunError:
        """The payload of the run's final ``error`` event."""
        return RunError(code=self.code, message=self.message)


@contextmanager
def dependency_failures() -> Iterator[None]:
    """The memory or retrieval service failing under a run, as the run's error: worth another delivery when
    gRPC calls the failure transient, or while a circuit breaker keeps the service's calls off."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise RunFailed(
            DEPENDENCY_UNAVAILABLE,
            f"A service the agent depends on failed: {exc.code().name} {exc.details() or ''}".strip(),
            transient=exc.code() in TRANSIENT_CODES,
        ) from exc
    except CircuitOpen as exc:
        raise RunFailed(
            DEPENDENCY_UNAVAILABLE,
            f"A service the agent depends on is failing: {exc}",
            transient=True,
            retry_in_s=exc.retry_in_s,
        ) from exc
