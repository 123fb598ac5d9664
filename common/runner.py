"""The local runner: claim -> run -> record -> schedule retry, with many jobs per round trip."""

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
from common.errors import DependencyDown
from common.executor import JobExecutor, Outcome
from common.handlers import HandlerRegistry
from common.jobs import ready_again
from common.redisqueue import RedisQueue
from common.store import Completion, Dispatch, Failure, Store

log = logging.getLogger("djs.runner")

_RECORD_BATCH = 500
_WATCH_INTERVAL_S = 0.05  # how often timeouts are checked
_SYNC_INTERVAL_S = 0.5  # how often cancel requests are read and progress written


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
        upkeep: Sequence[Upkeep] = (),
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.queue = redis_queue
        self.registry = registry
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.burst = burst
        self.poll_interval_s = poll_interval_s
        self.upkeep = list(upkeep)
        self.worker_id = worker_id or default_worker_id()
        self._outcomes: queue.Queue[Outcome | None] = queue.Queue()
        self._executor = JobExecutor(registry, concurrency, self._outcomes.put)
        self._slots = threading.Condition()
        self._inflight = 0
        self._stop = threading.Event()
        self.processed = 0

    def stop(self) -> None:
        """Stop claiming; jobs in flight finish and are recorded before run() returns."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    def run(self) -> None:
        recorder = threading.Thread(target=self._record_loop, name="djs-recorder", daemon=True)
        watcher = threading.Thread(target=self._watch_loop, name="djs-watch", daemon=True)
        recorder.start()
        watcher.start()
        try:
            while not self._stop.is_set() and self._step():
                pass
        finally:
            self._stop.set()
            self._drain()
            self._executor.shutdown()
            self._outcomes.put(None)
            recorder.join()

    def _drain(self) -> None:
        """Wait for every claimed job to be recorded (a hung one is expired by the watcher)."""
        with self._slots:
            while self._inflight > 0:
                self._slots.wait(0.1)

    # --- claim ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """One turn of the loop; False when burst mode finds nothing left to do."""
        free = self._wait_for_free_slots()
        if free == 0:
            return True
        busy_before_claim = self._inflight
        try:
            claimed = self.queue.claim(self.queue_name, free)
            if claimed.ids:
                self._start(claimed.ids)
                return True
            if self.burst and busy_before_claim == 0 and claimed.next_due_in_ms is None:
                return False
            wait_s = self.poll_interval_s
            if claimed.next_due_in_ms is not None:
                wait_s = min(wait_s, claimed.next_due_in_ms / 1000)
            self.queue.wait_for_work(self.queue_name, wait_s)
        except DependencyDown as exc:
            log.warning("%s; retrying", exc.message)
            self._stop.wait(self.poll_interval_s)
        return True

    def _wait_for_free_slots(self) -> int:
        with self._slots:
            if self._inflight >= self.concurrency and not self._stop.is_set():
                self._slots.wait(self.poll_interval_s)
            return self.concurrency - self._inflight

    def _start(self, ids: list[int]) -> None:
        jobs = self.store.claim(ids, self.worker_id)
        # Ids Postgres refused are not ours to run (done, cancelled, duplicate delivery).
        refused = set(ids) - {job.id for job in jobs}
        if refused:
            self.queue.ack(self.queue_name, sorted(refused))
        with self._slots:
            self._inflight += len(jobs)
        for job in jobs:
            self._executor.submit(job)

    # --- watch: timeouts, cancel requests, progress, upkeep ---------------------------------

    def _watch_loop(self) -> None:
        last_sync = 0.0
        while not (self._stop.is_set() and self._inflight == 0):
            self._executor.expire_overdue()
            if time.monotonic() - last_sync >= _SYNC_INTERVAL_S:
                last_sync = time.monotonic()
                self._sync_running()
                if not self._stop.is_set():
                    for task in self.upkeep:
                        task.maybe_run()
            time.sleep(_WATCH_INTERVAL_S)

    def _sync_running(self) -> None:
        """Tell handlers about cancel requests; publish their progress."""
        running = self._executor.running()
        if not running:
            return
        try:
            cancelled = self.store.cancel_flags([c.job_id for c in running])
            self.store.save_progress(
                {c.job_id: c.progress_pct for c in running if c.progress_pct is not None}
            )
        except DependencyDown as exc:
            log.warning("cannot sync running jobs: %s", exc.message)
            return
        for context in running:
            if context.job_id in cancelled:
                context.cancel_event.set()

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
        """Write outcomes to Postgres, waiting out an outage: an outcome is never dropped."""
        while True:
            try:
                applied = self.store.complete(completions)
                failed = self.store.fail(failures)
                break
            except DependencyDown as exc:
                log.warning("cannot record outcomes: %s; retrying", exc.message)
                time.sleep(self.poll_interval_s)
        stale = len(completions) - len(applied) + len(failures) - len(failed)
        if stale:
            log.warning("%d outcomes rejected by their guard (job no longer ours)", stale)
        return failed


def _completion(outcome: Outcome) -> Completion:
    ctx = outcome.context
    return Completion(
        outcome.job.id, outcome.job.attempt, outcome.result, ctx.logs, ctx.progress_pct
    )


def _failure(outcome: Outcome) -> Failure:
    error, job, ctx = outcome.error, outcome.job, outcome.context
    assert error is not None
    decision = lifecycle.decide(
        error, job.attempt - job.attempt_offset, job.attempts_left, job.backoff
    )
    return Failure(
        job_id=job.id,
        attempt=job.attempt,
        error_type=type(error).__name__,
        message=str(error),
        traceback=outcome.traceback,
        retry_in_ms=decision.retry_in_ms,
        reason=decision.reason,
        logs=list(ctx.logs),
        progress=ctx.progress_pct,
    )
