"""The Postgres store: the system of record. Each method is one round trip or one transaction."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import args_row, dict_row
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from common import fastjson
from common.errors import Conflict, DependencyDown
from common.models import (
    AttemptOut,
    CleanRequest,
    EventOut,
    JobDetail,
    JobFilter,
    JobOut,
    JobSubmission,
    ListQuery,
    QueueSettings,
)
from common.sqlfile import load_queries

Q = load_queries("queries.sql")
# Every jsonb column (payloads, results, backoff) is parsed on the hot paths.
set_json_loads(fastjson.loads)
log = logging.getLogger("djs.store")

# Advisory lock keys: one reconciler and one janitor act at a time across all runners.
RECONCILE_LOCK = 72450002
JANITOR_LOCK = 72450003

Row = dict[str, Any]

# How long a caller waits for a pooled connection before the API answers 503.
_CHECKOUT_TIMEOUT_S = 3.0
# psycopg_pool retries a lost server with a doubling delay and no cap (1, 2, 4 ... 32 s), so
# after a 40 s outage the first connection came 17 s after Postgres was back. Giving up a
# retry series after 5 s means the next request that needs a connection starts a fresh one.
_RECONNECT_TIMEOUT_S = 5.0


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
    attempt_offset: int
    backoff: dict[str, Any]
    timeout_s: float | None
    lease_token: UUID

    @property
    def attempts_left(self) -> int:
        """Attempts that remain in this job's budget after the current one."""
        return self.max_attempts - (self.attempt - self.attempt_offset)


@dataclass(frozen=True)
class Lease:
    """The fence a runner holds on an active job."""

    job_id: int
    token: UUID


@dataclass(frozen=True)
class Completion:
    job_id: int
    token: UUID
    result: Any
    logs: list[str] = field(default_factory=list)
    progress: float | None = None


@dataclass(frozen=True)
class Failure:
    job_id: int
    token: UUID
    error_type: str
    message: str
    traceback: str
    retry_in_ms: int | None  # None: no retry; 0: now; > 0: after that delay
    reason: str | None = None  # the fail_reason when there is no retry
    logs: list[str] = field(default_factory=list)
    progress: float | None = None


@dataclass(frozen=True)
class Dispatch:
    """What Redis needs to know to (re)dispatch a job."""

    id: int
    queue: str
    priority: int
    status: str
    run_at: datetime | None
    suspect: bool = False  # stalled often enough to run alone (see recover_stalled)


def _job_out(row: Row) -> JobOut:
    return JobOut(attempts_made=row["attempts"], **row)


def _filter_params(job_filter: JobFilter, limit: int) -> dict[str, Any]:
    return {**job_filter.model_dump(), "limit": limit}


