"""Retries with exponential backoff and a circuit breaker around the agent's calls to other services.

Retries ride on tenacity. The breaker is written here rather than taken from a library:
it must count only *transient* failures (a malformed request says nothing about the
dependency's health), keep its state per dependency in this process only, and take a clock
so tests can drive it without sleeping; the asyncio breakers on PyPI (purgatory, aiobreaker)
bring storage backends or global registries this does not need, for about as many lines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import grpc
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
log = structlog.get_logger("threadline.agent")

# A dependency that answers with one of these may well answer the next call. CANCELLED on our side of a
# call we did not cancel is the server's doing: a replica stopping (with grace) cancels the calls it holds.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def transient_grpc_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a gRPC failure worth another try (the service down, slow or overloaded)."""
    return isinstance(exc, grpc.aio.AioRpcError | grpc.RpcError) and _code(exc) in TRANSIENT_CODES


def _code(exc: BaseException) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


class CircuitOpen(Exception):
    """A call refused without being made: the dependency failed too often lately."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(f"{name} is failing; calls are suspended for {retry_in_s:.1f} s")
        self.name, self.retry_in_s = name, retry_in_s


class CircuitBreaker:
    """Opens after ``failure_threshold`` transient failures in a row, so calls fail at once instead of
    each waiting out a timeout; after ``reset_s`` one trial call goes through (half-open), and its
    outcome closes the breaker or opens it again.

    ``calls`` counts calls let through and ``rejected`` calls refused, for tests and logs.
    """

    def __init__(
        self, name: str, failure_threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.calls = 0
        self.rejected = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def before_call(self) -> None:
        """Let the call through, or raise ``CircuitOpen``."""
        state = self.state
        if state == "open" or (state == "half_open" and self._trial_in_flight):
            self.rejected += 1
            assert self._opened_at is not None
            raise CircuitOpen(self.name, max(self.reset_s - (self._clock() - self._opened_at), 0.0))
        if state == "half_open":
            self._trial_in_flight = True
        self.calls += 1

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit closed", dependency=self.name)
        self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self._opened_at is None:
                log.warning("circuit opened", dependency=self.name, failures=self._failures)
            self._opened_at = self._clock()  # a failed trial starts the wait over

    def abandon(self) -> None:
        self._trial_in_flight = False

    def record_neutral(self) -> None:
        """A call that failed for its own reasons (a bad argument): the dependency answered, so it is up."""
        self._trial_in_flight = False
        if self.state == "half_open":
            self.record_success()


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``backoff_s``, then twice that, ... up to ``backoff_max_s`` (with jitter)."""

    attempts: int = 3
    backoff_s: float = 0.1
    backoff_max_s: float = 2.0


class Guarded:
    """One dependency's calls: transient failures retried with backoff, all of them through one breaker.

    An open breaker is not retried: ``CircuitOpen`` goes straight to the caller, which is the point.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        is_transient: Callable[[BaseException], bool] = transient_grpc_error,
    ) -> None:
        self.breaker = breaker
        self.retry = retry
        self._is_transient = is_transient

    @property
    def name(self) -> str:
        return self.breaker.name

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` under this guard; ``fn`` is called afresh on every attempt."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            # Jitter of up to one base wait, so workers retrying together do not call together again.
            wait=wait_exponential(multiplier=self.retry.backoff_s, max=self.retry.backoff_max_s)
            + wait_random(0, self.retry.backoff_s),
            retry=retry_if_exception(self._is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                self.breaker.before_call()
                try:
                    result = await fn()
                except Exception as exc:
                    if self._is_transient(exc):
                        self.breaker.record_failure()
                        log.warning("dependency call failed", dependency=self.name, error=_describe(exc))
                    else:
                        self.breaker.record_neutral()
                    raise
                except BaseException:
                    self.breaker.abandon()  # cancelled: no verdict, but a half-open trial must not stay taken
                    raise
                self.breaker.record_success()
                return result
        raise AssertionError("unreachable: tenacity reraises the last failure")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    code = _code(exc)
    return code.name if isinstance(code, grpc.StatusCode) else type(exc).__name__
