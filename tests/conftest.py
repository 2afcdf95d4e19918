"""Session-wide fixtures: the real NATS, PostgreSQL and Redis of this machine, checked up front."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from playwright.sync_api import Browser, sync_playwright

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, naming the missing server, rather than pass on a fake or time out test by test."""
    missing = [
        f"{name} at {url}"
        for name, url in (("NATS", NATS_URL), ("PostgreSQL", POSTGRES_URL), ("Redis", REDIS_URL))
        if not _reachable(url)
    ]
    if missing:
        raise pytest.UsageError(
            "The test suite talks to real servers, and these are not reachable: "
            + ", ".join(missing)
            + ". Start them (README.md, 'Development'), or point TEST_NATS_URL, TEST_POSTGRES_URL"
            + " or TEST_REDIS_URL at them."
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nats_namespace() -> str:
    """A namespace of subjects and streams of one's own on the shared NATS server."""
    return "t" + uuid.uuid4().hex[:10]


def _create_database() -> str:
    name = "threadline_test_" + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(name: str) -> str:
    return urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def session_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards; yields its URL."""
    name = _create_database()
    try:
        yield database_url(name)
    finally:
        _drop_database(name)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; yields its URL."""
    name = _create_database()
    try:
        yield database_url(name)
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright (which never downloads a browser here); per module,
    since Playwright's sync API keeps an event loop of its own while it runs."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
async def nc() -> AsyncIterator[NatsClient]:
    """A connection to the machine's NATS, drained after the test."""
    client = await nats.connect(NATS_URL)
    yield client
    await client.drain()
