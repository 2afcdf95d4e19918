"""Which thread an OpenAI-style conversation lives in, for clients that resend the whole history each turn.

OpenAI clients have no thread id: every request carries the conversation so far. The gateway
keeps, per tenant, end user and model, a hash of the conversation *as it stood after each answer*
-> the thread that holds it. A request whose earlier messages hash to a stored conversation
continues that thread, and the agent's memory already holds those turns; any other request
(a first question, or a history edited or made elsewhere) starts a new thread. Hashes, not
texts, are stored, in a JetStream key-value bucket that every gateway replica shares.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue
from threadline.events import Topology

Turn = tuple[str, str]  # (role, text) of a user or assistant message


def conversation_key(tenant_id: str, user: str | None, model: str, turns: Sequence[Turn]) -> str:
    canonical = json.dumps([tenant_id, user or "", model, [[r, t.strip()] for r, t in turns]], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ChatThreads:
    def __init__(self, js: JetStreamContext, topology: Topology, ttl_s: float) -> None:
        self.js, self.ttl_s = js, ttl_s
        self.bucket_name = f"{topology.namespace}-gateway-chats"
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> KeyValue:
        async with self._lock:
            if self._kv is None:
                config = KeyValueConfig(bucket=self.bucket_name, ttl=self.ttl_s, history=1, storage=StorageType.FILE)
                try:
                    self._kv = await self.js.create_key_value(config)
                except BadRequestError:  # another replica made it first
                    self._kv = await self.js.key_value(self.bucket_name)
            return self._kv

    async def find(self, key: str) -> str | None:
        try:
            entry = await (await self._bucket()).get(key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def remember(self, key: str, thread_id: str) -> None:
        await (await self._bucket()).put(key, thread_id.encode())
