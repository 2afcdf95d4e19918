"""The one way a run starts, whichever API asked for it: checked, built for the caller's tenant, claimed, submitted.

The v1 routes, the WebSocket, the OpenAI-compatible and the LangGraph-compatible APIs each turn
their own body into a :class:`NewRun` and hand it to :meth:`RunStarter.start`, so a run's tenant,
its ``user_id`` label, the input checks and the thread's multitask rule are decided in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from threadline.events import RunConfig, RunRequested, StateUpdate, StreamModeName, client_configurable
from threadline.ids import is_graph_id
from threadline.mcp_servers import MCP_SERVERS_KEY
from threadline.output_schema import OutputSchema
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.aim import aimed, check_collection
from threadline_gateway.assistant_cache import CachingMemory
from threadline_gateway.assistant_tools import allows_client_tools
from threadline_gateway.auth import Principal
from threadline_gateway.budgets import Budgets
from threadline_gateway.errors import ApiError, invalid_field, nats_errors_as_503
from threadline_gateway.memory import Assistant, Memory
from threadline_gateway.metrics import GatewayMetrics, RunMode
from threadline_gateway.output_schemas import with_output_schema
from threadline_gateway.run_bus import RunBus, RunRecord
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.schemas import MultitaskStrategy, QueryRequest, ToolDecision, strip_blank
from threadline_gateway.webhooks import webhook_errors

log = structlog.get_logger("threadline.gateway")


@dataclass(frozen=True)
class NewRun:
    """A run as a client asked for it, in any of the gateway's APIs, before the gateway has checked it."""

    input: str | dict[str, Any] | None  # a question's text, or the graph's input as JSON
    assistant_id: str = "agent"
    thread_id: str | None = None  # None: a new conversation, on a new thread
    user_id: str | None = None  # who the caller says asks; a JWT's subject wins over it
    metadata: Mapping[str, Any] = field(default_factory=dict)
    stream_modes: Sequence[StreamModeName] = ()  # LangGraph's stream modes to publish besides the run's own events
    resume: ToolDecision | None = None
    command: Mapping[str, Any] | None = None  # LangGraph's Command: resume, update, goto
    config: RunConfig = field(default_factory=RunConfig)
    context: Mapping[str, Any] | None = None
    multitask: MultitaskStrategy = "reject"
    update_state: StateUpdate | None = None  # not a run of the graph: an update of the thread's state
    webhook: str | None = None  # POST the run's outcome here once it has ended (threadline_gateway.webhooks)
    run_id: str | None = None  # None: a new UUID; a cron's tick names its own, so a retried start is one run
    output_schema: OutputSchema | None = None  # structured output: the answer's JSON Schema (output_schemas.py)
    collection: str | None = None  # the knowledge base's collection to search (threadline_gateway.aim)
    filter: Mapping[str, str] | None = None  # and the metadata its passages must have
    client_tools: Sequence[dict[str, Any]] = ()  # OpenAI functions the client runs (threadline_gateway.openai_tools)
    tool_choice: str | dict[str, Any] | None = None

    @classmethod
    def of(cls, body: QueryRequest) -> NewRun:
        return cls(
            input=body.input,
            assistant_id=body.assistant_id,
            thread_id=body.thread_id,
            user_id=body.user_id,
            resume=body.resume,
            config=body.config or RunConfig(),
            context=body.context,
            multitask=body.multitask_strategy,
            webhook=body.webhook,
            output_schema=OutputSchema(json_schema=body.output_schema) if body.output_schema is not None else None,
            collection=body.collection,
            filter=body.filter,
        )


def input_errors(text: str, max_chars: int) -> list[dict[str, str]]:
    """Field errors of a question's text (already stripped); empty when it may be run."""
    if not text:
        return [{"field": "input", "message": "must not be blank"}]
    if len(text) > max_chars:
        return [{"field": "input", "message": f"at most {max_chars} characters"}]
    return []


