"""The assistant registry as a run's start reads it: looked up once per few seconds, not once per run.

Every run names an assistant, and resolving it is a GetAssistant call to the memory service
(1-3 ms, on the path of every question). An assistant changes rarely, so the gateway keeps
what it read for GATEWAY_ASSISTANT_CACHE_TTL_S. A change made through this gateway forgets
the tenant's entries at once (the next run reads the new version); one made through another
replica is seen here within the TTL, since the registry announces no change on NATS. A
missing assistant is never kept: one created a moment later is found at once.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from threadline_gateway.memory import Assistant, Memory

MAX_ENTRIES = 4096  # a bound on memory; a gateway serving more assistants than this simply looks up more


class CachingMemory(Memory):
    """:class:`Memory` with :meth:`assistant_for_run`, forgotten for a tenant by each change of its assistants."""

    def __init__(self, channel: grpc.aio.Channel, assistant_ttl_s: float) -> None:
        super().__init__(channel)
        self._ttl_s = assistant_ttl_s
        self._kept: dict[tuple[str, str], tuple[float, Assistant]] = {}  # (tenant, id) -> (expiry, assistant)
        self._changes: dict[str, int] = {}  # per tenant: a lookup that a change overtook keeps nothing

    async def assistant_for_run(self, tenant_id: str, assistant_id: str) -> Assistant:
        """:meth:`get_assistant`, from what was read in the last TTL when it can be."""
        if self._ttl_s <= 0:
            return await self.get_assistant(tenant_id, assistant_id)
        key, now = (tenant_id, assistant_id), time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        changes = self._changes.get(tenant_id, 0)
        assistant = await self.get_assistant(tenant_id, assistant_id)
        if self._changes.get(tenant_id, 0) == changes:
            if len(self._kept) >= MAX_ENTRIES:
                self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
                if len(self._kept) >= MAX_ENTRIES:
                    self._kept.clear()
            self._kept[key] = (now + self._ttl_s, assistant)
        return assistant

    def forget(self, tenant_id: str) -> None:
        """Drop what is kept of the tenant's assistants (one changed; an id may also be a graph's name)."""
        self._changes[tenant_id] = self._changes.get(tenant_id, 0) + 1
        for key in [key for key in self._kept if key[0] == tenant_id]:
            del self._kept[key]

    # Each change of the registry forgets the tenant's entries, whether it succeeded or not (it may have
    # been applied before an error reached us).

    async def create_assistant(self, tenant_id: str, **kwargs: Any) -> Assistant:
        try:
            return await super().create_assistant(tenant_id, **kwargs)
        finally:
            self.forget(tenant_id)

    async def update_assistant(self, tenant_id: str, assistant_id: str, **kwargs: Any) -> Assistant:
        try:
            return await super().update_assistant(tenant_id, assistant_id, **kwargs)
        finally:
            self.forget(tenant_id)

    async def set_latest_assistant(self, tenant_id: str, assistant_id: str, version: int) -> Assistant:
        try:
            return await super().set_latest_assistant(tenant_id, assistant_id, version)
        finally:
            self.forget(tenant_id)

    async def delete_assistant(self, tenant_id: str, assistant_id: str) -> None:
        try:
            await super().delete_assistant(tenant_id, assistant_id)
        finally:
            self.forget(tenant_id)

    async def erase(self, tenant_id: str, user_id: str | None) -> tuple[int, int]:
        try:
            return await super().erase(tenant_id, user_id)
        finally:
            if user_id is None:
                self.forget(tenant_id)
