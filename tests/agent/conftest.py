"""A connection to the machine's real NATS for the agent's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from tests.conftest import NATS_URL


@pytest.fixture
async def nc() -> AsyncIterator[NatsClient]:
    client = await nats.connect(NATS_URL)
    yield client
    await client.drain()
