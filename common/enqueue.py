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
from common.records import Ready
from common.store.insert import insert_jobs
from common.store.notify import notify_enqueued


def enqueue(
    conn: psycopg.Connection[Any], type: str, payload: dict[str, Any] | None = None, **options: Any
) -> JobOut:
    """Insert one job in the caller's transaction. Options are those of `POST /jobs`."""
    job = JobSubmission(type=type, payload=payload or {}, **options)
    return enqueue_many(conn, [job])[0]


def enqueue_many(conn: psycopg.Connection[Any], jobs: Sequence[JobSubmission]) -> list[JobOut]:
    """Insert jobs in the caller's transaction; an idempotent replay returns the original."""
    stored = insert_jobs(conn, jobs)
    notify_enqueued(conn, [Ready(j.id, j.queue, j.priority, j.run_at) for j, new in stored if new])
    return [job for job, _ in stored]