class Store:
    """Job persistence on a psycopg connection pool."""

    def __init__(self, database_url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            connection_class=psycopg.Connection[Row],
            kwargs={"autocommit": True, "row_factory": dict_row},
            timeout=_CHECKOUT_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
            open=False,
            name="djs",
        )
        # Claims and lease renewals need not wait for their WAL flush: if the server crashes
        # before it, the claim is simply undone (the job is pending again and the runner's
        # fenced outcome is refused) — the at-least-once contract already covers that.
        # Submissions and outcomes always use the durable pool.
        self.relaxed_pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            database_url,
            min_size=1,
            max_size=4,
            connection_class=psycopg.Connection[Row],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": "-c synchronous_commit=off",
            },
            timeout=_CHECKOUT_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
            open=False,
            name="djs-relaxed",
        )
        self._checking = threading.Lock()

    def open(self) -> Store:
        self.pool.open(wait=False)
        self.relaxed_pool.open(wait=False)
        return self

    def close(self) -> None:
        self.pool.close()
        self.relaxed_pool.close()

    @contextmanager
    def connection(self, durable: bool = True) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection (`durable=False`: commits without waiting for the WAL flush);
        a dead server becomes DependencyDown."""
        pool = self.pool if durable else self.relaxed_pool
        try:
            with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._check_pool_soon(pool)
            raise DependencyDown("postgres", exc) from exc

    def _check_pool_soon(self, pool: ConnectionPool[psycopg.Connection[Row]]) -> None:
        """After a restart the idle connections are dead: replace them in the background,
        instead of paying a check on every checkout."""
        if self._checking.acquire(blocking=False):

            def check() -> None:
                try:
                    pool.check()
                except Exception as exc:  # still down: the next failure schedules another
                    log.debug("pool check failed: %s", exc)
                finally:
                    self._checking.release()

            threading.Thread(target=check, name="djs-pool-check", daemon=True).start()

    def _all(self, name: str, params: dict[str, Any], durable: bool = True) -> list[Row]:
        with self.connection(durable) as conn:
            return conn.execute(Q[name], params).fetchall()

    def _dispatches(self, name: str, params: dict[str, Any]) -> list[Dispatch]:
        return [Dispatch(**r) for r in self._all(name, params)]

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    # --- submissions -----------------------------------------------------------------------

    def enqueue(self, job: JobSubmission) -> tuple[JobOut, bool]:
        """Store one job; return it and whether it is new (False: an idempotent replay)."""
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[JobSubmission]) -> list[tuple[JobOut, bool]]:
        """Store all jobs or none, in one transaction, in order (see insert_jobs)."""
        with self.connection() as conn:
            return insert_jobs(conn, jobs)

    # --- reads -----------------------------------------------------------------------------

    def get(self, job_id: int) -> JobDetail | None:
        with self.connection() as conn:
            row = conn.execute(Q["get_job"], {"id": job_id}).fetchone()
            if row is None:
                return None
            attempts = conn.execute(Q["get_attempts"], {"id": job_id}).fetchall()
            events = conn.execute(Q["get_events"], {"id": job_id}).fetchall()
        return JobDetail(
            attempts_made=row["attempts"],
            history=[AttemptOut(**a) for a in attempts],
            events=[EventOut(**e) for e in events],
            **row,
        )

    def status_of(self, job_id: int) -> str | None:
        rows = self._all("get_job", {"id": job_id})
        return str(rows[0]["status"]) if rows else None

    def list_jobs(self, query: ListQuery) -> list[JobOut]:
        return [_job_out(r) for r in self._all("list_jobs", query.model_dump())]

    def queue_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self._all("queue_counts", {}):
            counts.setdefault(row["queue"], {})[row["status"]] = row["n"]
        return counts

    def queue_settings(self) -> dict[str, Row]:
        return {r["name"]: r for r in self._all("queue_settings", {})}

    def set_paused(self, queue: str, paused: bool) -> Row:
        return self._all("set_queue_paused", {"name": queue, "paused": paused})[0]

    def set_retention(self, queue: str, settings: QueueSettings) -> Row:
        def as_json(value: Any) -> Jsonb | None:
            return Jsonb(value.model_dump()) if value is not None else None

        params = {
            "name": queue,
            "remove_on_complete": as_json(settings.remove_on_complete),
            "remove_on_fail": as_json(settings.remove_on_fail),
        }
        return self._all("set_queue_retention", params)[0]

    # --- runner transitions, batched --------------------------------------------------------

    def claim(self, ids: Sequence[int], worker: str, lease_s: float) -> list[ClaimedJob]:
        """pending -> active with a lease of lease_s seconds, for those ids still runnable."""
        params = {"ids": list(ids), "worker": worker, "lease_s": lease_s}
        # Rows straight into ClaimedJob, whose fields follow claim_jobs' columns: a dict per
        # row first was 17 % of a busy runner's GIL time.
        with self.connection(durable=False) as conn:
            cur = conn.cursor(row_factory=args_row(ClaimedJob))
            return cur.execute(Q["claim_jobs"], params).fetchall()

    def complete(self, done: Sequence[Completion]) -> set[int]:
        """Record completions; return the ids whose guarded update applied."""
        if not done:
            return set()
        outcomes = [
            {
                "id": c.job_id,
                "token": str(c.token),
                "result": c.result,
                "logs": c.logs,
                "progress": c.progress,
            }
            for c in done
        ]
        rows = self._all("complete_jobs", {"outcomes": fastjson.dumps(outcomes)})
        return {r["id"] for r in rows}

    def fail(self, failures: Sequence[Failure]) -> list[Dispatch]:
        """Record failures; return the jobs that applied, with their new status."""
        if not failures:
            return []
        outcomes = [
            {
                "id": f.job_id,
                "token": str(f.token),
                "retry_in_ms": f.retry_in_ms,
                "reason": f.reason,
                "error_type": f.error_type,
                "message": f.message,
                "traceback": f.traceback,
                "logs": f.logs,
                "progress": f.progress,
            }
            for f in failures
        ]
        return self._dispatches("fail_jobs", {"outcomes": fastjson.dumps(outcomes)})

    def renew(self, leases: Sequence[Lease], lease_s: float) -> dict[int, bool]:
        """Extend leases; return {job id: cancel requested} for those still held."""
        if not leases:
            return {}
        params = {
            "ids": [lease.job_id for lease in leases],
            "tokens": [lease.token for lease in leases],
            "lease_s": lease_s,
        }
        rows = self._all("renew_leases", params, durable=False)
        return {r["id"]: r["cancel_requested"] for r in rows}

    def release(self, leases: Sequence[Lease]) -> list[Dispatch]:
        """Give active jobs back (pending) without counting the interrupted run."""
        if not leases:
            return []
        params = {"ids": [x.job_id for x in leases], "tokens": [x.token for x in leases]}
        return self._dispatches("release_jobs", params)

    def recover_stalled(self, limit: int) -> list[Dispatch]:
        return self._dispatches("recover_stalled", {"limit": limit})

    def save_progress(self, progress: dict[int, float]) -> None:
        if progress:
            params = {"ids": list(progress), "progress": list(progress.values())}
            with self.connection(durable=False) as conn:
                conn.execute(Q["save_progress"], params)

    # --- admin operations (each takes a filter and a limit) -----------------------------------

    def retry(self, job_filter: JobFilter, limit: int) -> list[Dispatch]:
        return self._dispatches("retry_jobs", _filter_params(job_filter, limit))

    def promote(self, job_filter: JobFilter, limit: int) -> list[Dispatch]:
        return self._dispatches("promote_jobs", _filter_params(job_filter, limit))

    def cancel(self, job_filter: JobFilter, limit: int) -> tuple[list[Row], list[Row]]:
        """Cancel waiting jobs; flag active ones. Return (cancelled, cancel requested)."""
        params = _filter_params(job_filter, limit)
        with self.connection() as conn, conn.transaction():
            cancelled = conn.execute(Q["cancel_jobs"], params).fetchall()
            requested = conn.execute(Q["request_cancel"], params).fetchall()
        return cancelled, requested

    def remove(self, job_filter: JobFilter, limit: int) -> list[Row]:
        return self._all("remove_jobs", _filter_params(job_filter, limit))

    def clean(self, queue: str, request: CleanRequest) -> int:
        """Remove finished jobs by age or beyond the newest N, in bounded batches."""
        removed = 0
        while removed < request.limit:
            batch = min(1000, request.limit - removed)
            params = {"queue": queue, "status": request.status, "limit": batch}
            if request.age_s is not None:
                rows = self._all("clean_older_than", {**params, "age_s": request.age_s})
            else:
                rows = self._all("clean_beyond_newest", {**params, "keep": request.keep})
            removed += len(rows)
            if len(rows) < batch:
                break
        return removed

    # --- background upkeep -----------------------------------------------------------------

    def promote_due(self, limit: int) -> list[Dispatch]:
        return self._dispatches("promote_due", {"limit": limit})

    def undispatched(
        self, older_than_s: float, after_id: int, limit: int
    ) -> tuple[int, list[Dispatch]] | None:
        """Look at the next `limit` pending or delayed jobs after `after_id`; return the last id
        looked at (0 at the end) and those untouched for older_than_s. None if another
        process holds the reconcile lock."""
        params = {"older_than_s": older_than_s, "after_id": after_id, "limit": limit}
        with self.connection() as conn, conn.transaction():
            if not _try_lock(conn, RECONCILE_LOCK):
                return None
            rows = conn.execute(Q["undispatched_jobs"], params).fetchall()
        cursor = rows[-1]["id"] if len(rows) == limit else 0
        return cursor, [
            Dispatch(**{k: v for k, v in r.items() if k != "stale"}) for r in rows if r["stale"]
        ]

    def waiting(self, queue: str, limit: int) -> list[Dispatch]:
        """One queue's pending and delayed jobs, oldest first."""
        return self._dispatches("waiting_jobs", {"queue": queue, "limit": limit})

    @contextmanager
    def exclusive(self, key: int) -> Iterator[bool]:
        """Hold a transaction-scoped advisory lock if free; yield whether we got it."""
        with self.connection() as conn, conn.transaction():
            yield _try_lock(conn, key)


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
            out.append((_job_out(inserted[i]), True))
        elif _key(job) in existing:
            out.append((_job_out(existing[_key(job)]), False))
        else:  # a repeat of an earlier item of this batch
            out.append((_job_out(inserted[first_by_key[_key(job)]]), False))
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
            raise Conflict(
                f"idempotency key {job.idempotency_key!r} was used with a different request",
                {"job_id": row["id"], "queue": job.queue},
            )
    return found


def _try_lock(conn: psycopg.Connection[Row], key: int) -> bool:
    row = conn.execute(Q["try_lock"], {"key": key}).fetchone()
    return bool(row and row["locked"])


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
            }
        )
    return {"jobs": fastjson.dumps(rows)}
