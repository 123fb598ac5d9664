"""What the API, the CLI and the library do to jobs: each operation writes Postgres first
(the truth), then tells Redis. The same verbs name the SQL, these functions and the routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.errors import Conflict, DependencyDown, NotFound
from common.faults import crash_point
from common.models import JobFilter, JobOut, JobSubmission, RedriveRequest
from common.redisqueue import Ready, RedisQueue
from common.store import Dispatch, Store

log = logging.getLogger("djs.jobs")

_SINGLE_TRIES = 20


@dataclass(frozen=True)
class Submitted:
    job: JobOut
    created: bool  # False: an idempotent replay of an earlier submission
    dispatched: bool  # False: stored durably, Redis push deferred to the reconciler


def ready_again(dispatches: Sequence[Dispatch]) -> list[Ready]:
    """The Redis pushes that put these jobs back in line: now, or at their run_at."""
    return [
        Ready(
            d.id,
            d.queue,
            d.priority,
            d.run_at if d.status == "delayed" else None,
            suspect=d.suspect,
        )
        for d in dispatches
        if d.status in ("pending", "delayed")
    ]


def _push(queue: RedisQueue, ready: list[Ready]) -> bool:
    """Push to Redis; False if Redis is down (the reconciler pushes later)."""
    try:
        queue.push(ready)
    except DependencyDown as exc:
        log.warning("%d jobs stored, dispatch deferred: %s", len(ready), exc.message)
        return False
    return True


def submit(store: Store, queue: RedisQueue, submission: JobSubmission) -> Submitted:
    """Store one job (the commit is the promise), then push its id to Redis."""
    return submit_many(store, queue, [submission])[0]


def submit_many(store: Store, queue: RedisQueue, jobs: Sequence[JobSubmission]) -> list[Submitted]:
    """Store all jobs or none in one transaction, then push the new ones in one round trip.

    If Redis is down the jobs are still stored; the runners' reconciler pushes them when
    Redis answers again. If Postgres is down nothing is written: DependencyDown is raised.
    """
    stored = store.enqueue_many(jobs)
    crash_point("after_commit_before_push")
    new = [job for job, created in stored if created]
    dispatched = _push(queue, [Ready(j.id, j.queue, j.priority, j.run_at) for j in new])
    return [Submitted(job, created, dispatched or not created) for job, created in stored]


def retry(store: Store, queue: RedisQueue, job_filter: JobFilter, limit: int) -> list[int]:
    """failed, cancelled or completed -> pending, with a fresh attempt budget."""
    moved = store.retry(job_filter, limit)
    _push(queue, ready_again(moved))
    return [d.id for d in moved]


def promote(store: Store, queue: RedisQueue, job_filter: JobFilter, limit: int) -> list[int]:
    """delayed -> pending now."""
    moved = store.promote(job_filter, limit)
    _push(queue, ready_again(moved))
    return [d.id for d in moved]


def cancel(
    store: Store, queue: RedisQueue, job_filter: JobFilter, limit: int
) -> tuple[list[int], list[int]]:
    """Cancel waiting jobs and ask active ones to stop; return (cancelled, requested)."""
    cancelled, requested = store.cancel(job_filter, limit)
    _forget(queue, cancelled)
    return [r["id"] for r in cancelled], [r["id"] for r in requested]


def remove(store: Store, queue: RedisQueue, job_filter: JobFilter, limit: int) -> list[int]:
    """Delete jobs and their history; active jobs are never removed."""
    removed = store.remove(job_filter, limit)
    _forget(queue, removed)
    return [r["id"] for r in removed]


def _forget(queue: RedisQueue, rows: list[dict[str, object]]) -> None:
    """Drop ids from Redis; harmless if it fails, since claims are guarded in Postgres."""
    by_queue: dict[str, list[int]] = {}
    for row in rows:
        by_queue.setdefault(str(row["queue"]), []).append(int(str(row["id"])))
    try:
        for name, ids in by_queue.items():
            queue.forget(name, ids)
    except DependencyDown as exc:
        log.warning("could not drop %d ids from Redis: %s", len(rows), exc.message)


def pause(store: Store, queue: RedisQueue, name: str, paused: bool) -> None:
    """Pause or resume a queue: Postgres keeps the setting, Redis enforces it at claim."""
    store.set_paused(name, paused)
    queue.set_paused(name, paused)


def redrive(store: Store, queue: RedisQueue, request: RedriveRequest) -> tuple[list[int], bool]:
    """Retry failed jobs by filter, `batch_size` at a time with a pause between batches.

    Returns the ids retried and whether more failed jobs match (call again for the rest).
    """
    job_filter = request.filter.model_copy(update={"status": "failed"})
    done: list[int] = []
    while len(done) < request.limit:
        size = min(request.batch_size, request.limit - len(done))
        batch = retry(store, queue, job_filter, size)
        done += batch
        if len(batch) < size:
            return done, False
        time.sleep(request.pause_ms / 1000)
    return done, True


def apply_one(
    store: Store,
    job_id: int,
    verb: str,
    allowed: Sequence[str],
    operation: Callable[[], Sequence[int]],
) -> Sequence[int]:
    """Run a single-job verb. If it moved nothing: 404 if the job does not exist, 409 if its
    state does not allow the verb. A job in an allowed state was only locked for a moment
    (the bulk verbs skip locked rows), so the verb is tried again."""
    for _ in range(_SINGLE_TRIES):
        moved = operation()
        if moved:
            return moved
        status = store.status_of(job_id)
        if status is None:
            raise NotFound(f"job {job_id} not found", {"id": job_id})
        if status not in allowed:
            raise Conflict(
                f"cannot {verb} job {job_id}: it is {status}; "
                f"{verb} applies to {', '.join(allowed)} jobs",
                {"id": job_id, "status": status},
            )
        time.sleep(0.01)
    raise Conflict(f"job {job_id} is busy; try again", {"id": job_id})
