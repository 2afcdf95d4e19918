"""Settings every service shares; each service extends :class:`ServiceSettings` with its own."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadline.events import Topology


class ServiceSettings(BaseSettings):
    """Read from the environment (and a ``.env`` file), never at import time."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS with JetStream.")
    nats_namespace: str = Field(default="threadline", description="Prefix of every subject and stream.")
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json, or console for humans.")

    def topology(self) -> Topology:
        return Topology(self.nats_namespace)
