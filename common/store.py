"""The Postgres store: the system of record. Every method is one round trip."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from common.errors import DependencyDown
from common.models import AttemptOut, JobDetail, JobOut, JobSubmission, ListQuery
from common.sqlfile import load_queries

Q = load_queries("queries.sql")


@dataclass(frozen=True)
class ClaimedJob:
    """A job a runner has moved to active and must now run."""

    id: int
    queue: str
    type: str
    payload: dict[str, Any]
    priority: int
    attempt: int
    max_attempts: int


@dataclass(frozen=True)
class Completion:
    job_id: int
    attempt: int
    result: Any


@dataclass(frozen=True)
class Failure:
    job_id: int
    attempt: int
    error_type: str
    message: str
    traceback: str
    retry_in_ms: int | None  # None: no retry; 0: now; > 0: after that delay


@dataclass(frozen=True)
class Dispatch:
    """What Redis needs to know to (re)dispatch a job."""

    id: int
    queue: str
    priority: int
    status: str
    run_at: datetime | None


def _job_out(row: dict[str, Any]) -> JobOut:
    return JobOut(attempts_made=row["attempts"], **row)


class Store:
    """Job persistence on a psycopg connection pool."""

    def __init__(self, database_url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            connection_class=psycopg.Connection[dict[str, Any]],
            kwargs={"autocommit": True, "row_factory": dict_row},
            timeout=5.0,
            open=False,
            name="djs",
        )

    def open(self) -> Store:
        self.pool.open(wait=False)
        return self

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection; a dead server becomes DependencyDown."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DependencyDown("postgres", exc) from exc

    def _all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute(Q[name], params).fetchall()

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    # --- submissions and reads -------------------------------------------------------

    def enqueue(self, job: JobSubmission, run_at: datetime | None = None) -> JobOut:
        row = self._all(
            "enqueue_job",
            {
                "queue": job.queue,
                "type": job.type,
                "payload": Jsonb(job.payload),
                "priority": job.priority,
                "max_attempts": job.attempts,
                "run_at": run_at,
            },
        )[0]
        return _job_out(row)

    def get(self, job_id: int) -> JobDetail | None:
        with self.connection() as conn:
            row = conn.execute(Q["get_job"], {"id": job_id}).fetchone()
            if row is None:
                return None
            attempts = conn.execute(Q["get_attempts"], {"id": job_id}).fetchall()
        return JobDetail(
            attempts_made=row["attempts"],
            history=[AttemptOut(**a) for a in attempts],
            **row,
        )

    def list_jobs(self, query: ListQuery) -> list[JobOut]:
        return [_job_out(r) for r in self._all("list_jobs", query.model_dump())]

    def queue_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self._all("queue_counts", {}):
            counts.setdefault(row["queue"], {})[row["status"]] = row["n"]
        return counts

    # --- runner transitions, batched ----------------------------------------------------

    def claim(self, ids: Sequence[int], worker: str) -> list[ClaimedJob]:
        rows = self._all("claim_jobs", {"ids": list(ids), "worker": worker})
        return [
            ClaimedJob(
                id=r["id"],
                queue=r["queue"],
                type=r["type"],
                payload=r["payload"],
                priority=r["priority"],
                attempt=r["attempts"],
                max_attempts=r["max_attempts"],
            )
            for r in rows
        ]

    def complete(self, done: Sequence[Completion]) -> set[int]:
        """Record completions; return the ids whose guarded update applied."""
        if not done:
            return set()
        rows = self._all(
            "complete_jobs",
            {
                "ids": [c.job_id for c in done],
                "attempts": [c.attempt for c in done],
                "results": [Jsonb(c.result) for c in done],
            },
        )
        return {r["id"] for r in rows}

    def fail(self, failures: Sequence[Failure]) -> list[Dispatch]:
        """Record failures; return the jobs that applied, with their new status."""
        if not failures:
            return []
        rows = self._all(
            "fail_jobs",
            {
                "ids": [f.job_id for f in failures],
                "attempts": [f.attempt for f in failures],
                "retry_in_ms": [f.retry_in_ms for f in failures],
                "error_types": [f.error_type for f in failures],
                "messages": [f.message for f in failures],
                "tracebacks": [f.traceback for f in failures],
            },
        )
        return [Dispatch(**r) for r in rows]

    def undispatched(self, older_than_s: float, after_id: int, limit: int) -> list[Dispatch] | None:
        """Pending or delayed jobs untouched for a while; None if another process holds the lock."""
        params = {"older_than_s": older_than_s, "after_id": after_id, "limit": limit}
        with self.connection() as conn, conn.transaction():
            lock = conn.execute(Q["try_reconcile_lock"]).fetchone()
            if not lock or not lock["locked"]:
                return None
            return [Dispatch(**r) for r in conn.execute(Q["undispatched_jobs"], params)]
