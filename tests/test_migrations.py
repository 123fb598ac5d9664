"""Applying every migration gives the schema the code expects, and applying again is a no-op."""

from __future__ import annotations

import re
import threading
import uuid

import psycopg
from psycopg import sql

from common.store.migrate import migrate
from common.store.sqlfile import load_queries, migration_files
from tests.conftest import _admin, db_url


def test_schema_matches_what_the_code_expects(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert migrate(conn) == []  # the template already holds every migration
        statuses = conn.execute("SELECT unnest(enum_range(NULL::job_status))::text").fetchall()
        assert [s[0] for s in statuses] == [
            "pending",
            "delayed",
            "active",
            "completed",
            "failed",
            "cancelled",
        ]
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
            )
        }
        assert {
            "id",
            "queue",
            "type",
            "payload",
            "status",
            "attempts",
            "max_attempts",
            "result",
            "last_error",
            "created_at",
            "updated_at",
        } <= cols


def test_every_named_query_prepares(database_url: str) -> None:
    """Each SQL block parses and plans against the migrated schema."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, query in load_queries("queries.sql").items():
            if "%(" in query:
                # Prepare with every placeholder typed as unknown: a syntax or schema error fails.
                body = query
                for i, key in enumerate(sorted(set(_placeholders(query))), start=1):
                    body = body.replace(f"%({key})s", f"${i}")
                conn.execute(f"PREPARE q_{name} AS {body}")
            else:
                conn.execute(f"PREPARE q_{name} AS {query}")


def _placeholders(query: str) -> list[str]:
    return re.findall(r"%\((\w+)\)s", query)


def test_concurrent_migrations_apply_each_file_once() -> None:
    """Four processes migrating an empty database at once: one applies, three wait and skip."""
    name = f"djs_test_empty_{uuid.uuid4().hex[:10]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    results: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(db_url(name), autocommit=True) as conn:
            results.append(migrate(conn))

    try:
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    expected = [filename for _, filename, _ in migration_files()]
    assert sorted(results, key=len) == [[], [], [], expected]
