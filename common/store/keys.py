"""API keys in Postgres (migration 006), on a connection the caller gives: the CLI has one
of its own (the first key is made before any key exists), the API uses its pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.apikeys import key_hash, new_key
from common.audit import AuditEntry
from common.errors import Conflict, InvalidInput, NotFound
from common.store.audited import write_audit
from common.store.sqlfile import load_queries

Q = load_queries("keys.sql")
Row = dict[str, Any]


def create_key(
    conn: psycopg.Connection[Any],
    pepper: bytes,
    name: str,
    role: str,
    rate_per_s: float | None = None,
    audit: AuditEntry | None = None,
) -> tuple[Row, str]:
    """Store a new key; return its row (never the hash) and the key, which is shown once.
    With `audit`, the entry is written in the same transaction."""
    key, prefix = new_key()
    params = {
        "name": name,
        "role": role,
        "prefix": prefix,
        "hash": key_hash(pepper, key),
        "rate_per_s": rate_per_s,
    }
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(Q["create_key"], params).fetchone()
            if audit is not None and row is not None:
                write_audit(conn, replace(audit, target=str(row["id"])))
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"a key named {name!r} exists", {"name": name}) from exc
    except (psycopg.errors.CheckViolation, psycopg.errors.InvalidTextRepresentation) as exc:
        raise InvalidInput(f"not a valid key: {exc.diag.message_primary}") from exc
    assert row is not None
    return row, key


def list_keys(conn: psycopg.Connection[Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(Q["list_keys"]).fetchall()


def key_by_prefix(conn: psycopg.Connection[Any], prefix: str) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(Q["key_by_prefix"], {"prefix": prefix}).fetchone()


def revoke_key(
    conn: psycopg.Connection[Any], ident: int | str, audit: AuditEntry | None = None
) -> Row:
    """Revoke a key by id (an int) or by name (a str); with `audit`, the entry is written in
    the same transaction (only if a key was revoked)."""
    by_id = ident if isinstance(ident, int) else None
    by_name = ident if isinstance(ident, str) else None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(Q["revoke_key"], {"id": by_id, "name": by_name}).fetchone()
        if audit is not None and row is not None:
            write_audit(conn, replace(audit, target=str(row["id"])))
    if row is None:
        raise NotFound(f"no key {ident!r}", {"key": ident})
    return row


def touch_keys(conn: psycopg.Connection[Any], used: Mapping[int, datetime]) -> None:
    """Record when each key was last used, in one statement."""
    if used:
        conn.execute(Q["touch_keys"], {"ids": list(used), "ats": list(used.values())})
