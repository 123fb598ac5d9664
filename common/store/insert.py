"""The write path of submissions: insert a batch all or none, in order, with idempotency
keys deduplicated within the batch and against stored jobs."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common import fastjson
from common.errors import Conflict
from common.models import JobOut, JobSubmission
from common.store.rows import Row, job_out
from common.store.sqlfile import QUERIES as Q


def insert_jobs(
    conn: psycopg.Connection[Any], jobs: Sequence[JobSubmission]
) -> list[tuple[JobOut, bool]]:
    """Insert jobs on `conn` all or none, in order.

    A job whose (queue, idempotency_key) exists with the same request is returned as is
    (created False); with a different request the whole batch fails with Conflict.
    """
    # Only an idempotency key needs the request's fingerprint.
    hashes = [job.request_hash() if job.idempotency_key else None for job in jobs]
    first_by_key = _dedupe_keys(jobs, hashes)
    # On a connection without autocommit the caller owns the transaction: our statements
    # join it (psycopg's transaction() would commit it). With autocommit we make our own,
    # which becomes a savepoint inside a caller's `with conn.transaction()` block.
    # Without idempotency keys the work is one INSERT, atomic on its own: no BEGIN/COMMIT
    # round trips.
    keyed = any(job.idempotency_key for job in jobs)
    atomic = conn.transaction() if conn.autocommit and keyed else nullcontext()
    with atomic, conn.cursor(row_factory=dict_row) as cur:
        existing = _existing_by_key(cur, jobs, hashes)
        fresh = [
            i
            for i, job in enumerate(jobs)
            if _key(job) not in existing and first_by_key.get(_key(job), i) == i
        ]
        params = _insert_params([jobs[i] for i in fresh], [hashes[i] for i in fresh])
        rows = cur.execute(Q["enqueue_jobs"], params).fetchall()
        if len(rows) != len(fresh):
            # Another request took one of these keys between our check and our insert.
            raise Conflict("an idempotency key was used concurrently; retry the request")
    inserted = dict(zip(fresh, sorted(rows, key=lambda r: r["id"]), strict=True))
    out: list[tuple[JobOut, bool]] = []
    for i, job in enumerate(jobs):
        if i in inserted:
            out.append((job_out(inserted[i]), True))
        elif _key(job) in existing:
            out.append((job_out(existing[_key(job)]), False))
        else:  # a repeat of an earlier item of this batch
            out.append((job_out(inserted[first_by_key[_key(job)]]), False))
    return out


def _existing_by_key(
    cur: psycopg.Cursor[Row], jobs: Sequence[JobSubmission], hashes: list[str | None]
) -> dict[tuple[str, str | None], Row]:
    keyed = [(job, h) for job, h in zip(jobs, hashes, strict=True) if job.idempotency_key]
    if not keyed:
        return {}
    rows = cur.execute(
        Q["jobs_by_idempotency_key"],
        {"queues": [j.queue for j, _ in keyed], "keys": [j.idempotency_key for j, _ in keyed]},
    ).fetchall()
    found = {(r["queue"], r["idempotency_key"]): r for r in rows}
    for job, request_hash in keyed:
        row = found.get(_key(job))
        if row is not None and row["request_hash"] != request_hash:
            # The job is named only to its own key's caller: another key must not learn it
            # exists (the owner is part of the request hash, so its reuse lands here).
            mine = row.get("owner_key_id") == job.owner_key_id
            raise Conflict(
                f"idempotency key {job.idempotency_key!r} was used with a different request",
                {"job_id": row["id"] if mine else None, "queue": job.queue},
            )
    return found


def _key(job: JobSubmission) -> tuple[str, str | None]:
    return (job.queue, job.idempotency_key)


def _dedupe_keys(
    jobs: Sequence[JobSubmission], hashes: list[str | None]
) -> dict[tuple[str, str | None], int]:
    """Index of the first item per idempotency key; a repeated key needs the same request."""
    first: dict[tuple[str, str | None], int] = {}
    for i, job in enumerate(jobs):
        if not job.idempotency_key:
            continue
        j = first.setdefault(_key(job), i)
        if hashes[j] != hashes[i]:
            raise Conflict(
                f"idempotency key {job.idempotency_key!r} appears twice with different requests",
                {"items": [j, i]},
            )
    return first


def _insert_params(jobs: Sequence[JobSubmission], hashes: list[str | None]) -> dict[str, Any]:
    rows = []
    for job, request_hash in zip(jobs, hashes, strict=True):
        due = job.due_at()
        rows.append(
            {
                "queue": job.queue,
                "type": job.type,
                "payload": job.payload,
                "priority": job.priority,
                "max_attempts": job.attempts,
                "backoff": job.backoff.model_dump(),
                "timeout_s": job.timeout_s,
                "run_at": due.isoformat() if due else None,
                "idempotency_key": job.idempotency_key,
                "request_hash": request_hash,
                "owner_key_id": job.owner_key_id,
            }
        )
    return {"jobs": fastjson.dumps(rows)}
