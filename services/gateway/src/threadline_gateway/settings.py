"""The gateway's settings, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from threadline.settings import ServiceSettings
from threadline.usage import Budget


class GatewaySettings(ServiceSettings):
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("GATEWAY_HOST"))
    port: int = Field(default=8000, validation_alias=AliasChoices("GATEWAY_PORT"))
    max_body_bytes: int = Field(
        default=1_048_576, validation_alias=AliasChoices("GATEWAY_MAX_BODY_BYTES"), description="413 above this."
    )
    max_upload_bytes: int = Field(
        default=16 * 1_048_576,
        validation_alias=AliasChoices("GATEWAY_MAX_UPLOAD_BYTES"),
        description="413 above this for document uploads (all files of one request together).",
    )
    max_input_chars: int = Field(default=8000, validation_alias=AliasChoices("GATEWAY_MAX_INPUT_CHARS"))
    run_timeout_s: float = Field(
        default=120.0,
        validation_alias=AliasChoices("GATEWAY_RUN_TIMEOUT_S"),
        description="How long a request-response call waits for its run before answering 504.",
    )
    default_tenant: str = Field(
        default="default",
        validation_alias=AliasChoices("GATEWAY_DEFAULT_TENANT"),
        description="The tenant of every request while auth is off.",
    )
    auth: Literal["none", "required"] = Field(
        default="none",
        validation_alias=AliasChoices("GATEWAY_AUTH"),
        description="none: no credentials checked, every caller is the default tenant (local use only); "
        "required: a JWT or API key on every API call, its tenant taken from it.",
    )
    jwt_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("GATEWAY_JWT_SECRET"), description="Accept HS256 tokens."
    )
    jwt_public_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GATEWAY_JWT_PUBLIC_KEY"),
        description="Accept RS256 tokens signed by this key: PEM text, or a path to a PEM file.",
    )
    jwt_jwks: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GATEWAY_JWT_JWKS"),
        description="Accept tokens whose 'kid' names a key of this JWKS: an http(s) URL, or a path to a JWKS file.",
    )
    jwt_jwks_refresh_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("GATEWAY_JWT_JWKS_REFRESH_S"),
        description="Read the JWKS again this often (and at once for a key id not seen yet).",
    )
    redact_pii: bool = Field(
        default=True,
        validation_alias=AliasChoices("GATEWAY_REDACT_PII"),
        description="Mask emails, phone, card and social security numbers in every API response (JSON, SSE, "
        "WebSocket, /v1, /langgraph, /mcp): thread state and history, answers, documents, feedback.",
    )
    redact_pii_tenants: dict[str, bool] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("GATEWAY_REDACT_PII_TENANTS"),
        description='Per-tenant exceptions to GATEWAY_REDACT_PII, as JSON: {"acme": false}.',
    )
    jwt_issuer: str | None = Field(default=None, validation_alias=AliasChoices("GATEWAY_JWT_ISSUER"))
    jwt_audience: str | None = Field(default=None, validation_alias=AliasChoices("GATEWAY_JWT_AUDIENCE"))
    jwt_tenant_claim: str = Field(default="tenant_id", validation_alias=AliasChoices("GATEWAY_JWT_TENANT_CLAIM"))
    jwt_leeway_s: float = Field(default=30.0, validation_alias=AliasChoices("GATEWAY_JWT_LEEWAY_S"))
    api_keys: str = Field(
        default="",
        validation_alias=AliasChoices("GATEWAY_API_KEYS"),
        description="Static API keys as comma-separated tenant:sha256-hex pairs, for setups without PostgreSQL.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL for API keys and feedback.",
    )
    db_timeout_s: float = Field(default=5.0, validation_alias=AliasChoices("GATEWAY_DB_TIMEOUT_S"))
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL"),
        description="Rate-limit windows shared by every replica; unset, each process counts on its own.",
    )
    rate_limit_tenant: int = Field(
        default=0,
        validation_alias=AliasChoices("GATEWAY_RATE_LIMIT_TENANT"),
        description="API requests one tenant may make per window, over all its credentials; 0: no limit.",
    )
    rate_limit_key: int = Field(
        default=0,
        validation_alias=AliasChoices("GATEWAY_RATE_LIMIT_KEY"),
        description="API requests one credential (API key or JWT subject) may make per window; 0: no limit.",
    )
    rate_limit_window_s: float = Field(default=60.0, gt=0, validation_alias=AliasChoices("GATEWAY_RATE_LIMIT_WINDOW_S"))
    budgets: dict[str, Budget] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("GATEWAY_BUDGETS"),
        description="Token and cost budgets per tenant and period, as JSON: "
        '{"*": {"period": "month", "tokens": 1000000}, "acme": {"period": "day", "cost_usd": 20}} ("*": every '
        "tenant without its own). A tenant over budget gets a 429 budget_exceeded until the period turns. Needs "
        "REDIS_URL, where the agent counts usage.",
    )
    assistant_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        validation_alias=AliasChoices("GATEWAY_ASSISTANT_CACHE_TTL_S"),
        description="How long a run's start reuses an assistant read from the registry; a change made through "
        "this gateway is seen at once, one made through another replica within this. 0: read it for every run.",
    )
    chat_thread_ttl_s: float = Field(
        default=7 * 24 * 3600,
        validation_alias=AliasChoices("GATEWAY_CHAT_THREAD_TTL_S"),
        description="How long an OpenAI-style conversation is remembered as continuing its thread.",
    )
    cors_origins: str = Field(
        default="",
        validation_alias=AliasChoices("GATEWAY_CORS_ORIGINS"),
        description="Comma-separated origins browsers may call the API from; empty: same origin only.",
    )
    webhook_hosts: str = Field(
        default="",
        validation_alias=AliasChoices("GATEWAY_WEBHOOK_HOSTS"),
        description="Comma-separated hosts a run's webhook may name; empty: any host (local use: the gateway "
        "POSTs wherever a caller says, a server-side request forgery risk in production).",
    )
    url_fetch_hosts: str = Field(
        default="",
        validation_alias=AliasChoices("GATEWAY_URL_FETCH_HOSTS"),
        description="Comma-separated hosts POST /api/v1/documents/urls may fetch from; empty: fetching is off (403).",
    )
    url_fetch_max_bytes: int = Field(
        default=5 * 1_048_576,
        ge=1,
        validation_alias=AliasChoices("GATEWAY_URL_FETCH_MAX_BYTES"),
        description="A fetched document larger than this is refused (413).",
    )
    url_fetch_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("GATEWAY_URL_FETCH_TIMEOUT_S"),
        description="The whole fetch of one URL, redirects included (504 past it).",
    )
    webhook_max_attempts: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("GATEWAY_WEBHOOK_MAX_ATTEMPTS"),
        description="POSTs of a webhook before it is dropped.",
    )
    webhook_backoff_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("GATEWAY_WEBHOOK_BACKOFF_S"),
        description="Wait before a failed webhook's second POST, doubled for each further one (at most 300 s).",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("GATEWAY_WEBHOOK_TIMEOUT_S"),
        description="One webhook POST's timeout.",
    )
    cron_interval_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("GATEWAY_CRON_INTERVAL_S"),
        description="How often each replica claims the crons that are due and starts their runs.",
    )
    retrieval_target: str = Field(default="127.0.0.1:50051", validation_alias=AliasChoices("RETRIEVAL_TARGET"))
    memory_target: str = Field(default="127.0.0.1:50052", validation_alias=AliasChoices("MEMORY_TARGET"))
    sse_ping_s: float = Field(
        default=15.0,
        validation_alias=AliasChoices("GATEWAY_SSE_PING_S"),
        description="Idle SSE streams get a comment line this often, so proxies do not close them.",
    )
    ws_max_message_bytes: int = Field(
        default=65_536,
        validation_alias=AliasChoices("GATEWAY_WS_MAX_MESSAGE_BYTES"),
        description="A larger WebSocket message closes the connection with 1009.",
    )
    ws_max_runs: int = Field(
        default=8,
        validation_alias=AliasChoices("GATEWAY_WS_MAX_RUNS"),
        description="Runs one WebSocket connection may have in flight at once; more are refused.",
    )
