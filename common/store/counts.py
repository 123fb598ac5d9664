"""Exact job counts per queue and status, read in O(queues x statuses x owners) whatever
the number of jobs (migration 008, counts.sql)."""

from __future__ import annotations

import logging

import psycopg

from common.store.pool import Row
from common.store.sqlfile import load_queries

COUNTS = load_queries("counts.sql")
log = logging.getLogger("djs.counts")

# A read sums every delta not folded yet. The janitor folds each second; with no runner
# running (hence no janitor), the reader that finds this many folds them itself.
FOLD_AFTER_DELTAS = 20_000
_FOLD_LOCK = 72450004  # one fold at a time; a concurrent one would be correct, only wasted


def queue_counts(
    conn: psycopg.Connection[Row], owner_key_id: int | None
) -> dict[str, dict[str, int]]:
    rows = conn.execute(COUNTS["job_counts"], {"owner_key_id": owner_key_id}).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["queue"], {})[row["status"]] = int(row["n"])
    if rows and rows[0]["deltas"] > FOLD_AFTER_DELTAS:
        fold(conn)
    return counts


def fold(conn: psycopg.Connection[Row]) -> int:
    """Move the deltas committed so far into job_counts and job_outcomes, drop the counts
    that reached zero and the outcomes older than a day, in one transaction; return how many
    deltas were folded (0 if another fold holds the lock)."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (_FOLD_LOCK,))
        if not locked.fetchone()["ok"]:  # type: ignore[index]
            return 0
        row = conn.execute(COUNTS["fold_job_counts"]).fetchone()
        conn.execute(COUNTS["drop_empty_counts"])
        conn.execute(COUNTS["prune_outcomes"])
    return int(row["folded"]) if row else 0
