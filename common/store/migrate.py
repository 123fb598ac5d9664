"""Apply the numbered .sql migrations in order, once, under an advisory lock."""

from __future__ import annotations

import functools
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from common.store.sqlfile import migration_files

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 72450001


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS djs_migrations ("
            " number integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT number FROM djs_migrations").fetchall()}
        for number, name, sql in migration_files():
            if number in done:
                continue
            conn.execute(sql.encode())
            conn.execute(
                "INSERT INTO djs_migrations (number, name) VALUES (%s, %s)", (number, name)
            )
            applied.append(name)
    return applied


def pending_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """The migration files not applied to this database, in order (all: never migrated)."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever rows the connection makes
    exists = cur.execute("SELECT to_regclass('djs_migrations') IS NOT NULL").fetchone()
    done: set[int] = set()
    if exists and exists[0]:
        rows = cur.execute("SELECT number FROM djs_migrations").fetchall()
        done = {int(row[0]) for row in rows}
    return [name for number, name, _ in _files() if number not in done]


@functools.cache
def _files() -> tuple[tuple[int, str, str], ...]:
    """Read once: a readiness probe asks every few seconds."""
    return tuple(migration_files())
