"""Alert hooks per queue in Postgres (migration 012), on a connection the caller gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common import limits
from common.alerts import AlertSettings
from common.audit import AuditEntry
from common.store.audited import write_audit
from common.store.sqlfile import load_queries

Q = load_queries("alerts.sql")
Row = dict[str, Any]


def _rows(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(Q[name], params).fetchall()


def put_alert(conn: psycopg.Connection[Any], queue: str, settings: AlertSettings) -> Row:
    return _rows(conn, "put_alert", {"queue": queue, **settings.model_dump()})[0]


def put_alert_audited(
    conn: psycopg.Connection[Any], queue: str, settings: AlertSettings, audit: AuditEntry | None
) -> Row:
    """Set the hook and write its audit entry in one transaction."""
    with conn.transaction():
        row = put_alert(conn, queue, settings)
        if audit is not None:
            write_audit(conn, audit)
    return row


def delete_alert_audited(
    conn: psycopg.Connection[Any], queue: str, audit: AuditEntry | None
) -> bool:
    """Remove the hook (and audit it, if there was one) in one transaction."""
    with conn.transaction():
        removed = delete_alert(conn, queue)
        if audit is not None and removed:
            write_audit(conn, audit)
    return removed


def get_alert(conn: psycopg.Connection[Any], queue: str) -> Row | None:
    rows = _rows(conn, "get_alert", {"queue": queue})
    return rows[0] if rows else None


def delete_alert(conn: psycopg.Connection[Any], queue: str) -> bool:
    return bool(_rows(conn, "delete_alert", {"queue": queue}))


def list_alerts(conn: psycopg.Connection[Any]) -> list[Row]:
    return _rows(conn, "list_alerts", {"limit": limits.MAX_ALERT_QUEUES})


def failed_mark(conn: psycopg.Connection[Any], queue: str) -> tuple[datetime, datetime, int] | None:
    """(the failed watermark, how far it may move, the failures in between), or None if the
    queue has no alert row."""
    rows = _rows(conn, "failed_mark", {"queue": queue})
    if not rows:
        return None
    return rows[0]["mark"], rows[0]["settled"], int(rows[0]["new_failed"])


def claim_send(
    conn: psycopg.Connection[Any],
    queue: str,
    kind: str,
    mark: datetime | None = None,
    new_mark: datetime | None = None,
) -> Row | None:
    """Take the (queue, kind) window if it is open (and, for failed, the watermark is still
    `mark`, moved to `new_mark`); the row (new_mark, at) if this caller is the one to send,
    else None."""
    params = {"queue": queue, "kind": kind, "mark": mark, "new_mark": new_mark}
    rows = _rows(conn, "claim_send", params)
    return rows[0] if rows else None


def failed_between(
    conn: psycopg.Connection[Any], queue: str, mark: datetime, new_mark: datetime
) -> tuple[int, list[Row]]:
    params = {
        "queue": queue,
        "mark": mark,
        "new_mark": new_mark,
        "limit": limits.MAX_ALERT_JOBS,
        "error_chars": limits.MAX_ALERT_ERROR_CHARS,
    }
    count = int(_rows(conn, "failed_count_between", params)[0]["n"])
    return count, _rows(conn, "failed_since", params)


def waiting_state(conn: psycopg.Connection[Any], queue: str) -> Row:
    """{waiting, oldest_s, runners} of the queue."""
    return _rows(conn, "waiting_state", {"queue": queue})[0]