class RunStarter:
    def __init__(
        self,
        bus: RunBus,
        metrics: GatewayMetrics,
        max_input_chars: int,
        memory: Memory | None = None,
        webhook_hosts: frozenset[str] = frozenset(),
        retrieval: RetrievalServiceStub | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.bus, self.metrics, self.max_input_chars = bus, metrics, max_input_chars
        self.budgets = budgets  # tenants' token and cost budgets; None: none enforced
        self.memory = memory  # the assistant registry; None: every assistant is taken to be its graph
        self.webhook_hosts = webhook_hosts  # the hosts a webhook may name; empty: any
        self.retrieval = retrieval  # where a run's collection is looked up; None: not checked

    async def start(self, principal: Principal, new: NewRun, mode: RunMode) -> RunHandle:
        """Check ``new``, claim its thread, store its owner and submit it; the handle follows its events.

        The run's tenant is always the caller's (never anything the body says). A 422 names a bad
        field, a 409 ``thread_busy`` refuses a busy thread (as ``new.multitask`` says), a 503 means
        NATS is unavailable. Once this returns the run is durable and counted as started in ``mode``.
        An assistant that does not exist is a 404 ``assistant_not_found``, a collection the tenant
        does not have a 404 ``collection_not_found``, a tenant over its budget a 429 ``budget_exceeded``.
        """
        if self.budgets is not None:
            await self.budgets.check(principal.tenant_id)
        run = await self.checked(principal, new)
        with nats_errors_as_503():
            await self.bus.start(run, new.multitask)
        self.metrics.run_started(mode)
        return RunHandle(RunRecord.of(run, new.multitask), self.bus, self.metrics)

    async def checked(self, principal: Principal, new: NewRun) -> RunRequested:
        """``new`` as the run :meth:`start` would submit, checked as it checks it, without starting anything:
        a cron's run is refused when the cron is made, not at each of its ticks."""
        assistant = await self._assistant(principal.tenant_id, new.assistant_id)
        run = self._request(principal, new)
        if assistant is not None:
            if run.client_tools and not allows_client_tools(assistant):
                raise invalid_field("tools", f"the assistant {new.assistant_id!r} does not take client tools")
            run = with_assistant(run, assistant)
            configurable = aimed(run.config.configurable, run.context, {}, "assistant.")
            run = run.model_copy(update={"config": run.config.model_copy(update={"configurable": configurable})})
        run = with_output_schema(run)  # the request's, else the config's (its assistant's): checked before any run
        await check_collection(self.retrieval, principal.tenant_id, run.config.configurable)
        return run

    async def _assistant(self, tenant_id: str, assistant_id: str) -> Assistant | None:
        """The run's assistant from the registry (by id, or a graph's name for its default assistant).

        With the memory service unavailable a graph's name is still run, as that graph's default
        assistant (None: the agent checks the graph; a race with a deleted graph ends the run
        ``assistant_not_found`` there); an assistant id cannot be resolved then, a 503.
        """
        if self.memory is None:
            return None
        lookup = self.memory.assistant_for_run if isinstance(self.memory, CachingMemory) else self.memory.get_assistant
        try:
            return await lookup(tenant_id, assistant_id)
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError(404, "assistant_not_found", f"No assistant {assistant_id!r}.") from exc
            if exc.status != 503 or not _graph_name(assistant_id):
                raise
            log.warning("assistant registry unavailable; running the graph of that name", assistant_id=assistant_id)
            return None

    def _request(self, principal: Principal, new: NewRun) -> RunRequested:
        text = strip_blank(new.input) if isinstance(new.input, str) else ""
        # a decision, a command or a state update needs no input
        continues = new.resume is not None or new.command is not None or new.update_state is not None
        if new.resume is not None and not new.thread_id:
            raise invalid_field("thread_id", "is required with resume: the thread whose run waits")
        if isinstance(new.input, str):
            if continues:
                if len(text) > self.max_input_chars:
                    raise invalid_field("input", f"at most {self.max_input_chars} characters")
            elif errors := input_errors(text, self.max_input_chars):
                raise ApiError(422, "validation_error", "The request is not valid.", fields=errors)
        elif new.input is None and not continues and not new.thread_id:  # JSON input is the graph's to judge
            # on a thread, no input goes on from its checkpoint; a new thread has nothing to go on from
            raise invalid_field("input", "is required on a new thread, without resume or a command")
        if not is_graph_id(new.assistant_id):  # no graph is named so: its runs would have no subject to go to
            raise invalid_field("assistant_id", "must name a graph: 1-64 letters, digits, '_' or '-'")
        if new.webhook is not None and (problem := webhook_errors(new.webhook, self.webhook_hosts)):
            raise invalid_field("webhook", problem)
        if MCP_SERVERS_KEY in new.config.configurable:  # what a tenant's agent may reach is the assistant's to say
            raise invalid_field("config.configurable.mcp_servers", "MCP servers are named in an assistant's config")
        return RunRequested(
            run_id=new.run_id or str(uuid.uuid4()),
            thread_id=new.thread_id or str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            assistant_id=new.assistant_id,
            graph_id=new.assistant_id,  # each graph's default assistant is addressed by the graph's name
            input=text if isinstance(new.input, str) else new.input,
            metadata={**new.metadata, **_user_label(principal, new.user_id)},
            stream_modes=list(dict.fromkeys(new.stream_modes)),
            resume=new.resume.model_dump(exclude_none=True) if new.resume else None,
            command=dict(new.command) if new.command is not None else None,
            config=new.config.model_copy(update={"configurable": self._configurable(new)}),
            context=dict(new.context) if new.context is not None else None,
            update_state=new.update_state,
            webhook=new.webhook,
            output_schema=new.output_schema,
            client_tools=list(new.client_tools),
            tool_choice=new.tool_choice,
        )

    @staticmethod
    def _configurable(new: NewRun) -> dict[str, Any]:
        """The client's configurable keys, with the knowledge base's aim wherever the request stated it."""
        stated = {"collection": new.collection, "filter": new.filter}
        return aimed(client_configurable(new.config.configurable), new.context, stated, "")


def with_assistant(run: RunRequested, assistant: Assistant) -> RunRequested:
    """``run`` as its assistant makes it: the assistant's graph, its config and context under the
    request's (the request's keys win), and the assistant's id and version in the run's metadata."""
    defaults = RunConfig.model_validate(assistant.config)
    config = run.config.model_copy(
        update={
            "configurable": {**client_configurable(defaults.configurable), **run.config.configurable},
            "tags": list(dict.fromkeys([*defaults.tags, *run.config.tags])),
            "recursion_limit": run.config.recursion_limit or defaults.recursion_limit,
        }
    )
    context = {**assistant.context, **(run.context or {})} if assistant.context else run.context
    metadata = {**run.metadata, "assistant_id": assistant.assistant_id, "assistant_version": assistant.version}
    return run.model_copy(
        update={"graph_id": assistant.graph_id, "config": config, "context": context, "metadata": metadata}
    )


def _graph_name(assistant_id: str) -> bool:
    """Whether ``assistant_id`` may name a graph (an assistant's id is a UUID)."""
    try:
        uuid.UUID(assistant_id)
    except ValueError:
        return is_graph_id(assistant_id)
    return False


def _user_label(principal: Principal, claimed: str | None) -> dict[str, str]:
    """The run's ``user_id`` label: a token's subject, else what the (API-key) caller says."""
    user_id = principal.user_id or claimed
    return {"user_id": user_id} if user_id else {}
