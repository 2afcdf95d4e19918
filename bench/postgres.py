"""Throw-away PostgreSQL databases for the benchmarks that store checkpoints there."""

from __future__ import annotations

import os

import psycopg

ADMIN_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database(name: str) -> str:
    """An empty database ``name`` (dropped first if it is left from an earlier run); its URL."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
