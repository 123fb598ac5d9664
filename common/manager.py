"""The job manager: the only code that pairs a guarded Postgres statement with a dispatch.

Every change of a job's state happens here, in the same order: write Postgres first (the
truth; a guarded statement that moves only the rows in the state it expects), then tell the
dispatcher. A dispatch that fails is not an error: the reconciler pushes again what Postgres
holds. The verbs are named like the SQL blocks of common/store/sql/queries.sql.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from common import metrics
from common.audit import Actor, entry
from common.dispatch import Dispatcher, PollingDispatcher
from common.dispatch import connect as connect_dispatcher
from common.errors import Conflict, DependencyDown, NotFound
from common.faults import crash_point
from common.logs import job_fields
from common.models import (
    CleanRequest,
    JobDetail,
    JobFilter,
    JobOut,
    JobSubmission,
    QueueSettings,
    RedriveRequest,
)
from common.records import (
    Claimed,
    ClaimedJob,
    Completion,
    Dispatch,
    Failure,
    Lease,
    Ready,
    Recorded,
    ready_again,
)
from common.settings import Settings
from common.store import Store

log = logging.getLogger("djs.manager")


@dataclass(frozen=True)
class Submitted:
    job: JobOut
    created: bool  # False: an idempotent replay of an earlier submission
    dispatched: bool  # False: stored durably, dispatch deferred to the reconciler


@dataclass(frozen=True)
class Claim:
    """What one claim on one queue gave a runner: jobs now active, and what Redis said."""

    jobs: list[ClaimedJob]
    popped: Claimed


@dataclass(frozen=True)
class Redriven:
    ids: list[int]
    next_cursor: int | None  # pass back as `cursor` to go on; None: nothing was retried
    remaining: int  # failed jobs matching the filter after next_cursor


@dataclass(frozen=True)
class Cancelled:
    job: JobDetail
    requested: bool  # True: it was active; its handler is asked to stop


class JobManager:
    """Writes to the store, then dispatches; built once (see common/services.py)."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        # Checked once: isinstance against a runtime protocol costs microseconds, and a
        # runner asks for the polling side on every claim and every idle poll.
        self._polling = dispatcher if isinstance(dispatcher, PollingDispatcher) else None
        # SQS cannot hold a job for more than 15 minutes: promoted jobs must be sent to it.
        self._keeps_delayed = bool(getattr(dispatcher, "keeps_delayed", True))

    @classmethod
    def connect(cls, settings: Settings) -> JobManager:
        """The Postgres pools and the dispatcher DJS_DISPATCH names (Redis or SQS); neither
        blocks if its server is down."""
        store = Store(settings.database_url, settings.db_pool_min, settings.db_pool_max).open()
        return cls(store, connect_dispatcher(settings))

    def close(self) -> None:
        self.store.close()
        self.dispatcher.close()

    @property
    def polling(self) -> PollingDispatcher:
        """The dispatcher as local runners use it (claim, ack, wait)."""
        if self._polling is None:
            raise TypeError(f"{type(self.dispatcher).__name__} cannot be polled by a runner")
        return self._polling

    # --- dispatch, best effort -------------------------------------------------------------

    def dispatch(self, ready: Sequence[Ready]) -> bool:
        """Push jobs the store holds; False if the dispatcher is down (the reconciler pushes
        them later)."""
        if not ready:
            return True
        try:
            self.dispatcher.push(ready)
        except DependencyDown as exc:
            log.warning("%d jobs stored, dispatch deferred: %s", len(ready), exc.message)
            return False
        return True

    def _redispatch(self, moved: list[Dispatch]) -> list[Dispatch]:
        self.dispatch(ready_again(moved))
        return moved

    def _forget(self, rows: Sequence[dict[str, Any]]) -> None:
        """Drop ids from dispatch; harmless if it fails, since claims are guarded."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            by_queue[str(row["queue"])].append(int(row["id"]))
        try:
            for name, ids in by_queue.items():
                self.dispatcher.forget(name, ids)
        except DependencyDown as exc:
            log.warning("could not drop %d ids from dispatch: %s", len(rows), exc.message)

    def _ack(self, jobs: Sequence[ClaimedJob]) -> None:
        """Tell the dispatcher these claims are settled in Postgres, queue by queue."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for job in jobs:
            by_queue[job.queue].append(job.id)
        for queue, ids in by_queue.items():
            self.polling.ack(queue, ids)

    # --- submissions -----------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[JobSubmission]) -> list[Submitted]:
        """Store all jobs or none in one transaction, then push the new ones in one round trip.
        If Postgres is down nothing is written: DependencyDown is raised."""
        stored = self.store.enqueue_many(jobs)
        crash_point("after_commit_before_push")
        new = [job for job, created in stored if created]
        # One increment per (queue, type): each takes a lock (and a file write).
        for (queue, job_type), count in Counter((j.queue, j.type) for j in new).items():
            metrics.SUBMITTED.labels(*metrics.job_labels(queue, job_type)).inc(count)
        dispatched = self.dispatch([Ready(j.id, j.queue, j.priority, j.run_at) for j in new])
        return [Submitted(job, created, dispatched or not created) for job, created in stored]

    # --- the runner's transitions ------------------------------------------------------------

    def claim(self, queue: str, count: int, worker: str, lease_s: float, idle: bool) -> Claim:
        """Pop up to `count` ids, then move those still runnable to active with a lease."""
        popped = self.polling.claim(queue, count, idle=idle)
        if not popped.ids:
            return Claim([], popped)
        jobs = self.claim_delivered(popped.ids, worker, lease_s)
        # Ids Postgres refused are not ours to run (done, cancelled, duplicate delivery).
        refused = set(popped.ids) - {job.id for job in jobs}
        if refused:
            self.polling.ack(queue, sorted(refused))
        return Claim(jobs, popped)

    def claim_delivered(self, ids: Sequence[int], worker: str, lease_s: float) -> list[ClaimedJob]:
        """Move the ids still runnable to active with a lease: ids popped from Redis, or
        delivered by SQS. Done, cancelled, active or not yet due: refused, not returned."""
        jobs = self.store.claim(ids, worker, lease_s)
        for job in jobs:
            if job.waited_ms is not None:
                lag = metrics.SCHEDULE_LAG.labels(metrics.queue_label(job.queue))
                lag.observe(max(job.waited_ms, 0.0) / 1000)
        return jobs

    def record(self, done: Sequence[Completion], failed: Sequence[Failure]) -> Recorded:
        """complete + fail: record outcomes (raises DependencyDown if Postgres is down, so
        the caller can wait and try again); return what applied."""
        applied = self.store.complete(done)
        moved = self.store.fail(failed)
        self._redispatch(moved)
        metrics.count_failures(moved)
        stale = len(done) - len(applied) + len(failed) - len(moved)
        return Recorded(applied, moved, stale)

    def quarantine(self, job: ClaimedJob, error: BaseException, worker: str | None = None) -> None:
        """Fail a claimed job whose outcome Postgres refuses (invalid_record), so the loop
        that records outcomes goes on; its id leaves the dispatcher."""
        text = f"{type(error).__name__}: {error}".encode("utf-8", "backslashreplace").decode()
        if self.store.quarantine(job.id, job.lease_token, text.replace("\x00", "")):
            log.error(
                "job %d quarantined (invalid_record): %s",
                job.id,
                text[:200],
                extra=job_fields(job, worker),
            )

    def settle(self, jobs: Sequence[ClaimedJob]) -> None:
        """After record: the claims are settled, Redis may forget them."""
        try:
            self._ack(jobs)
        except DependencyDown as exc:  # their active entries expire on their own
            log.warning("recorded %d jobs but %s", len(jobs), exc.message)

    def renew(self, leases: Sequence[Lease], lease_s: float) -> dict[int, bool]:
        return self.store.renew(leases, lease_s)

    def save_progress(self, progress: dict[int, float]) -> None:
        self.store.save_progress(progress)

    def release(self, jobs: Sequence[ClaimedJob]) -> int:
        """active -> pending for jobs a draining runner gives back; return how many."""
        released = self._redispatch(self.store.release([job.lease for job in jobs]))
        self._ack(jobs)
        return len(released)

    def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None:
        self.polling.wait_for_work(queues, timeout_s)

    def take_signal(self, queues: Sequence[str]) -> bool:
        return self.polling.take_signal(queues)

    def queue_names(self) -> list[str]:
        return self.store.queue_names()

    # --- upkeep ------------------------------------------------------------------------------

    def exclusive(self, lock: str) -> AbstractContextManager[bool]:
        """One holder at a time across all processes ("janitor", "reconcile")."""
        return self.store.exclusive(lock)

    def promote_due(self, limit: int) -> int:
        """Due delayed jobs -> pending in Postgres. Redis promotes them on its own clock; a
        dispatcher that does not keep delayed jobs (SQS) is sent them."""
        promoted = self.store.promote_due(limit)
        if not self._keeps_delayed:
            self.dispatch(ready_again(promoted))
        return len(promoted)

    def recover_stalled(self, limit: int) -> int:
        """Jobs whose lease expired -> pending again (or failed, stalled too often)."""
        moved = self.store.recover_stalled(limit)
        for d in moved:
            metrics.LEASES_EXPIRED.labels(metrics.queue_label(d.queue)).inc()
        metrics.count_failures(moved)
        recovered = self._redispatch(moved)
        if recovered:
            log.warning("recovered %d stalled jobs", len(recovered))
        return len(recovered)

    def quarantine_unreadable(self, limit: int) -> int:
        """Delayed jobs due at a time djs cannot read -> failed (invalid_record); they leave
        the dispatcher. Return how many."""
        failed = self.store.quarantine_unreadable(limit)
        if failed:
            self._forget(failed)
            log.error("quarantined %d delayed jobs whose run_at djs cannot read", len(failed))
        return len(failed)

    def reconcile(
        self, older_than_s: float, after_id: int, limit: int
    ) -> tuple[int, int, int] | None:
        """Push again the untouched waiting jobs after `after_id` that Redis lacks; return
        (cursor, how many it lacked, how many became ready now), or None if another process
        is reconciling."""
        found = self.store.undispatched(older_than_s, after_id, limit)
        if found is None:
            return None
        cursor, stale = found
        lost = self.dispatcher.missing(ready_again(stale))
        made_ready = self.dispatcher.push(lost)
        metrics.count_pushes(r.queue for r in lost)
        return cursor, len(lost), made_ready

    def reconcile_queues(self, queues: Sequence[str], limit: int = 1000) -> int:
        """Push these queues' waiting jobs that Redis lacks, however recent; return how many
        (a burst runner asks before it exits)."""
        lost = self.dispatcher.missing(ready_again(self.store.waiting(queues, limit)))
        self.dispatcher.push(lost)
        metrics.count_pushes(r.queue for r in lost)
        return len(lost)

    def restore_pauses(self) -> None:
        """A flushed Redis forgets pauses; Postgres remembers them."""
        for name, settings in self.store.queue_settings().items():
            if settings["paused"]:
                self.dispatcher.set_paused(name, True)

    # --- admin verbs: each takes the Actor it is audited as (None: not audited) ----------------

    def retry(self, job_filter: JobFilter, limit: int, actor: Actor | None = None) -> list[int]:
        """failed, cancelled or completed -> pending, with a fresh attempt budget."""
        audit = entry(actor, "retry", selection=_selection(job_filter, limit))
        return [d.id for d in self._redispatch(self.store.retry(job_filter, limit, audit))]

    def promote(self, job_filter: JobFilter, limit: int, actor: Actor | None = None) -> list[int]:
        """delayed -> pending now."""
        audit = entry(actor, "promote", selection=_selection(job_filter, limit))
        return [d.id for d in self._redispatch(self.store.promote(job_filter, limit, audit))]

    def cancel(
        self, job_filter: JobFilter, limit: int, actor: Actor | None = None
    ) -> tuple[list[int], list[int]]:
        """Cancel waiting jobs and ask active ones to stop; return (cancelled, requested)."""
        audit = entry(actor, "cancel", selection=_selection(job_filter, limit))
        cancelled, requested = self.store.cancel(job_filter, limit, audit)
        self._forget(cancelled)
        return [r["id"] for r in cancelled], [r["id"] for r in requested]

    def remove(self, job_filter: JobFilter, limit: int, actor: Actor | None = None) -> list[int]:
        """Delete jobs and their history; active jobs are never removed."""
        audit = entry(actor, "remove", selection=_selection(job_filter, limit))
        removed = self.store.remove(job_filter, limit, audit)
        self._forget(removed)
        return [r["id"] for r in removed]

    def retry_one(self, job_id: int, actor: Actor | None = None) -> JobDetail:
        row = self.store.retry_one(job_id, entry(actor, "retry", job_id))
        self._redispatch([Dispatch(**_moved(row, job_id, "retry"))])
        return self._current(job_id)

    def promote_one(self, job_id: int, actor: Actor | None = None) -> JobDetail:
        row = self.store.promote_one(job_id, entry(actor, "promote", job_id))
        self._redispatch([Dispatch(**_moved(row, job_id, "promote"))])
        return self._current(job_id)

    def cancel_one(self, job_id: int, actor: Actor | None = None) -> Cancelled:
        row = self.store.cancel_one(job_id, entry(actor, "cancel", job_id))
        moved = _moved(
            row and {**row, "id": row["cancelled"] or row["requested"]}, job_id, "cancel"
        )
        if not moved["requested"]:
            self._forget([moved])
        return Cancelled(self._current(job_id), requested=bool(moved["requested"]))

    def remove_one(self, job_id: int, actor: Actor | None = None) -> None:
        row = self.store.remove_one(job_id, entry(actor, "remove", job_id))
        self._forget([_moved(row, job_id, "remove")])

    def _current(self, job_id: int) -> JobDetail:
        job = self.store.get(job_id)
        if job is None:  # removed in the instant since the verb
            raise NotFound(f"job {job_id} not found", {"id": job_id})
        return job

    def redrive(self, request: RedriveRequest, actor: Actor | None = None) -> Redriven:
        """Retry up to `limit` failed jobs by filter after the request's cursor, in id order:
        a walk that passes each answer's cursor back takes every job at most once."""
        job_filter = request.filter.model_copy(update={"status": "failed"})
        after = request.cursor or 0
        audit = entry(actor, "redrive", selection=request.model_dump(mode="json"))
        moved = self._redispatch(self.store.redrive(job_filter, after, request.limit, audit))
        cursor = moved[-1].id if moved else None
        remaining = self.store.count_redrivable(job_filter, cursor or after)
        return Redriven([d.id for d in moved], cursor, remaining)

    def clean(self, queue: str, request: CleanRequest, actor: Actor | None = None) -> int:
        """Remove finished jobs by age or beyond the newest N (nothing to dispatch)."""
        selection = request.model_dump(mode="json", exclude_none=True)
        return self.store.clean(queue, request, entry(actor, "clean", queue, selection))

    def pause(self, queue: str, paused: bool, actor: Actor | None = None) -> None:
        """Pause or resume a queue: Postgres keeps the setting, the dispatcher enforces it."""
        self.store.set_paused(queue, paused, entry(actor, "pause" if paused else "resume", queue))
        self.dispatcher.set_paused(queue, paused)
        if not paused and not self._keeps_delayed:  # SQS: the paused jobs' messages are gone
            self.dispatch(ready_again(self.store.waiting([queue], 1000)))  # best effort

    def set_retention(
        self, queue: str, settings: QueueSettings, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Set a queue's retention (the janitor applies it); return the queue's settings."""
        audit = entry(actor, "queue_settings", queue, settings.model_dump(mode="json"))
        return self.store.set_retention(queue, settings, audit)


def _selection(job_filter: JobFilter, limit: int) -> dict[str, Any]:
    """What a verb by filter was asked to act on, as the audit log keeps it."""
    return {"filter": job_filter.model_dump(mode="json", exclude_none=True), "limit": limit}


def _moved(row: dict[str, Any] | None, job_id: int, verb: str) -> dict[str, Any]:
    """The row a single-job verb moved; NotFound or Conflict (naming the state) if none."""
    if row is None:
        raise NotFound(f"job {job_id} not found", {"id": job_id})
    if row["id"] is None:
        found = row["found"]
        raise Conflict(
            f"cannot {verb} job {job_id}: it is {found}", {"id": job_id, "status": found}
        )
    return {k: v for k, v in row.items() if k not in ("found", "cancelled")}
