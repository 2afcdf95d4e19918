"""How a run fails: the error its final event carries, and whether another delivery may do better."""

from __future__ import annotations

from threadline.run_events import RunError

MODEL_UNAVAILABLE = "model_unavailable"


class RunFailed(Exception):
    """A run that ends with an error event; ``transient`` ones are worth another delivery."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.transient = code, message, transient

    def error(self) -> RunError:
        """The payload of the run's final ``error`` event."""
        return RunError(code=self.code, message=self.message)
