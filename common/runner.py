"""The local runner: claim -> run -> record -> schedule retry, with many jobs per round trip."""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from common import lifecycle
from common.errors import DependencyDown
from common.handlers import HandlerRegistry, JobContext, NonRetryableError
from common.reconciler import Reconciler
from common.redisqueue import Ready, RedisQueue
from common.store import ClaimedJob, Completion, Failure, Store

log = logging.getLogger("djs.runner")

_RECORD_BATCH = 500


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a JSON-ready result, or an error with its traceback."""

    job: ClaimedJob
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""


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
        reconciler: Reconciler | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.queue = redis_queue
        self.registry = registry
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.burst = burst
        self.poll_interval_s = poll_interval_s
        self.reconciler = reconciler
        self.worker_id = worker_id or default_worker_id()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="djs-job")
        self._outcomes: queue.Queue[Outcome | None] = queue.Queue()
        self._slots = threading.Condition()
        self._inflight = 0
        self._stop = threading.Event()
        self.processed = 0

    def stop(self) -> None:
        """Stop claiming; jobs in flight finish and are recorded before run() returns."""
        self._stop.set()

    def run(self) -> None:
        recorder = threading.Thread(target=self._record_loop, name="djs-recorder", daemon=True)
        recorder.start()
        try:
            while not self._stop.is_set() and self._step():
                pass
        finally:
            self._pool.shutdown(wait=True)
            self._outcomes.put(None)
            recorder.join()

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
            if self.reconciler:
                self.reconciler.maybe_run()
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
            if self._inflight >= self.concurrency:
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
            self._pool.submit(self._execute, job)

    # --- run -----------------------------------------------------------------------------

    def _execute(self, job: ClaimedJob) -> None:
        spec = self.registry.get(job.type)
        timeout_s = spec.timeout_s if spec else 0.0
        context = JobContext(
            function_name=job.type,
            job_id=job.id,
            attempt=job.attempt,
            deadline=time.monotonic() + timeout_s,
        )
        event = {
            "job_id": job.id,
            "type": job.type,
            "queue": job.queue,
            "payload": job.payload,
            "attempt": job.attempt,
        }
        try:
            if spec is None:
                raise NonRetryableError(f"no handler registered for job type {job.type!r}")
            result = _json_ready(spec.func(event, context))
            outcome = Outcome(job, result=result)
        except Exception as exc:
            outcome = Outcome(job, error=exc, traceback=traceback.format_exc())
        self._outcomes.put(outcome)

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
        completions = [Completion(o.job.id, o.job.attempt, o.result) for o in batch if not o.error]
        failures = [_failure(o) for o in batch if o.error]
        retries = self._persist(completions, failures)
        try:
            self.queue.push(retries)
            self.queue.ack(self.queue_name, [o.job.id for o in batch])
        except DependencyDown as exc:
            # Postgres has the truth; the reconciler pushes retries again.
            log.warning("recorded %d jobs but %s", len(batch), exc.message)
        with self._slots:
            self._inflight -= len(batch)
            self.processed += len(batch)
            self._slots.notify_all()

    def _persist(self, completions: list[Completion], failures: list[Failure]) -> list[Ready]:
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
        return [
            Ready(d.id, d.queue, d.priority, d.run_at if d.status == "delayed" else None)
            for d in failed
            if d.status != "failed"
        ]


def _failure(outcome: Outcome) -> Failure:
    error = outcome.error
    assert error is not None
    job = outcome.job
    return Failure(
        job_id=job.id,
        attempt=job.attempt,
        error_type=type(error).__name__,
        message=str(error),
        traceback=outcome.traceback,
        retry_in_ms=lifecycle.retry_delay_ms(error, job.attempt, job.max_attempts),
    )


def _json_ready(value: Any) -> Any:
    """A handler's result must be JSON; anything else fails the job at once, clearly."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise NonRetryableError(f"handler result is not JSON-serializable: {exc}") from exc
