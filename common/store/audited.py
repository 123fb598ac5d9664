"""The audit log in Postgres (migration 007): written on the connection of the change it
records, inside that change's transaction; read a page at a time."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from common.audit import AuditEntry, AuditPage, AuditQuery, AuditRow
from common.store.sqlfile import load_queries

Q = load_queries("audit.sql")


def write_audit(conn: psycopg.Connection[Any], entry: AuditEntry, jobs: int | None = None) -> None:
    """Insert the entry (with `jobs` if given) on `conn`: call it inside the transaction of
    the change, so that the entry commits if and only if the change does."""
    actor = entry.actor
    params = {
        "key_id": actor.key_id,
        "key_name": actor.key_name,
        "role": actor.role,
        "verb": entry.verb,
        "target": entry.target,
        "filter": None if entry.selection is None else Jsonb(entry.selection),
        "jobs": entry.jobs if jobs is None else jobs,
        "request_id": actor.request_id,
    }
    conn.execute(Q["insert_audit"], params)


def audit_page(conn: psycopg.Connection[Any], query: AuditQuery) -> AuditPage:
    """Up to query.limit entries, newest first, after the cursor."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(Q["list_audit"], query.model_dump()).fetchall()
    more = len(rows) > query.limit
    shown = [AuditRow.model_validate(row) for row in rows[: query.limit]]
    return AuditPage(entries=shown, next_cursor=shown[-1].id if more and shown else None)
