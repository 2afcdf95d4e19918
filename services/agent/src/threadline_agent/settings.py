"""The agent worker's settings, read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode
from threadline.run_events import Usage
from threadline.settings import ServiceSettings

from threadline_agent.graphs.answerer import MODEL_NAME
from threadline_agent.resilience import CircuitBreaker, Guarded, RetryPolicy
from threadline_agent.worker.guardrails import Guardrails


class AgentSettings(ServiceSettings):
    retrieval_target: str = Field(default="127.0.0.1:50051", validation_alias=AliasChoices("RETRIEVAL_TARGET"))
    memory_target: str = Field(default="127.0.0.1:50052", validation_alias=AliasChoices("MEMORY_TARGET"))
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY"),
        description="With OPENAI_BASE_URL, switches from the extractive answerer to ChatOpenAI.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL"),
        description="Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, LM Studio, Azure).",
    )
    openai_model: str = Field(default="gpt-4o-mini", validation_alias=AliasChoices("OPENAI_MODEL"))
    run_timeout_s: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_RUN_TIMEOUT_S"),
        description="A run still working after this ends with a run_timeout error event.",
    )
    search_k: int = Field(
        default=4, ge=1, le=50, validation_alias=AliasChoices("AGENT_SEARCH_K"), description="Passages per search."
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("AGENT_CONCURRENCY"),
        description="Runs one worker works at once, per graph it serves; a free slot asks for the next run at once.",
    )
    max_ack_pending: int = Field(
        default=64,
        ge=1,
        validation_alias=AliasChoices("AGENT_MAX_ACK_PENDING"),
        description="Runs handed out to all workers together and not yet acked (the consumer's max_ack_pending).",
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("AGENT_MAX_ATTEMPTS"),
        description="Deliveries of a run that keeps failing transiently before it ends with an error event.",
    )
    fetch_timeout_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_FETCH_TIMEOUT_S"),
        description="How long an idle worker's pull request for runs waits before it is made again.",
    )
    heartbeat_file: Path = Field(
        default=Path("/tmp/threadline-agent-alive"),
        validation_alias=AliasChoices("AGENT_HEARTBEAT_FILE"),
        description="Touched while connected to NATS; the liveness probe checks its age.",
    )
    token_coalesce_ms: float = Field(
        default=15.0,
        ge=0,
        validation_alias=AliasChoices("AGENT_TOKEN_COALESCE_MS"),
        description="Tokens streamed within this many milliseconds travel as one token event; 0: one event each.",
    )
    max_recursion_limit: int = Field(
        default=100,
        ge=1,
        validation_alias=AliasChoices("AGENT_MAX_RECURSION_LIMIT"),
        description="The most steps a client's config.recursion_limit may give a run.",
    )
    max_input_chars: int = Field(
        default=8000, ge=1, validation_alias=AliasChoices("AGENT_MAX_INPUT_CHARS"), description="Longer: input_blocked."
    )
    block_prompt_injection: bool = Field(
        default=True,
        validation_alias=AliasChoices("AGENT_BLOCK_PROMPT_INJECTION"),
        description="Refuse questions that try to override the assistant's instructions (input_blocked).",
    )
    untrusted_passages: Literal["flag", "strip", "off"] = Field(
        default="flag",
        validation_alias=AliasChoices("AGENT_UNTRUSTED_PASSAGES"),
        description="Retrieved passages that give the model orders (indirect prompt injection): flag marks them to "
        "the model and in their citation's metadata; strip cuts those sentences out; off passes them as they are.",
    )
    redact_pii: bool = Field(
        default=True,
        validation_alias=AliasChoices("AGENT_REDACT_PII"),
        description="Mask emails, phone, card and social security numbers in answers, tokens and citations.",
    )
    blocked_terms: dict[str, list[str]] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("AGENT_BLOCKED_TERMS"),
        description='Terms refused in questions, per tenant, as JSON: {"*": [...], "acme": [...]} ("*": every tenant).',
    )
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("AGENT_MODEL_PRICES"),
        description='US dollars per million input and output tokens, by model, as JSON: {"gpt-4o-mini": [0.15, 0.6]}.',
    )
    search_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_SEARCH_TIMEOUT_S"),
        description="Deadline of one knowledge-base search (one attempt) at the retrieval service.",
    )
    memory_tools: bool = Field(
        default=True,
        validation_alias=AliasChoices("AGENT_MEMORY_TOOLS"),
        description="Offer the remember and recall tools (a user's facts in the memory service's long-term store).",
    )
    memory_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_MEMORY_TIMEOUT_S"),
        description="Deadline of one checkpoint call (one attempt) at the memory service.",
    )
    retry_attempts: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("AGENT_RETRY_ATTEMPTS"),
        description="Tries in all of a retrieval or memory call that fails transiently (UNAVAILABLE, deadline).",
    )
    retry_backoff_s: float = Field(
        default=0.1,
        ge=0,
        validation_alias=AliasChoices("AGENT_RETRY_BACKOFF_S"),
        description="Wait before the first retry; doubled on each further one (with jitter).",
    )
    retry_backoff_max_s: float = Field(
        default=2.0, ge=0, validation_alias=AliasChoices("AGENT_RETRY_BACKOFF_MAX_S"), description="Longest wait."
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("AGENT_BREAKER_FAILURES"),
        description="Transient failures in a row after which calls to that service fail at once (breaker open).",
    )
    breaker_reset_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_BREAKER_RESET_S"),
        description="How long an open breaker refuses calls before it lets one trial call through.",
    )
    model_max_retries: int = Field(
        default=2,
        ge=0,
        validation_alias=AliasChoices("OPENAI_MAX_RETRIES"),
        description="ChatOpenAI's own retries (with backoff) of a failed or rate-limited model request.",
    )
    model_timeout_s: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("OPENAI_TIMEOUT_S"), description="One model request."
    )
    approval_tools: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        validation_alias=AliasChoices("AGENT_APPROVAL_TOOLS"),
        description="Tools whose calls wait for a person's approval (comma-separated names, e.g. calculator); "
        "the run ends interrupted and a run carrying RunRequested.resume decides.",
    )
    mcp_allow_stdio: bool = Field(
        default=False,
        validation_alias=AliasChoices("AGENT_MCP_ALLOW_STDIO"),
        description="Let an assistant's config start stdio MCP servers: a command run on the worker's host, so "
        "only for a deployment whose assistants are all trusted; off, such servers' tools are unavailable.",
    )
    mcp_hosts: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        validation_alias=AliasChoices("AGENT_MCP_HOSTS"),
        description="The hosts an assistant's Streamable HTTP MCP servers may be on (comma-separated); empty: any. "
        "Set it where the workers can reach services tenants must not (cloud metadata, internal APIs).",
    )
    mcp_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_MCP_TIMEOUT_S"),
        description="Deadline of listing an MCP server's tools; a server slower than this has no tools for the run.",
    )
    mcp_call_timeout_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_MCP_CALL_TIMEOUT_S"),
        description="Deadline of one MCP tool call; a slower call is a tool error the model reads.",
    )
    mcp_tools_ttl_s: float = Field(
        default=60.0,
        ge=0,
        validation_alias=AliasChoices("AGENT_MCP_TOOLS_TTL_S"),
        description="How long an MCP server's tool list is reused by later runs before it is listed again.",
    )
    usage_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENT_USAGE_URL", "REDIS_URL"),
        description="Redis URL where each run's tokens and cost are added to its tenant's daily and monthly "
        "counters (the gateway's budgets and GET /api/v1/usage read them); unset: not counted.",
    )
    answer_cache_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENT_ANSWER_CACHE_URL"),
        description="Redis URL of the answer cache (a thread's first question asked again in the tenant gets the "
        "stored answer, marked cached); unset: off.",
    )
    answer_cache_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=AliasChoices("AGENT_ANSWER_CACHE_TTL_S"),
        description="How long a cached answer is served; bounds its staleness after the knowledge base changes.",
    )
    answer_cache_similarity: float = Field(
        default=0.975,
        ge=0,
        le=1,
        validation_alias=AliasChoices("AGENT_ANSWER_CACHE_SIMILARITY"),
        description="The cosine similarity at which a question embeds close enough to a cached one to get its "
        "answer (retrieval's Embed RPC); 0: match by normalised text only. Chosen in docs/benchmarks.md.",
    )
    answer_cache_max_similar: int = Field(
        default=512,
        ge=1,
        validation_alias=AliasChoices("AGENT_ANSWER_CACHE_MAX_SIMILAR"),
        description="Questions whose vectors one scope (tenant, assistant, knowledge base) keeps for matching by "
        "meaning; a lookup reads and scans them all, so a full scope starts afresh.",
    )
    graphs_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("THREADLINE_GRAPHS"),
        description="A langgraph.json (the LangGraph CLI's format) naming the graphs to serve; "
        "unset: the built-in graphs (agent, research, planner, supervisor), declared in the langgraph.json "
        "of the agent package.",
    )
    serve_graphs: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        validation_alias=AliasChoices("AGENT_GRAPHS"),
        description="The graphs this worker serves, comma-separated (a worker pool per graph); "
        "empty: every graph of its langgraph.json.",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("AGENT_METRICS_PORT"),
        description="Serve Prometheus /metrics on this port; 0: off (Helm and compose set 9102).",
    )

    @field_validator("graphs_file", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("approval_tools", "serve_graphs", "mcp_hosts", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(name.strip() for name in value.split(",") if name.strip())
        return value

    def cost_usd(self, model: str | None, usage: Usage) -> float | None:
        """The run's estimated cost, or None for a model without a price (the offline answerer costs nothing)."""
        if model is None:
            return None
        price = self.model_prices.get(model, (0.0, 0.0) if model == MODEL_NAME else None)
        if price is None:
            return None
        return round((usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6, 8)

    def guard(self, dependency: str) -> Guarded:
        """Retries and a fresh breaker for one dependency; one per dependency per worker, shared by its runs."""
        return Guarded(
            CircuitBreaker(dependency, self.breaker_failures, self.breaker_reset_s),
            RetryPolicy(self.retry_attempts, self.retry_backoff_s, self.retry_backoff_max_s),
        )

    def guardrails(self) -> Guardrails:
        return Guardrails(
            max_input_chars=self.max_input_chars,
            block_injection=self.block_prompt_injection,
            redact_pii=self.redact_pii,
            blocked_terms=self.blocked_terms,
        )
