"""Run handlers on a fixed number of threads, with a hard per-attempt deadline.

Python cannot kill a thread, so a handler that overruns its timeout is *abandoned*: its
attempt is recorded as timed out at once, its cancellation flag is set (a cooperative handler
stops), and a fresh thread takes its slot. Whatever the abandoned thread returns later is
discarded. The runner thus stays at full capacity and a hung handler never holds a slot for
ever.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import limits
from common.handlers import (
    DEFAULT_TIMEOUT_S,
    HandlerRegistry,
    JobContext,
    JobTimeout,
    NonRetryableError,
)
from common.models import unstorable_json
from common.records import ClaimedJob

log = logging.getLogger("djs.executor")


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a JSON-ready result, or an error with its traceback."""

    job: ClaimedJob
    context: JobContext
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""


class _TaskLine:
    """A FIFO for the job threads that wakes one sleeping thread at a time.

    Waking a thread is a futex call and a GIL handover. queue.Queue wakes one per item: with
    256 idle threads, its notify took 38 % of a busy runner's GIL time (py-spy --gil). Here a
    woken thread that leaves work behind wakes the next one, and a thread that finishes a job
    takes the next without sleeping, so short jobs need few wake-ups and long ones still
    spread over every thread.
    """

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._sleeping = 0
        self._waking = 0  # notified, not yet back

    def put(self, item: Any) -> None:
        with self._ready:
            self._items.append(item)
            self._wake_one()

    def get(self) -> Any:
        with self._ready:
            while not self._items:
                self._sleeping += 1
                self._ready.wait()
                self._sleeping -= 1
                self._waking = max(0, self._waking - 1)
            item = self._items.popleft()
            self._wake_one()
            return item

    def _wake_one(self) -> None:
        # One wake-up in flight at a time; the woken thread passes it on if work is left.
        if self._items and self._waking == 0 and self._sleeping > 0:
            self._waking = 1
            self._ready.notify()


@dataclass
class _Running:
    job: ClaimedJob
    context: JobContext
    thread: threading.Thread | None  # None until a worker thread picks it up


class JobExecutor:
    """`size` worker threads; finished (or timed-out) attempts go to `on_outcome`."""

    def __init__(
        self, registry: HandlerRegistry, size: int, on_outcome: Callable[[Outcome], None]
    ) -> None:
        self.registry = registry
        self.size = size
        self.on_outcome = on_outcome
        self._tasks = _TaskLine()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="djs-job", daemon=True)
        self._threads.append(thread)
        thread.start()

    def submit(self, job: ClaimedJob) -> JobContext:
        spec = self.registry.get(job.type)
        timeout_s = job.timeout_s or (spec.timeout_s if spec else DEFAULT_TIMEOUT_S)
        context = JobContext(
            function_name=job.type,
            job_id=job.id,
            attempt=job.attempt,
            deadline=time.monotonic() + timeout_s,
            timeout_s=timeout_s,
            aws_request_id=str(job.lease_token),
        )
        with self._lock:
            self._running[job.id] = _Running(job, context, None)
        self._tasks.put((job, context))
        return context

    def running(self) -> list[tuple[ClaimedJob, JobContext]]:
        """Jobs submitted and not yet finished (queued or running)."""
        with self._lock:
            return [(r.job, r.context) for r in self._running.values()]

    def abandon_all(self) -> list[ClaimedJob]:
        """Give up every unfinished job (graceful drain ran out of time); return them.

        Their threads run on, flagged as cancelled; whatever they return is discarded.
        """
        with self._lock:
            left = list(self._running.values())
            self._running.clear()
        for r in left:
            r.context.cancel()
        return [r.job for r in left]

    def shutdown(self) -> None:
        """Stop the idle threads. Call once nothing is busy; abandoned threads are left be."""
        for _ in range(self.size):
            self._tasks.put(None)

    # --- worker threads ----------------------------------------------------------------

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            task = self._tasks.get()
            if task is None:
                return
            job, context = task
            with self._lock:
                running = self._running.get(job.id)
                if running is None:
                    continue  # abandoned before it started
                running.thread = me
            outcome = self._run(job, context)
            with self._lock:
                # The entry may be gone (timed out) or be the job's *next* attempt's by now:
                # only this attempt's own entry is ours to remove.
                current = self._running.get(job.id)
                still_ours = current is not None and current.context is context
                if still_ours:
                    del self._running[job.id]
            if not still_ours:
                return  # timed out and replaced: this thread's slot belongs to another now
            self.on_outcome(outcome)

    def _run(self, job: ClaimedJob, context: JobContext) -> Outcome:
        spec = self.registry.get(job.type)
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
            return Outcome(job, context, result=_json_ready(spec.func(event, context)))
        except Exception as exc:
            return Outcome(job, context, error=exc, traceback=traceback.format_exc())

    # --- the watchdog ----------------------------------------------------------------------

    def expire_overdue(self) -> int:
        """Record every attempt past its deadline as timed out; return how many."""
        now = time.monotonic()
        with self._lock:
            overdue = [
                r
                for r in self._running.values()
                if r.context.deadline <= now and r.thread is not None
            ]
            for r in overdue:
                del self._running[r.job.id]
        for r in overdue:
            # The stack first: once cancelled, a cooperative handler returns, and the stack
            # would no longer say where it hung.
            stack = _thread_stack(r.thread)
            r.context.cancel()
            self._spawn()
            limit = r.context.timeout_s
            error = JobTimeout(f"attempt {r.job.attempt} exceeded its {limit:g} s timeout")
            log.warning("job %d: %s; its thread is abandoned", r.job.id, error)
            self.on_outcome(Outcome(r.job, r.context, error=error, traceback=stack))
        return len(overdue)


def _thread_stack(thread: threading.Thread | None) -> str:
    """Where a hung handler is stuck: the most useful traceback a timeout can carry."""
    frame = sys._current_frames().get(thread.ident or -1) if thread else None
    if frame is None:
        return "JobTimeout (the handler's thread had already finished)"
    return "Stack of the timed-out handler:\n" + "".join(traceback.format_stack(frame))


def _json_ready(value: Any) -> Any:
    """A handler's result must be JSON that Postgres accepts and of a bounded size; anything
    else fails the job at once, clearly (no NaN or Infinity, no NUL, no lone surrogate)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NonRetryableError(f"handler result is not JSON-serializable: {exc}") from exc
    if len(text) > limits.MAX_RESULT_CHARS:
        raise NonRetryableError(
            f"handler result is {len(text):,} characters of JSON; "
            f"at most {limits.MAX_RESULT_CHARS:,} are stored"
        )
    ready = json.loads(text)
    if reason := unstorable_json(ready):
        raise NonRetryableError(f"handler result contains {reason}, which jsonb refuses")
    return ready
