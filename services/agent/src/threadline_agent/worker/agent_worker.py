"""The NATS side of the agent: take runs from the RUNS work queue, run them, publish their events, ack.

Each graph's runs travel on their own subject, with a durable pull consumer of their own
(``agent-workers-<graph>``); a worker binds to the consumers of the graphs it serves
(AGENT_GRAPHS), so each run goes to exactly one worker of its graph's pool; a RunPuller
(run_puller.py) per consumer takes its runs, up to AGENT_CONCURRENCY at once.
A run's message is acked only after its graph has finished (its
last checkpoint stored) and its final event is stored on the RUN_EVENTS stream;
a worker that dies before that leaves the run to be redelivered to another.
What happens to a run between taking and acking it is the pipeline's (pipeline.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import grpc
import structlog
from faststream import FastStream
from faststream.nats import NatsBroker
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy as ConsumerAckPolicy
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from opentelemetry import trace
from pydantic import ValidationError
from threadline.events import RunRequested, WebhookDue
from threadline.grpc import traced_channel
from threadline.nats import cancelled_runs, ensure_streams, keep_alive, retire_legacy_runs_consumer
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline.run_events import RunError, RunEvent, RunResult, RunStarted
from threadline.telemetry import extract_context

from threadline_agent.graphs.calculator import make_calculator_tool
from threadline_agent.graphs.chat_models import chat_model, model_name
from threadline_agent.graphs.knowledge_base import make_knowledge_base_tool
from threadline_agent.graphs.loader import LoadedGraph, load_graphs
from threadline_agent.graphs.mcp_tools import McpToolbox
from threadline_agent.graphs.memory_tools import make_memory_tools
from threadline_agent.graphs.platform import Platform
from threadline_agent.liveness import beat
from threadline_agent.remote.assistants import announce_graphs
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.answer_cache import AnswerCache, QuestionEmbedder
from threadline_agent.worker.cache_invalidation import forget_erased, forget_on_ingest
from threadline_agent.worker.execution import run_config
from threadline_agent.worker.failures import RunFailed
from threadline_agent.worker.metrics import AgentMetrics
from threadline_agent.worker.pipeline import Pipeline, RunContext, agent_pipeline
from threadline_agent.worker.publisher import RunEventPublisher
from threadline_agent.worker.run_puller import RunPuller
from threadline_agent.worker.usage import UsageLedger

ACK_WAIT_S = 30.0
IN_PROGRESS_EVERY_S = 10.0  # well inside ACK_WAIT_S, so a slow run is never taken for a dead one
MAX_NAK_DELAY_S = 30.0
AFTER_RUN_POLL_S = 0.25  # how soon a run queued behind another looks again
SHUTDOWN_GRACE_S = 10.0  # runs in flight at shutdown get this long to finish before they are handed back
NATS_LOGGER = "threadline.agent.nats"

log = structlog.get_logger("threadline.agent")
tracer = trace.get_tracer("threadline.agent")


class AgentWorker:
    """Owns what all runs share: the compiled graphs, the retrieval channel, the NATS connection and the pipeline.

    Its graphs come from ``THREADLINE_GRAPHS`` (a langgraph.json; the built-ins' without it), those
    named in ``AGENT_GRAPHS`` or all; a graph that cannot be imported raises ``GraphLoadError`` here.
    """

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
        self.loaded: dict[str, LoadedGraph] = load_graphs(settings.graphs_file, settings.serve_graphs)
        self.graphs: dict[str, CompiledStateGraph] = {}  # those built once, by graph id (not per-run factories)
        self._channel: grpc.aio.Channel | None = None
        self._nc: NatsClient | None = None
        self._pipeline: Pipeline | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._queue_watch: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[list[str]] | None = None  # the graphs' registration (remote/assistants.py)
        self.answer_cache: AnswerCache | None = None
        self.usage: UsageLedger | None = None
        self._forgetting: list[Subscription] = []  # what drops cached answers when their sources change
        self.metrics = AgentMetrics()
        self.guardrails = settings.guardrails()
        self.retrieval_guard = settings.guard("retrieval")  # one breaker for every run of this worker
        # Runs, not requests: the OpenAI client retries a request itself; this stops runs queueing on a dead model.
        self.model_breaker = settings.guard("model").breaker
        nats_logger = logging.getLogger(NATS_LOGGER)
        self.broker = NatsBroker(
            settings.nats_url,
            name="threadline-agent",
            max_reconnect_attempts=-1,
            logger=nats_logger,
            log_level=logging.DEBUG,  # one line per message is noise; runs log their own outcome
        )
        self._pullers: list[RunPuller] = []  # one per graph, started once everything a run needs is up (_ready)
        self.app = FastStream(
            self.broker,
            logger=nats_logger,
            on_startup=[self._start],
            after_startup=[self._ready],
            on_shutdown=[self._stop_listening],
            after_shutdown=[self._close],
        )

    async def handle(self, msg: Msg) -> None:
        """One delivery of a run, from its graph's RunPuller: traced, kept alive while it works, counted."""
        try:
            request = RunRequested.model_validate_json(msg.data)
        except ValidationError as exc:
            # Without a run id no client can be told; terminated, since every redelivery would fail alike.
            log.error(
                "malformed run request dropped: fix its publisher (it is not a RunRequested)",
                subject=msg.subject,
                error=str(exc),
            )
            await msg.term()
            return
        if await self._must_wait(request):
            await msg.nak(delay=AFTER_RUN_POLL_S)
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
            span.set_attribute("threadline.graph_id", request.graph_id)
            span.set_attribute("messaging.destination.name", msg.subject)
            beating = asyncio.create_task(keep_alive(msg, IN_PROGRESS_EVERY_S))
            self.metrics.in_flight.inc()
            try:
                with self.metrics.run_seconds.labels(request.assistant_id).time():
                    await self._run(request, msg)
            except asyncio.CancelledError:
                # Stopping mid-run: hand the run back now rather than after ack_wait.
                await asyncio.shield(msg.nak())
                raise
            finally:
                beating.cancel()
                self.metrics.in_flight.dec()

    async def _run(self, request: RunRequested, msg: Msg) -> None:
        """Take the run through the pipeline, publish how it ended, then ack (or hand it back to try again)."""
        assert self._nc is not None and self._pipeline is not None
        events = RunEventPublisher(
            self._nc,
            self.topology,
            request.run_id,
            coalesce_s=self.settings.token_coalesce_ms / 1000,
            guardrails=self.guardrails,
        )
        attempt = msg.metadata.num_delivered or 1
        earlier = await events.last_stored() if attempt > 1 else None
        if earlier is not None and earlier.is_final:
            # The worker before finished the run but died before its ack: answering again would answer twice.
            log.info("redelivered run had already finished; acking", attempt=attempt)
            await self._webhook_due(request)  # the worker before may have died before announcing it
            await msg.ack_sync()
            return
        try:
            if earlier is None:
                await events.emit(
                    RunStarted(run_id=request.run_id, thread_id=request.thread_id, assistant_id=request.assistant_id)
                )
            result = await self._pipeline(self._context(request, events, attempt))
        except RunFailed as failure:
            if failure.transient and attempt < self.settings.max_attempts:
                delay = failure.redelivery_delay(attempt, MAX_NAK_DELAY_S)
                log.warning("run failed transiently; redelivering", code=failure.code, attempt=attempt, delay_s=delay)
                self.metrics.redeliveries.inc()
                await msg.nak(delay=delay)
                return
            log.warning("run failed", code=failure.code, error=failure.message, attempt=attempt)
            trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, failure.code))
            await self._end(request, events, failure.error())
        except Exception as exc:
            log.exception("run crashed: a bug in the agent, the client was told internal_error; see the traceback")
            trace.get_current_span().record_exception(exc)
            trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, "internal_error"))
            await self._end(request, events, RunError(code="internal_error", message="The agent failed on this run."))
        else:
            await self._end(request, events, result)
            log.info(
                "run finished",
                status=result.status,
                model=result.model,
                citations=len(result.citations),
                attempt=attempt,
            )
        # Waits for the server's confirmation: once this returns the run cannot be handed out again.
        with tracer.start_as_current_span("ack run"):
            await msg.ack_sync()

    def _context(self, request: RunRequested, events: RunEventPublisher, attempt: int) -> RunContext:
        """The run as the pipeline's steps see it; a graph this worker does not serve fails the run.

        A graph that is a factory of the run's config is built here, for this run.
        """
        loaded = self.loaded.get(request.graph_id)
        if loaded is None:
            known = ", ".join(sorted(self.loaded))
            raise RunFailed("assistant_not_found", f"No assistant named {request.assistant_id!r} (known: {known}).")
        config = run_config(request, max_recursion_limit=self.settings.max_recursion_limit)
        return RunContext(request, loaded.assistant, loaded.for_run(config), events, attempt)

    async def _end(self, request: RunRequested, events: RunEventPublisher, outcome: RunResult | RunError) -> None:
        """Publish the run's final event (and, for a run with a webhook, that it is due), and count its outcome."""
        await events.finish(outcome)
        await self._webhook_due(request)
        if isinstance(outcome, RunError):
            self.metrics.runs.labels(request.assistant_id, outcome.code).inc()
        else:
            self.metrics.runs.labels(request.assistant_id, outcome.status).inc()
            self.metrics.record_usage(outcome.model or "unknown", outcome.usage, request.tenant_id)
            if self.usage is not None:
                await self.usage.add(request.tenant_id, outcome.usage)

    async def _webhook_due(self, request: RunRequested) -> None:
        """Put the run's webhook on the WEBHOOKS work queue (after its final event is stored, before the ack).

        Keyed by run id, so a redelivered run's second announcement is dropped as a duplicate.
        """
        if not request.webhook:
            return
        assert self._nc is not None
        due = WebhookDue(
            run_id=request.run_id, thread_id=request.thread_id, tenant_id=request.tenant_id, webhook=request.webhook
        )
        await self._nc.jetstream().publish(
            self.topology.webhooks_due, due.to_bytes(), headers={"Nats-Msg-Id": f"webhook-{request.run_id}"}
        )

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
        assert last.data is not None  # an event always has a body
        return not RunEvent.model_validate_json(last.data).is_final

    # --- the FastStream app's lifecycle --------------------------------------------------------

    async def _start(self) -> None:
        """Before runs are taken: connect, declare the streams, compile the graphs, build the pipeline."""
        self._channel = traced_channel(self.settings.retrieval_target)
        tools = [
            make_knowledge_base_tool(
                retrieval_pb2_grpc.RetrievalServiceStub(self._channel),
                self.settings.search_k,
                guard=self.retrieval_guard,
                timeout_s=self.settings.search_timeout_s,
                untrusted=self.settings.untrusted_passages,
            ),
            make_calculator_tool(),
            *(make_memory_tools(self.store) if self.store is not None else []),
        ]
        mcp = McpToolbox(
            allow_stdio=self.settings.mcp_allow_stdio,
            allowed_hosts=self.settings.mcp_hosts,
            list_timeout_s=self.settings.mcp_timeout_s,
            call_timeout_s=self.settings.mcp_call_timeout_s,
            ttl_s=self.settings.mcp_tools_ttl_s,
        )
        platform = Platform(self.model, tools, self.settings.approval_tools, mcp=mcp)
        for loaded in self.loaded.values():  # the worker's checkpointer and store, on every graph
            loaded.prepare(platform, self.checkpointer, self.store)
        self.graphs = {gid: g.compiled for gid, g in self.loaded.items() if g.compiled is not None}
        if self.settings.usage_url:
            self.usage = UsageLedger(self.settings.usage_url, self.topology.namespace)
        if self.settings.answer_cache_url:
            self.answer_cache = AnswerCache(
                self.settings.answer_cache_url,
                f"{self.topology.namespace}:agent",
                self.settings.answer_cache_ttl_s,
                embedder=QuestionEmbedder(retrieval_pb2_grpc.RetrievalServiceStub(self._channel)),
                similarity=self.settings.answer_cache_similarity,
                max_similar=self.settings.answer_cache_max_similar,
            )
        self._nc = nc = await self.broker.connect()
        await ensure_streams(nc.jetstream(), self.topology)
        # Before runs had a subject per graph, one unfiltered consumer took them all: it would block the graphs'.
        if await retire_legacy_runs_consumer(nc.jetstream(), self.topology):
            log.warning(
                "deleted the runs consumer of the single-subject layout", consumer=self.topology.legacy_runs_consumer
            )
        self._pipeline = agent_pipeline(
            self.settings,
            guardrails=self.guardrails,
            nc=nc,
            topology=self.topology,
            cancelled=await cancelled_runs(nc.jetstream(), self.topology),
            cache=self.answer_cache,
            model_breaker=self.model_breaker,
            model=model_name(self.model),
            chat_model=self.model,
        )
        if self.answer_cache is not None:
            self._forgetting = [
                await forget_erased(nc, self.topology, self.answer_cache),
                await forget_on_ingest(nc, self.topology, self.answer_cache),
            ]
        # Each graph, its schemas and its default assistant in the memory service's registry (retried meanwhile).
        self._announcing = await announce_graphs(
            self.settings.memory_target,
            {gid: g.compiled for gid, g in self.loaded.items()},
            guard=self.settings.guard("memory"),
            timeout_s=self.settings.memory_timeout_s,
        )
        # Alive from the moment it is connected, not from the heartbeat task's first turn.
        await asyncio.to_thread(self.settings.heartbeat_file.touch)
        self._heartbeat = asyncio.create_task(beat(self.settings.heartbeat_file, lambda: nc.is_connected))
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port)
            self._queue_watch = asyncio.create_task(
                self.metrics.watch_queue(
                    nc.jetstream(),
                    self.topology.runs_stream,
                    {gid: self.topology.runs_consumer_for(gid) for gid in self.loaded},
                )
            )

    async def _ready(self) -> None:
        """Everything a run needs is up: start taking runs, one pool (consumer) per graph."""
        assert self._nc is not None
        for graph_id in self.loaded:
            puller = RunPuller(
                self._nc,
                self.topology.runs_stream,
                ConsumerConfig(
                    durable_name=self.topology.runs_consumer_for(graph_id),
                    filter_subject=self.topology.runs_requested_for(graph_id),
                    ack_policy=ConsumerAckPolicy.EXPLICIT,
                    ack_wait=ACK_WAIT_S,
                    max_ack_pending=self.settings.max_ack_pending,
                ),
                self.handle,
                slots=self.settings.concurrency,
                expires_s=self.settings.fetch_timeout_s,
            )
            await puller.start()
            self._pullers.append(puller)
        log.info(
            "agent ready",
            consumers=[self.topology.runs_consumer_for(gid) for gid in sorted(self.loaded)],
            stream=self.topology.runs_stream,
            model=model_name(self.model),
            graphs=sorted(self.loaded),
        )

    async def _stop_listening(self) -> None:
        """Before the broker drains NATS: take no more runs, let those in flight end, start no cache work."""
        await asyncio.gather(*(puller.stop(SHUTDOWN_GRACE_S) for puller in self._pullers))
        self._pullers = []
        for subscription in self._forgetting:
            await subscription.unsubscribe()
        self._forgetting = []

    async def _close(self) -> None:
        """After the broker has drained NATS: close what the runs used."""
        for task in (self._heartbeat, self._queue_watch, self._announcing):
            if task is not None:
                task.cancel()
        self._heartbeat = self._queue_watch = self._announcing = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self.answer_cache is not None:
            await self.answer_cache.close()
            self.answer_cache = None
        if self.usage is not None:
            await self.usage.close()
            self.usage = None
