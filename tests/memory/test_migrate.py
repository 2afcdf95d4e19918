"""``python -m threadline_memory migrate`` as a deployment runs it: against a fresh PostgreSQL
database it creates every table the service needs and exits 0, a second run changes nothing, and a
database that never answers is a non-zero exit rather than a hang."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.conftest import free_port

TABLES = {
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
    "threadline_threads",
    "threadline_memory_migrations",
    "threadline_assistants",
    "threadline_assistant_versions",
    "threadline_graphs",
    "threadline_crons",
    "store",
    "store_migrations",
}


def _migrate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Run where no .env is, with only the settings given: the shell's DATABASE_URL must not leak in.
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MEMORY_SQLITE_PATH"}}
    return subprocess.run(
        [sys.executable, "-m", "threadline_memory", "migrate", *args],
        cwd=cwd,
        env={**clean, "LOG_FORMAT": "console", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _migrations(database: str) -> dict[str, int]:
    with psycopg.connect(database) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("checkpoint_migrations", "store_migrations", "threadline_memory_migrations")
        }


def test_migrate_creates_the_schema_of_a_fresh_database_once(database: str, tmp_path: Path) -> None:
    done = _migrate(tmp_path, DATABASE_URL=database)
    assert done.returncode == 0, done.stderr + done.stdout
    with psycopg.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert TABLES <= tables, TABLES - tables
    steps = _migrations(database)
    assert all(steps.values()), steps

    again = _migrate(tmp_path, DATABASE_URL=database)
    assert again.returncode == 0, again.stderr + again.stdout
    assert _migrations(database) == steps


def test_migrate_creates_the_sqlite_file_without_a_database_url(tmp_path: Path) -> None:
    path = tmp_path / "memory" / "checkpoints.sqlite"
    done = _migrate(tmp_path, MEMORY_SQLITE_PATH=str(path))
    assert done.returncode == 0, done.stderr + done.stdout
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "checkpoints",
        "writes",
        "threadline_threads",
        "threadline_assistants",
        "threadline_graphs",
        "threadline_crons",
        "store",
    } <= tables


def test_migrate_fails_when_the_database_never_answers(tmp_path: Path) -> None:
    started = time.monotonic()
    failed = _migrate(
        tmp_path, "--timeout-s", "2", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    )
    assert failed.returncode == 1
    assert "migration failed" in failed.stdout + failed.stderr
    assert time.monotonic() - started < 30


def test_replicas_migrating_a_fresh_database_together_all_succeed(database: str, tmp_path: Path) -> None:
    # As replicas rolled out at once do: each would otherwise race the others through the same steps.
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "threadline_memory", "migrate"],
            cwd=tmp_path,
            env={**os.environ, "DATABASE_URL": database, "LOG_FORMAT": "console"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    assert all(_migrations(database).values())
