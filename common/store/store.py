"""The named queries of common/store/sql/queries.sql as methods: each is one round trip or
one transaction, and each status change is one guarded statement."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import args_row
from psycopg.types.json import Jsonb, set_json_loads

from common import fastjson, limits
from common.audit import AuditEntry
from common.errors import Conflict, InvalidInput
from common.models import (
    CleanRequest,
    JobDetail,
    JobFilter,
    JobOut,
    JobSubmission,
    ListQuery,
    QueueSettings,
)
from common.records import ClaimedJob, Completion, Dispatch, Failure, Lease
from common.store import counts, stats
from common.store.audited import write_audit
from common.store.insert import insert_jobs
from common.store.listing import Page, list_page
from common.store.overview import QueueOverview, overview
from common.store.pool import Pools, Row
from common.store.rows import dispatches, job_detail
from common.store.sqlfile import QUERIES as Q

# Every jsonb column (payloads, results, backoff) is parsed on the hot paths.
set_json_loads(fastjson.loads)
log = logging.getLogger("djs.store")

# How long a single-job verb waits for a job's row lock (a runner's claim or outcome takes
# milliseconds; an admin's open transaction may take for ever).
_ONE_JOB_LOCK_TIMEOUT_MS = 5000
# Advisory lock keys: one reconciler and one janitor act at a time across all runners.
LOCKS = {"reconcile": 72450002, "janitor": 72450003}


def _filter_params(job_filter: JobFilter, limit: int) -> dict[str, Any]:
    return {**job_filter.model_dump(), "limit": limit}


class Store:
    """Job persistence on pooled connections (common/store/pool.py)."""

    def __init__(self, database_url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.pools = Pools(database_url, min_size, max_size)

    def open(self) -> Store:
        self.pools.open()
        return self

    def close(self) -> None:
        self.pools.close()

    def connection(self, durable: bool = True) -> AbstractContextManager[psycopg.Connection[Row]]:
        """A pooled connection (`durable=False`: commits without waiting for the WAL flush)."""
        return self.pools.connection(durable)

    def _all(self, name: str, params: dict[str, Any], durable: bool = True) -> list[Row]:
        with self.connection(durable) as conn:
            return conn.execute(Q[name], params).fetchall()

    def _dispatches(self, name: str, params: dict[str, Any]) -> list[Dispatch]:
        return dispatches(self._all(name, params))

    def _audited(
        self, name: str, params: dict[str, Any], audit: AuditEntry | None, jobs: bool = True
    ) -> list[Row]:
        """An admin verb's statement and its audit entry (counting the rows it changed, if
        `jobs`), in one transaction; without an entry, the statement alone."""
        if audit is None:
            return self._all(name, params)
        with self.connection() as conn, conn.transaction():
            rows = conn.execute(Q[name], params).fetchall()
            write_audit(conn, audit, len(rows) if jobs else None)
        return rows

    def _one(self, name: str, job_id: int, audit: AuditEntry | None = None) -> Row | None:
        """A single-job verb: None if there is no such job, else its outcome row. It waits for
        the job's row lock, but not for ever: a lock held for seconds is a 409 to retry, not
        a request that holds a pooled connection until the holder lets go."""
        with self.connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{_ONE_JOB_LOCK_TIMEOUT_MS}ms'")
            try:
                rows = conn.execute(Q[name], {"id": job_id}).fetchall()
            except psycopg.errors.LockNotAvailable as exc:
                raise Conflict(f"job {job_id} is busy; try again", {"id": job_id}) from exc
            if audit is not None and rows and _changed(rows[0]):  # a refusal is not audited
                write_audit(conn, audit, 1)
        return rows[0] if rows else None

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    # --- submissions -----------------------------------------------------------------------

    def enqueue(self, job: JobSubmission) -> tuple[JobOut, bool]:
        """Store one job; return it and whether it is new (False: an idempotent replay)."""
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[JobSubmission]) -> list[tuple[JobOut, bool]]:
        """Store all jobs or none, in one transaction, in order (see insert_jobs); a value
        Postgres refuses (the models check what they can first) is InvalidInput."""
        try:
            with self.connection() as conn:
                return insert_jobs(conn, jobs)
        except psycopg.DataError as exc:
            message = exc.diag.message_primary or str(exc)
            raise InvalidInput(f"Postgres refused the job: {message}") from exc

    # --- reads -----------------------------------------------------------------------------

    def get(self, job_id: int, owner_key_id: int | None = None) -> JobDetail | None:
        """The job with its history; with an owner, None unless that key submitted it."""
        with self.connection() as conn:
            params = {"id": job_id, "owner_key_id": owner_key_id}
            row = conn.execute(Q["get_job"], params).fetchone()
            if row is None:
                return None
            shown = {"id": job_id, "limit": limits.MAX_HISTORY}
            attempts = conn.execute(Q["get_attempts"], shown).fetchall()
            events = conn.execute(Q["get_events"], {**shown, "limit": limits.MAX_EVENTS}).fetchall()
        return job_detail(row, attempts, events)

    def status_of(self, job_id: int) -> str | None:
        rows = self._all("get_job", {"id": job_id, "owner_key_id": None})
        return str(rows[0]["status"]) if rows else None

    def list_jobs(self, query: ListQuery) -> list[JobOut]:
        return self.list_within(query, max_bytes=2**62).jobs

    def list_within(
        self, query: ListQuery, max_bytes: int, owner_key_id: int | None = None
    ) -> Page:
        """A page of jobs of about max_bytes at most (at least one job), in query.sort's
        order; with an owner, only that key's jobs (common/store/listing.py)."""
        with self.connection() as conn:
            return list_page(conn, query, max_bytes, owner_key_id)

    def queue_names(self) -> list[str]:
        return sorted(r["name"] for r in self._all("queue_names", {}))

    def queue_counts(self, owner_key_id: int | None = None) -> dict[str, dict[str, int]]:
        """Exact jobs per queue and status, in O(queues x statuses); with an owner, only
        that key's (common/store/counts.py)."""
        with self.connection() as conn:
            return counts.queue_counts(conn, owner_key_id)

    def fold_counts(self) -> int:
        """Fold the count deltas into the totals (the janitor, every second); how many."""
        with self.connection() as conn:
            return counts.fold(conn)

    def stats(self, queue: str | None = None) -> dict[str, Any]:
        """GET /stats's figures, for one queue or every queue (common/store/stats.py)."""
        with self.connection() as conn:
            return stats.gather(conn, queue)

    def queue_overview(self, owner_key_id: int | None = None) -> QueueOverview:
        """GET /queues's facts on one connection (common/store/overview.py)."""
        with self.connection() as conn:
            return overview(conn, owner_key_id)

    def queue_settings(self) -> dict[str, Row]:
        return {r["name"]: r for r in self._all("queue_settings", {})}

    def set_paused(self, queue: str, paused: bool, audit: AuditEntry | None = None) -> Row:
        params = {"name": queue, "paused": paused}
        return self._audited("set_queue_paused", params, audit, jobs=False)[0]

    def set_retention(
        self, queue: str, settings: QueueSettings, audit: AuditEntry | None = None
    ) -> Row:
        def as_json(value: Any) -> Jsonb | None:
            return Jsonb(value.model_dump()) if value is not None else None

        params = {
            "name": queue,
            "remove_on_complete": as_json(settings.remove_on_complete),
            "remove_on_fail": as_json(settings.remove_on_fail),
        }
        return self._audited("set_queue_retention", params, audit, jobs=False)[0]

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
        params = {"ids": [c.job_id for c in done], "outcomes": fastjson.dumps(outcomes)}
        return {r["id"] for r in self._all("complete_jobs", params)}

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
        ids = [f.job_id for f in failures]
        return self._dispatches("fail_jobs", {"ids": ids, "outcomes": fastjson.dumps(outcomes)})

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

    def quarantine(self, job_id: int, token: UUID | None, error: str) -> bool:
        """Fail a job a loop cannot process (reason invalid_record); False if it was not
        ours to fail (finished meanwhile, or its lease moved on)."""
        params = {"id": job_id, "token": token, "error": error[:2000]}
        return bool(self._all("quarantine_job", params))

    def recover_stalled(self, limit: int) -> list[Dispatch]:
        return self._dispatches("recover_stalled", {"limit": limit})

    def quarantine_unreadable(self, limit: int) -> list[Row]:
        """Fail delayed jobs whose run_at Python cannot hold (invalid_record); their ids."""
        return self._all("quarantine_unreadable", {"limit": limit})

    def save_progress(self, progress: dict[int, float]) -> None:
        if progress:
            params = {"ids": list(progress), "progress": list(progress.values())}
            with self.connection(durable=False) as conn:
                conn.execute(Q["save_progress"], params)

    # --- admin verbs: by filter and limit, or for one job ------------------------------------

    def retry(
        self, job_filter: JobFilter, limit: int, audit: AuditEntry | None = None
    ) -> list[Dispatch]:
        return dispatches(self._audited("retry_jobs", _filter_params(job_filter, limit), audit))

    def retry_one(self, job_id: int, audit: AuditEntry | None = None) -> Row | None:
        return self._one("retry_job", job_id, audit)

    def redrive(
        self, job_filter: JobFilter, after_id: int, limit: int, audit: AuditEntry | None = None
    ) -> list[Dispatch]:
        params = {**_filter_params(job_filter, limit), "after_id": after_id}
        return dispatches(self._audited("redrive_jobs", params, audit))

    def count_redrivable(self, job_filter: JobFilter, after_id: int) -> int:
        params = {**_filter_params(job_filter, 0), "after_id": after_id}
        return int(self._all("count_redrivable", params)[0]["n"])

    def promote(
        self, job_filter: JobFilter, limit: int, audit: AuditEntry | None = None
    ) -> list[Dispatch]:
        return dispatches(self._audited("promote_jobs", _filter_params(job_filter, limit), audit))

    def promote_one(self, job_id: int, audit: AuditEntry | None = None) -> Row | None:
        return self._one("promote_job", job_id, audit)

    def cancel(
        self, job_filter: JobFilter, limit: int, audit: AuditEntry | None = None
    ) -> tuple[list[Row], list[Row]]:
        """Cancel waiting jobs; flag active ones. Return (cancelled, cancel requested)."""
        params = _filter_params(job_filter, limit)
        with self.connection() as conn, conn.transaction():
            cancelled = conn.execute(Q["cancel_jobs"], params).fetchall()
            requested = conn.execute(Q["request_cancel"], params).fetchall()
            if audit is not None:
                write_audit(conn, audit, len(cancelled) + len(requested))
        return cancelled, requested

    def cancel_one(self, job_id: int, audit: AuditEntry | None = None) -> Row | None:
        return self._one("cancel_job", job_id, audit)

    def remove(
        self, job_filter: JobFilter, limit: int, audit: AuditEntry | None = None
    ) -> list[Row]:
        return self._audited("remove_jobs", _filter_params(job_filter, limit), audit)

    def remove_one(self, job_id: int, audit: AuditEntry | None = None) -> Row | None:
        return self._one("remove_job", job_id, audit)

    def clean(self, queue: str, request: CleanRequest, audit: AuditEntry | None = None) -> int:
        """Remove finished jobs by age or beyond the newest N, in bounded batches: each its
        own transaction for the janitor; all in one with the audit entry for an admin."""
        if audit is None:
            with self.connection() as conn:
                return _clean(conn, queue, request)
        with self.connection() as conn, conn.transaction():
            removed = _clean(conn, queue, request)
            write_audit(conn, audit, removed)
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
            if not _try_lock(conn, LOCKS["reconcile"]):
                return None
            rows = conn.execute(Q["undispatched_jobs"], params).fetchall()
        cursor = rows[-1]["id"] if len(rows) == limit else 0
        stale = [{k: v for k, v in r.items() if k != "stale"} for r in rows if r["stale"]]
        return cursor, dispatches(stale)

    def waiting(self, queues: Sequence[str], limit: int) -> list[Dispatch]:
        """These queues' pending and delayed jobs, oldest first."""
        return self._dispatches("waiting_jobs", {"queues": list(queues), "limit": limit})

    @contextmanager
    def exclusive(self, lock: str) -> Iterator[bool]:
        """Hold a transaction-scoped advisory lock (a name of LOCKS) if free; yield whether
        we got it."""
        with self.connection() as conn, conn.transaction():
            yield _try_lock(conn, LOCKS[lock])


def _changed(row: Row) -> bool:
    """Whether a single-job verb's outcome row says it applied (see _one_outcome)."""
    return any(row.get(column) is not None for column in ("id", "cancelled", "requested"))


def _clean(conn: psycopg.Connection[Row], queue: str, request: CleanRequest) -> int:
    removed = 0
    while removed < request.limit:
        batch = min(1000, request.limit - removed)
        params = {"queue": queue, "status": request.status, "limit": batch}
        if request.age_s is not None:
            rows = conn.execute(Q["clean_older_than"], {**params, "age_s": request.age_s})
        else:
            rows = conn.execute(Q["clean_beyond_newest"], {**params, "keep": request.keep})
        done = len(rows.fetchall())
        removed += done
        if done < batch:
            break
    return removed


def _try_lock(conn: psycopg.Connection[Row], key: int) -> bool:
    row = conn.execute(Q["try_lock"], {"key": key}).fetchone()
    return bool(row and row["locked"])
