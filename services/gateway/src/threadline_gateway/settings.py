"""The gateway's settings, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from threadline.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("GATEWAY_HOST"))
    port: int = Field(default=8000, validation_alias=AliasChoices("GATEWAY_PORT"))
    max_body_bytes: int = Field(
        default=1_048_576, validation_alias=AliasChoices("GATEWAY_MAX_BODY_BYTES"), description="413 above this."
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
        description="The tenant of unauthenticated requests while auth is off.",
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
