"""Which thread an OpenAI-style conversation lives in, for clients that resend the whole history each turn.

OpenAI clients have no thread id: every request carries the conversation so far. The gateway
keeps, per tenant, end user and model, a hash of the conversation *as it stood after each answer*
(its system, user and assistant messages) -> the thread that holds it. A request whose earlier
messages hash to a stored conversation continues that thread, and the agent's memory already
holds those turns, so the run gets the new question only; any other request (a first question,
or a history edited or made elsewhere) starts a new thread that is given the whole conversation
(:func:`run_input`), so no earlier turn and no system message is dropped. Hashes, not texts, are
stored, in a JetStream key-value bucket that every gateway replica shares.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue
from threadline.events import Topology

Turn = tuple[str, str]  # (role, text) of a system, user or assistant message
# The messages a thread holds of a chat (a developer message is OpenAI's newer name for a system one).
CONVERSATION_ROLES = frozenset({"system", "developer", "user", "assistant"})


def conversation_key(tenant_id: str, user: str | None, model: str, turns: Sequence[Turn]) -> str:
    canonical = json.dumps([tenant_id, user or "", model, [[r, t.strip()] for r, t in turns]], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_input(turns: Sequence[Turn], continues: bool) -> str | dict[str, Any]:
    """What the run is given: on a thread that holds the earlier turns (``continues``) or for a lone question,
    its text; otherwise every turn, as LangGraph messages (the graph's ``messages`` input), so the new thread
    holds them and the model reads the client's system messages after the assistant's own instructions."""
    if continues or len(turns) == 1:
        return turns[-1][1]
    messages = [
        {"role": "system" if role == "developer" else role, "content": text}
        for role, text in turns
        if text.strip()  # an assistant turn that only called tools says nothing the thread could hold
    ]
    return {"messages": messages}


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
