"""The NATS side of the agent: take runs from the RUNS work queue, run them, publish their events, ack.

Every worker binds to one durable pull consumer, so each run goes to exactly
one of them. A run's message is acked only after its graph has finished (its
last checkpoint stored) and its final event is stored on the RUN_EVENTS stream;
a worker that dies before that leaves the run to be redelivered to another.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy as ConsumerAckPolicy
from nats.js.api import ConsumerConfig
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry import trace
from pydantic import ValidationError
from threadline.events import RunEvent, RunEventKind, RunRequested, Topology
from threadline.grpc import traced_channel
from threadline.nats import cancelled_runs, ensure_streams, keep_alive
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline.telemetry import extract_context, inject_headers

from threadline_agent.answer_cache import AnswerCache, answer_with_cache
from threadline_agent.cache_invalidation import forget_erased, forget_on_ingest
from threadline_agent.calculator import make_calculator_tool
from threadline_agent.graph import ASSISTANTS
from threadline_agent.guardrails import Guardrails, RedactingStream
from threadline_agent.liveness import beat
from threadline_agent.memory_tools import make_memory_tools
from threadline_agent.metrics import AgentMetrics
from threadline_agent.models import chat_model, model_name
from threadline_agent.resilience import CircuitOpen
from threadline_agent.runs import MODEL_UNAVAILABLE, RunFailed, execute_run
from threadline_agent.settings import AgentSettings
from threadline_agent.tools import make_knowledge_base_tool

ACK_WAIT_S = 30.0
IN_PROGRESS_EVERY_S = 10.0  # well inside ACK_WAIT_S, so a slow run is never taken for a dead one
FETCH_TIMEOUT_S = 5.0
MAX_NAK_DELAY_S = 30.0
AFTER_RUN_POLL_S = 0.25  # how soon a run queued behind another looks again
SHUTDOWN_GRACE_S = 10.0  # runs in flight at shutdown get this long to finish before they are handed back

log = structlog.get_logger("threadline.agent")
tracer = trace.get_tracer("threadline.agent")


class RunEvents:
    """Publishes one run's events in order, numbering them from 0, or on from where an earlier delivery stopped.

    Tokens that come faster than ``coalesce_s`` apart travel as one token event: a model can
    stream hundreds of chunks a second, and a NATS message (and a gateway wake-up) per chunk
    cost more CPU than the rest of the run. A client sees the same text, in fewer pieces.
    With ``guardrails`` redacting PII, tokens, the answer and cited passages are redacted.
    """

    def __init__(
        self,
        nc: NatsClient,
        topology: Topology,
        run_id: str,
        coalesce_s: float = 0.0,
        guardrails: Guardrails | None = None,
    ) -> None:
        self._nc, self._js = nc, nc.jetstream()
        self._stream = topology.run_events_stream
        self._subject = topology.run_events(run_id)
        self._run_id = run_id
        self._seq = 0
        self._coalesce_s = coalesce_s
        self._tokens: list[str] = []
        self._token_source: dict[str, Any] = {}
        self._flush_later: asyncio.Task[None] | None = None
        redacting = guardrails is not None and guardrails.redact_pii
        self._redact = guardrails.redact if redacting else None
        self._redacting = RedactingStream(guardrails) if redacting else None

    async def last_stored(self) -> RunEvent | None:
        """The last event of this run the RUN_EVENTS stream holds: an earlier delivery's, on a redelivery."""
        try:
            stored = await self._js.get_last_msg(self._stream, self._subject)
        except NotFoundError:
            return None
        last = RunEvent.model_validate_json(stored.data)
        self._seq = last.seq + 1
        return last

    def _next(self, kind: RunEventKind, data: dict[str, Any]) -> bytes:
        event = RunEvent(run_id=self._run_id, seq=self._seq, kind=kind, data=self._redacted(kind, data))
        self._seq += 1
        return event.to_bytes()

    def _redacted(self, kind: RunEventKind, data: dict[str, Any]) -> dict[str, Any]:
        if self._redact is None:
            return data
        if kind in ("values", "updates"):
            return _redact_texts(data, self._redact)
        if not ({"answer", "citations"} & data.keys()):
            return data
        data = dict(data)
        if isinstance(data.get("answer"), str):
            data["answer"] = self._redact(data["answer"])
        if isinstance(data.get("citations"), list):
            data["citations"] = [
                {**c, "text": self._redact(c["text"])} if isinstance(c, dict) and isinstance(c.get("text"), str) else c
                for c in data["citations"]
            ]
        return data

    async def emit(self, kind: RunEventKind, data: dict[str, Any]) -> None:
        """A plain publish: the RUN_EVENTS stream captures it, and a lost token is not worth a round trip."""
        if kind == "token":
            source = {k: v for k, v in data.items() if k != "text"}  # which message and node the text is of
            if source != self._token_source:
                await self._flush_tokens()
                self._token_source = source
            text = self._redacting.feed(data["text"]) if self._redacting else data["text"]
            if text:
                self._tokens.append(text)
            if self._coalesce_s <= 0:
                await self._flush_tokens(release_held=False)
            elif self._flush_later is None and self._tokens:
                self._flush_later = asyncio.create_task(self._flush_after(self._coalesce_s))
            return
        await self._flush_tokens()
        await self._nc.publish(self._subject, self._next(kind, data), headers=inject_headers())

    async def finish(self, kind: RunEventKind, data: dict[str, Any]) -> None:
        """The final event waits for the stream's ack: the run is acked only once its outcome is stored."""
        await self._flush_tokens()
        await self._js.publish(self._subject, self._next(kind, data), stream=self._stream, headers=inject_headers())

    async def _flush_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._flush_later = None  # from here on this task is the flush, not a timer to cancel
        await self._flush_tokens(release_held=False)

    async def _flush_tokens(self, release_held: bool = True) -> None:
        """Publish the buffered tokens; ``release_held`` also lets out what redaction still holds back."""
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        if release_held and self._redacting and (tail := self._redacting.flush()):
            self._tokens.append(tail)
        if self._tokens:
            text = "".join(self._tokens)
            self._tokens.clear()
            data = {"text": text, **self._token_source}
            await self._nc.publish(self._subject, self._next("token", data), headers=inject_headers())


