"""Transactional enqueue: add jobs through your own psycopg connection, inside your own
transaction. They are dispatched after your commit, and never if you roll back.

    with psycopg.connect(DATABASE_URL) as conn:
        order_id = create_order(conn, ...)
        enqueue(conn, "send_receipt", {"order_id": order_id})
    # committed: a runner gets the job within milliseconds (Postgres NOTIFY, delivered
    # only on commit), or, should that be missed, from the reconciler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from common.models import JobOut, JobSubmission
from common.notify import CHANNEL, notify_payloads
from common.redisqueue import Ready
from common.store import insert_jobs


def enqueue(
    conn: psycopg.Connection[Any], type: str, payload: dict[str, Any] | None = None, **options: Any
) -> JobOut:
    """Insert one job in the caller's transaction. Options are those of `POST /jobs`."""
    job = JobSubmission(type=type, payload=payload or {}, **options)
    return enqueue_many(conn, [job])[0]


def enqueue_many(conn: psycopg.Connection[Any], jobs: Sequence[JobSubmission]) -> list[JobOut]:
    """Insert jobs in the caller's transaction; an idempotent replay returns the original."""
    stored = insert_jobs(conn, jobs)
    new = [Ready(j.id, j.queue, j.priority, j.run_at) for j, created in stored if created]
    for payload in notify_payloads(new):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
    return [job for job, _ in stored]
