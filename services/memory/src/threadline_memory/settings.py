"""The memory service's settings, read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from threadline.settings import ServiceSettings


class MemorySettings(ServiceSettings):
    nats_url: str | None = Field(  # type: ignore[assignment]  # optional here alone: see the description
        default=None,
        validation_alias=AliasChoices("NATS_URL"),
        description="NATS with JetStream, told of every erasure; unset, no events (a lone memory service).",
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("MEMORY_HOST"))
    port: int = Field(default=50052, validation_alias=AliasChoices("MEMORY_PORT"), description="0: any free port.")
    metrics_port: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("MEMORY_METRICS_PORT"),
        description="Serve Prometheus /metrics on this port; 0: off (Helm and compose set 9102).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL; unset, checkpoints go to the SQLite file below.",
    )
    sqlite_path: Path = Field(
        default=Path(".data/memory/checkpoints.sqlite"), validation_alias=AliasChoices("MEMORY_SQLITE_PATH")
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL"),
        description="Redis caching each thread's latest checkpoint; unset, no cache.",
    )
    cache_ttl_s: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("MEMORY_CACHE_TTL_S"), description="How long a copy lives."
    )
    db_pool_size: int = Field(default=10, ge=1, validation_alias=AliasChoices("MEMORY_DB_POOL_SIZE"))
    db_timeout_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("MEMORY_DB_TIMEOUT_S"),
        description="How long one call waits for the database before failing with UNAVAILABLE.",
    )
