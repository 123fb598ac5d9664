"""Apply the numbered .sql migrations in order, once, under an advisory lock."""

from __future__ import annotations

from typing import Any

import psycopg

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
