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

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.transient = code, message, transient

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
            DEPENDENCY_UNAVAILABLE, f"A service the agent depends on is failing: {exc}", transient=True
        ) from exc