class AgentWorker:
    """Owns what all runs share: the compiled graphs, the retrieval channel and the NATS connection."""

    def __init__(
        self,
        settings: AgentSettings,
        checkpointer: BaseCheckpointSaver,
        model: BaseChatModel | None = None,
        store: BaseStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store  # long-term memory: with one, the agent gets the remember and recall tools
        self.topology = settings.topology()
        self.model = model or chat_model(settings)
        self.checkpointer = checkpointer
        self.graphs: dict[str, CompiledStateGraph] = {}
        self._channel: grpc.aio.Channel | None = None
        self._nc: NatsClient | None = None
        self._cancelled: KeyValue | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._queue_watch: asyncio.Task[None] | None = None
        self.answer_cache: AnswerCache | None = None
        self._forgetting: list[Subscription] = []  # what drops cached answers when their sources change
        self.metrics = AgentMetrics()
        self.guardrails = settings.guardrails()
        self.retrieval_guard = settings.guard("retrieval")  # one breaker for every run of this worker
        # Runs, not requests: the OpenAI client retries a request itself; this stops runs queueing on a dead model.
        self.model_breaker = settings.guard("model").breaker
        nats_logger = logging.getLogger("threadline.agent.nats")
        self.broker = NatsBroker(
            settings.nats_url,
            name="threadline-agent",
            max_reconnect_attempts=-1,
            logger=nats_logger,
            log_level=logging.DEBUG,  # one line per message is noise; runs log their own outcome
            graceful_timeout=SHUTDOWN_GRACE_S,
        )
        self.subscriber = self.broker.subscriber(
            self.topology.runs_requested,
            stream=JStream(self.topology.runs_stream, declare=False),  # declared by ensure_streams
            durable=self.topology.runs_consumer,
            # A batch is worked concurrently and fully before the next fetch: no message waits un-heartbeaten.
            pull_sub=PullSub(batch_size=settings.concurrency, timeout=FETCH_TIMEOUT_S),
            config=ConsumerConfig(
                ack_policy=ConsumerAckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT_S,
                max_ack_pending=settings.max_ack_pending,
            ),
            ack_policy=AckPolicy.MANUAL,
        )
        self.subscriber(self.handle)
        self.app = FastStream(
            self.broker,
            logger=nats_logger,
            on_startup=[self._start],
            after_startup=[self._ready],
            on_shutdown=[self._stop_listening],
            after_shutdown=[self._close],
        )

    async def _start(self) -> None:
        """Before the subscriber starts: connect, declare the streams, compile the graphs."""
        self._channel = traced_channel(self.settings.retrieval_target)
        tools = [
            make_knowledge_base_tool(
                retrieval_pb2_grpc.RetrievalServiceStub(self._channel),
                self.settings.search_k,
                guard=self.retrieval_guard,
                timeout_s=self.settings.search_timeout_s,
            ),
            make_calculator_tool(),
            *(make_memory_tools(self.store) if self.store is not None else []),
        ]
        approval = self.settings.approval_tools
        self.graphs = {
            name: a.build(self.model, tools, self.checkpointer, approval_tools=approval)
            for name, a in ASSISTANTS.items()
        }
        if self.settings.answer_cache_url:
            self.answer_cache = AnswerCache(
                self.settings.answer_cache_url, f"{self.topology.namespace}:agent", self.settings.answer_cache_ttl_s
            )
        self._nc = await self.broker.connect()
        await ensure_streams(self._nc.jetstream(), self.topology)
        self._cancelled = await cancelled_runs(self._nc.jetstream(), self.topology)
        if self.answer_cache is not None:
            self._forgetting = [
                await forget_erased(self._nc, self.topology, self.answer_cache),
                await forget_on_ingest(self._nc, self.topology, self.answer_cache),
            ]
        nc = self._nc
        # Alive from the moment it is connected, not from the heartbeat task's first turn.
        await asyncio.to_thread(self.settings.heartbeat_file.touch)
        self._heartbeat = asyncio.create_task(beat(self.settings.heartbeat_file, lambda: nc.is_connected))
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port)
            self._queue_watch = asyncio.create_task(
                self.metrics.watch_queue(nc.jetstream(), self.topology.runs_stream, self.topology.runs_consumer)
            )

    async def _ready(self) -> None:
        log.info(
            "agent ready",
            consumer=self.topology.runs_consumer,
            stream=self.topology.runs_stream,
            model=model_name(self.model),
            assistants=sorted(self.graphs),
        )

    async def _stop_listening(self) -> None:
        """Before the broker drains NATS: no cache work may start on a connection going away."""
        for subscription in self._forgetting:
            await subscription.unsubscribe()
        self._forgetting = []

    async def _close(self) -> None:
        """After the broker has drained NATS: close what the runs used."""
        for task in (self._heartbeat, self._queue_watch):
            if task is not None:
                task.cancel()
        self._heartbeat = self._queue_watch = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self.answer_cache is not None:
            await self.answer_cache.close()
            self.answer_cache = None

    async def handle(self, msg: NatsMessage) -> None:
        try:
            request = RunRequested.model_validate_json(msg.body)
        except ValidationError as exc:
            # Without a run id no client can be told; terminate so it is not redelivered forever.
            log.error("malformed run request dropped", error=str(exc))
            await msg.reject()
            return
        if await self._must_wait(request):
            await msg.nack(delay=AFTER_RUN_POLL_S)
            return
        with (
            tracer.start_as_current_span(
                "run", context=extract_context(msg.headers), kind=trace.SpanKind.CONSUMER
            ) as span,
            structlog.contextvars.bound_contextvars(
                run_id=request.run_id, thread_id=request.thread_id, tenant_id=request.tenant_id
            ),
        ):
            span.set_attribute("threadline.run_id", request.run_id)
            span.set_attribute("threadline.thread_id", request.thread_id)
            span.set_attribute("threadline.assistant_id", request.assistant_id)
            span.set_attribute("messaging.destination.name", self.topology.runs_requested)
            beating = asyncio.create_task(keep_alive(msg, IN_PROGRESS_EVERY_S))
            self.metrics.in_flight.inc()
            try:
                with self.metrics.run_seconds.labels(request.assistant_id).time():
                    await self._run(request, msg)
            except asyncio.CancelledError:
                # Stopping mid-run: hand the run back now rather than after ack_wait.
                await asyncio.shield(msg.nack())
                raise
            finally:
                beating.cancel()
                self.metrics.in_flight.dec()

    async def _unless_cancelled(self, run_id: str, run: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        """Work ``run`` unless the run is cancelled, before it starts (the bucket) or while it works (a message)."""
        assert self._nc is not None and self._cancelled is not None
        task = asyncio.ensure_future(run)
        cancelled = asyncio.Event()

        async def on_cancel(_: Any) -> None:
            cancelled.set()
            task.cancel()

        # Subscribed before the bucket is read: a cancel sent in between is still heard.
        subscription = await self._nc.subscribe(self.topology.run_cancel(run_id), cb=on_cancel)
        try:
            try:
                await self._cancelled.get(run_id)
                await on_cancel(None)
            except KeyNotFoundError:
                pass
            return await task
        except asyncio.CancelledError:
            if not cancelled.is_set():
                raise  # the worker itself is stopping: the run goes back to the queue
            log.info("run cancelled")
            raise RunFailed("cancelled", "The run was cancelled.") from None
        finally:
            await subscription.unsubscribe()

    async def _through_model_breaker(self, run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Work ``run`` unless the model has failed too many runs in a row lately: then hand it back at once.

        A dead endpoint otherwise costs every run the client's retries and timeouts before it fails.
        """
        breaker = self.model_breaker
        try:
            breaker.before_call()
        except CircuitOpen as exc:
            raise RunFailed(
                MODEL_UNAVAILABLE, f"The model endpoint is failing; runs wait {exc.retry_in_s:.0f} s.", transient=True
            ) from None
        try:
            data = await run()
        except RunFailed as failure:
            if failure.code == MODEL_UNAVAILABLE:
                breaker.record_failure()
            else:
                breaker.abandon()
            raise
        except BaseException:
            breaker.abandon()
            raise
        breaker.record_success()
        return data

    async def _must_wait(self, request: RunRequested) -> bool:
        """Whether ``request`` is queued behind an earlier run of its thread that has not ended yet.

        An enqueued run must build on the earlier run's outcome. It is handed back to the queue
        (not waited for here, which would hold a worker slot the earlier run may need) until that
        run has ended, or for at most twice the run deadline, so one that can never end blocks nothing.
        """
        if not request.after_run_id:
            return False
        assert self._nc is not None
        age_s = (datetime.now(UTC) - request.created_at).total_seconds()
        if age_s > 2 * self.settings.run_timeout_s:
            log.warning("earlier run of the thread has not ended; starting anyway", after_run_id=request.after_run_id)
            return False
        subject = self.topology.run_events(request.after_run_id)
        try:
            last = await self._nc.jetstream().get_last_msg(self.topology.run_events_stream, subject)
        except NotFoundError:
            return True
        return not RunEvent.model_validate_json(last.data).is_final

    async def _run(self, request: RunRequested, msg: NatsMessage) -> None:
        assert self._nc is not None
        events = RunEvents(
            self._nc, self.topology, request.run_id, self.settings.token_coalesce_ms / 1000, self.guardrails
        )
        attempt = msg.raw_message.metadata.num_delivered or 1
        earlier = await events.last_stored() if attempt > 1 else None
        if earlier is not None and earlier.is_final:
            # The worker before finished the run but died before its ack: answering again would answer twice.
            log.info("redelivered run had already finished; acking", attempt=attempt)
            await msg.ack_sync()
            return
        try:
            if earlier is None:
                await events.emit(
                    "metadata",
                    {"run_id": request.run_id, "thread_id": request.thread_id, "assistant_id": request.assistant_id},
                )
            graph = self.graphs.get(request.assistant_id)
            if graph is None:
                known = ", ".join(sorted(self.graphs))
                raise RunFailed("assistant_not_found", f"No assistant named {request.assistant_id!r} (known: {known}).")
            if request.resume is None and not request.input.strip():
                raise RunFailed("invalid_input", "The input is empty.")
            if request.input.strip():  # a run carrying only a decision asks no question
                self.guardrails.check_input(request.input, request.tenant_id)
            start = functools.partial(
                execute_run,
                graph,
                request,
                events.emit,
                model=model_name(self.model),
                timeout_s=self.settings.run_timeout_s,
                resume=attempt > 1,
            )

            def guarded() -> Coroutine[Any, Any, dict[str, Any]]:
                return self._through_model_breaker(start)

            if self.answer_cache is not None:
                final_node = ASSISTANTS[request.assistant_id].final_node
                run = answer_with_cache(self.answer_cache, graph, request, events.emit, guarded, final_node=final_node)
            else:
                run = guarded()
            data = await self._unless_cancelled(request.run_id, run)
        except RunFailed as failure:
            if failure.transient and attempt < self.settings.max_attempts:
                delay = min(2.0 ** (attempt - 1), MAX_NAK_DELAY_S)
                log.warning("run failed transiently; redelivering", code=failure.code, attempt=attempt, delay_s=delay)
                self.metrics.redeliveries.inc()
                await msg.nack(delay=delay)
                return
            log.warning("run failed", code=failure.code, error=failure.message, attempt=attempt)
            trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, failure.code))
            await events.finish("error", {"code": failure.code, "message": failure.message})
            self.metrics.runs.labels(request.assistant_id, failure.code).inc()
        except Exception as exc:
            log.exception("run crashed")
            trace.get_current_span().record_exception(exc)
            trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, "internal_error"))
            await events.finish("error", {"code": "internal_error", "message": "The agent failed on this run."})
            self.metrics.runs.labels(request.assistant_id, "internal_error").inc()
        else:
            data["usage"]["cost_usd"] = self.settings.cost_usd(data["model"], data["usage"])
            await events.finish("end", data)
            self.metrics.runs.labels(request.assistant_id, data["status"]).inc()
            self.metrics.record_usage(data["model"], data["usage"])
            log.info(
                "run finished",
                status=data["status"],
                model=data["model"],
                citations=len(data["citations"]),
                attempt=attempt,
            )
        # Waits for the server's confirmation: once this returns the run cannot be handed out again.
        await msg.ack_sync()


def _redact_texts(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with every message text (``content`` and ``text`` strings, at any depth) redacted."""
    if isinstance(value, dict):
        return {
            k: redact(v) if k in ("content", "text") and isinstance(v, str) else _redact_texts(v, redact)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_texts(v, redact) for v in value]
    return value
