"""The local runner: claim -> run -> record -> schedule retry, with many jobs per round trip.

Threads: the main loop claims; a pool of job threads runs handlers (common/executor.py); the
recorder writes outcomes in batches; the watcher enforces timeouts, renews leases (the
heartbeat), relays cancel requests and progress, and runs the upkeep (reconciler, janitor);
the listener pushes jobs committed through the transactional enqueue.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from common import lifecycle
from common.backoff import ReconnectBackoff
from common.errors import DependencyDown
from common.executor import JobExecutor, Outcome
from common.handlers import HandlerRegistry
from common.jobs import ready_again
from common.notify import EnqueueListener
from common.redisqueue import RedisQueue
from common.store import Completion, Dispatch, Failure, Lease, Store

log = logging.getLogger("djs.runner")

_RECORD_BATCH = 500
_WATCH_INTERVAL_S = 0.05  # how often timeouts are checked
_REDIS_TIMER_SLACK_MS = 120  # Redis may time a blocked client out this late (hz = 10)
_SIGNAL_POLL_S = 0.002  # in the last stretch before a due job, look for new work this often


class Upkeep(Protocol):
    """Periodic background work (reconciler, janitor); each decides itself when it is due."""

    def maybe_run(self) -> int: ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Runner:
    """Runs one queue's jobs on a pool of threads until stopped (or, in burst mode, idle)."""

    def __init__(
        self,
        store: Store,
        redis_queue: RedisQueue,
        registry: HandlerRegistry,
        *,
        queue_name: str = "default",
        concurrency: int = 8,
        burst: bool = False,
        poll_interval_s: float = 1.0,
        lease_s: float = 30.0,
        grace_s: float = 25.0,
        upkeep: Sequence[Upkeep] = (),
        listener: EnqueueListener | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.queue = redis_queue
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.burst = burst
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.upkeep = list(upkeep)
        self.listener = listener
        self.worker_id = worker_id or default_worker_id()
        self._outcomes: queue.Queue[Outcome | None] = queue.Queue()
        self._executor = JobExecutor(registry, concurrency, self._outcomes.put)
        self._slots = threading.Condition()
        self._inflight = 0
        self._exclusive = False  # a suspect job runs, or waits for us to fall idle
        self._stop = threading.Event()
        self._done = threading.Event()  # set once the run is over: background threads end
        self._claim_backoff = ReconnectBackoff()
        self.processed = 0
        self.released = 0

    def stop(self) -> None:
        """Stop claiming; jobs in flight get `grace_s` to finish before their leases go back."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._record_loop, name="djs-recorder", daemon=True),
            threading.Thread(target=self._watch_loop, name="djs-watch", daemon=True),
        ]
        if self.listener:
            target = self.listener.run
            threads.append(threading.Thread(target=target, args=(self._done,), daemon=True))
        for thread in threads:
            thread.start()
        try:
            while not self._stop.is_set() and self._step():
                pass
        finally:
            self._stop.set()
            self._drain()
            self._executor.shutdown()
            self._done.set()
            self._outcomes.put(None)
            threads[0].join()

    def _drain(self) -> None:
        """Wait up to grace_s for jobs in flight; then hand the rest back to Postgres at once."""
        deadline = time.monotonic() + self.grace_s
        with self._slots:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._slots.wait(0.05)
        if self._inflight > 0:
            self._release_unfinished()

    def _release_unfinished(self) -> None:
        left = self._executor.abandon_all()
        leases = [Lease(job.id, job.lease_token) for job in left]
        try:
            released = self.store.release(leases)
            self.queue.push(ready_again(released))
            self.queue.ack(self.queue_name, [job.id for job in left])
        except DependencyDown as exc:
            # The leases expire instead: the janitor recovers the jobs as stalled.
            log.warning("could not release %d jobs: %s", len(left), exc.message)
            released = []
        self.released = len(released)
        log.warning("grace period over: released %d unfinished jobs", len(released))
        with self._slots:
            self._inflight -= len(left)

    # --- claim ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """One turn of the loop; False when burst mode finds nothing left to do."""
        free = self._wait_for_free_slots()
        if free == 0:
            return True
        busy_before_claim = self._inflight
        try:
            claimed = self.queue.claim(self.queue_name, free, idle=busy_before_claim == 0)
            if claimed.isolated or claimed.suspect_waiting:
                # A suspect job runs alone: claim nothing else until it (or, first, what is
                # in flight now) is done.
                self._exclusive = True
            if claimed.ids:
                self._start(claimed.ids)
            elif claimed.suspect_waiting:
                pass
            elif self.burst and busy_before_claim == 0 and claimed.next_due_in_ms is None:
                return self._pushed_jobs_redis_lacked()
            else:
                self._idle(claimed.next_due_in_ms)
            self._claim_backoff.reset()
        except DependencyDown as exc:
            delay = self._claim_backoff.next_delay()
            log.warning("%s; retrying in %.2f s", exc.message, delay)
            self._stop.wait(delay)
        return True

    def _pushed_jobs_redis_lacked(self) -> bool:
        """Burst mode ends when Redis holds nothing more; Postgres must agree. Pending or
        delayed jobs it holds that Redis lacks (a lost push) are pushed again and the run
        goes on, instead of leaving them to a reconciler that may never run."""
        lost = self.queue.missing(ready_again(self.store.waiting(self.queue_name, 1000)))
        if lost:
            log.warning("burst: %d jobs were missing from Redis; pushed them again", len(lost))
            self.queue.push(lost)
        return bool(lost)

    def _idle(self, next_due_in_ms: int | None) -> None:
        """Sleep until new work is signalled or the next delayed job falls due.

        Redis checks blocking timeouts only about every 100 ms (its `hz`), so a BLPOP alone
        would start a delayed job up to 100 ms late: block in Redis until shortly before the
        due time, then wait out the rest here in short steps that still notice new work.
        """
        if next_due_in_ms is None or next_due_in_ms / 1000 > self.poll_interval_s:
            self.queue.wait_for_work(self.queue_name, self.poll_interval_s)
            return
        if next_due_in_ms > _REDIS_TIMER_SLACK_MS:
            timeout_s = (next_due_in_ms - _REDIS_TIMER_SLACK_MS) / 1000
            self.queue.wait_for_work(self.queue_name, timeout_s)
            return
        due = time.monotonic() + next_due_in_ms / 1000
        while not self.queue.take_signal(self.queue_name):
            left = due - time.monotonic()
            if left <= 0 or self._stop.wait(min(left, _SIGNAL_POLL_S)):
                return

    def _wait_for_free_slots(self) -> int:
        with self._slots:
            if self._exclusive:
                if self._inflight > 0:
                    self._slots.wait(self.poll_interval_s)
                    return 0
                self._exclusive = False
            if self._inflight >= self.concurrency and not self._stop.is_set():
                self._slots.wait(self.poll_interval_s)
            return self.concurrency - self._inflight

    def _start(self, ids: list[int]) -> None:
        jobs = self.store.claim(ids, self.worker_id, self.lease_s)
        # Ids Postgres refused are not ours to run (done, cancelled, duplicate delivery).
        refused = set(ids) - {job.id for job in jobs}
        if refused:
            self.queue.ack(self.queue_name, sorted(refused))
        with self._slots:
            self._inflight += len(jobs)
        for job in jobs:
            self._executor.submit(job)

    # --- watch: timeouts, heartbeat, cancel requests, progress, upkeep -----------------------

    def _watch_loop(self) -> None:
        heartbeat_s = min(1.0, self.lease_s / 3)
        last_beat = time.monotonic()
        while not self._done.is_set():
            self._executor.expire_overdue()
            if time.monotonic() - last_beat >= heartbeat_s:
                last_beat = time.monotonic()
                self._heartbeat()
                if not self._stop.is_set():
                    for task in self.upkeep:
                        task.maybe_run()
            self._done.wait(_WATCH_INTERVAL_S)

    def _heartbeat(self) -> None:
        """Renew our leases, tell handlers about cancel requests, publish their progress."""
        running = self._executor.running()
        if not running:
            return
        try:
            held = self.store.renew([Lease(j.id, j.lease_token) for j, _ in running], self.lease_s)
            self.store.save_progress(
                {j.id: c.progress_pct for j, c in running if c.progress_pct is not None}
            )
        except DependencyDown as exc:
            log.warning("heartbeat failed: %s", exc.message)
            return
        for job, context in running:
            if job.id not in held:
                # Recovered as stalled, cancelled or removed: our outcome will be refused.
                log.warning("job %d: lease lost; its outcome will not count", job.id)
                context.cancel()
            elif held[job.id]:
                context.cancel()

    # --- record --------------------------------------------------------------------------

    def _record_loop(self) -> None:
        while True:
            first = self._outcomes.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _RECORD_BATCH:
                try:
                    more = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._outcomes.put(None)  # keep the sentinel for the outer loop
                    break
                batch.append(more)
            self._record(batch)

    def _record(self, batch: list[Outcome]) -> None:
        completions = [_completion(o) for o in batch if o.error is None]
        failures = [_failure(o) for o in batch if o.error is not None]
        retries = self._persist(completions, failures)
        try:
            self.queue.push(ready_again(retries))
            self.queue.ack(self.queue_name, [o.job.id for o in batch])
        except DependencyDown as exc:
            # Postgres has the truth; the reconciler pushes retries again.
            log.warning("recorded %d jobs but %s", len(batch), exc.message)
        with self._slots:
            self._inflight -= len(batch)
            self.processed += len(batch)
            self._slots.notify_all()

    def _persist(self, completions: list[Completion], failures: list[Failure]) -> list[Dispatch]:
        """Write outcomes to Postgres, waiting out an outage: an outcome is never dropped.

        While Postgres is down the leases run out; if it stays down past them, the janitor
        recovers the jobs and these writes are refused by their fence, as they must be.
        """
        backoff = ReconnectBackoff()
        while True:
            try:
                applied = self.store.complete(completions)
                failed = self.store.fail(failures)
                break
            except DependencyDown as exc:
                delay = backoff.next_delay()
                log.warning("cannot record outcomes: %s; retrying in %.2f s", exc.message, delay)
                time.sleep(delay)
        stale = len(completions) - len(applied) + len(failures) - len(failed)
        if stale:
            log.warning("%d outcomes refused by their lease fence (job no longer ours)", stale)
        return failed


def _text(value: str) -> str:
    """Postgres text cannot hold NUL; an error message or log line might."""
    return value.replace("\x00", "\\x00")


def _completion(outcome: Outcome) -> Completion:
    ctx, job = outcome.context, outcome.job
    logs = [_text(line) for line in ctx.logs]
    return Completion(job.id, job.lease_token, outcome.result, logs, ctx.progress_pct)


def _failure(outcome: Outcome) -> Failure:
    error, job, ctx = outcome.error, outcome.job, outcome.context
    assert error is not None
    decision = lifecycle.decide(
        error, job.attempt - job.attempt_offset, job.attempts_left, job.backoff
    )
    return Failure(
        job_id=job.id,
        token=job.lease_token,
        error_type=type(error).__name__,
        message=_text(str(error)),
        traceback=_text(outcome.traceback),
        retry_in_ms=decision.retry_in_ms,
        reason=decision.reason,
        logs=[_text(line) for line in ctx.logs],
        progress=ctx.progress_pct,
    )
