"""Run handlers on a fixed number of threads, with a hard per-attempt deadline.

Python cannot kill a thread, so a handler that overruns its timeout is *abandoned*: its
attempt is recorded as timed out at once, its cancellation flag is set (a cooperative handler
stops), and a fresh thread takes its slot. Whatever the abandoned thread returns later is
discarded. The runner thus stays at full capacity and a hung handler never holds a slot for
ever. A handler asked to stop (a cancel request, a lost lease) gets `cancel_grace_s` to
return, and is then abandoned the same way.

Abandoned threads that still run are *leaked*: `leaked()` counts them, so the runner can
have its process replaced before they pile up (common/runner/runner.py).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
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
from common.logs import job_fields
from common.models import unstorable_json
from common.records import ClaimedJob
from common.runner.invoke import InvokeFailed, Invoker, LocalInvoker, error_name
from common.runner.taskline import TaskLine

log = logging.getLogger("djs.executor")


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a JSON-ready result, or an error with its traceback."""

    job: ClaimedJob
    context: JobContext
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""


class JobCancelled(NonRetryableError):
    """The handler did not stop within cancel_grace_s of being asked to; its thread is
    abandoned. Postgres fails the job with reason `cancelled` (fail_jobs reads the flag)."""


@dataclass
class _Running:
    job: ClaimedJob
    context: JobContext
    thread: threading.Thread | None  # None until a worker thread picks it up
    stop_by: float | None = None  # asked to stop: abandoned at this time.monotonic()
    stop_why: str = ""  # "within 5 s of a cancel request"


class JobExecutor:
    """`size` worker threads; finished (or timed-out) attempts go to `on_outcome`."""

    def __init__(
        self,
        registry: HandlerRegistry,
        size: int,
        on_outcome: Callable[[Outcome], None],
        cancel_grace_s: float = 5.0,
        worker_id: str | None = None,
        invoker: Invoker | None = None,
    ) -> None:
        self.registry = registry
        # Bound once: the hot path calls it per job (common/runner/invoke.py).
        self._invoke = (invoker or LocalInvoker(registry)).invoke
        self.worker_id = worker_id  # for the log lines of its attempts
        self.size = size
        self.on_outcome = on_outcome
        self.cancel_grace_s = cancel_grace_s
        self._tasks = TaskLine()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._abandoned: list[threading.Thread] = []
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        # Not kept in a list: one that held every thread ever spawned grew with each
        # abandoned handler.
        threading.Thread(target=self._work, name="djs-job", daemon=True).start()

    def submit(self, job: ClaimedJob, max_timeout_s: float | None = None) -> JobContext:
        """Queue an attempt under the job's timeout (or its handler's), at most max_timeout_s
        (a Lambda function's time left)."""
        spec = self.registry.get(job.type)
        timeout_s = job.timeout_s or (spec.timeout_s if spec else DEFAULT_TIMEOUT_S)
        if max_timeout_s is not None:
            timeout_s = min(timeout_s, max_timeout_s)
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

    def request_stop(self, job_id: int, context: JobContext, why: str) -> None:
        """Ask this attempt's handler to stop. If it still runs cancel_grace_s after the first
        request, the watchdog abandons it: a handler that ignores the flag frees its slot."""
        context.cancel()
        with self._lock:
            running = self._running.get(job_id)
            if running is not None and running.context is context and running.stop_by is None:
                running.stop_by = time.monotonic() + self.cancel_grace_s
                running.stop_why = f"within {self.cancel_grace_s:g} s of {why}"

    def leaked(self) -> int:
        """Abandoned threads that still run their handler (Python cannot end them)."""
        if not self._abandoned:  # the claim loop asks every turn: no lock when none leaked
            return 0
        with self._lock:
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            return len(self._abandoned)

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
                if running.stop_by is not None:  # asked to stop while queued: a full grace
                    running.stop_by = max(running.stop_by, time.monotonic() + self.cancel_grace_s)
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
        event = {
            "job_id": job.id,
            "type": job.type,
            "queue": job.queue,
            "payload": job.payload,
            "attempt": job.attempt,
        }
        if log.isEnabledFor(logging.DEBUG):
            log.debug("attempt started", extra=job_fields(job, self.worker_id))
        started = time.monotonic()
        try:
            outcome = Outcome(job, context, result=_json_ready(self._invoke(job, event, context)))
        except InvokeFailed as failed:  # its traceback was made where the handler ran
            outcome = Outcome(job, context, error=failed.error, traceback=failed.traceback)
        except Exception as exc:
            outcome = Outcome(job, context, error=exc, traceback=traceback.format_exc())
        if log.isEnabledFor(logging.INFO):  # one line per attempt's outcome
            self._log_outcome(outcome, (time.monotonic() - started) * 1000)
        return outcome

    def _log_outcome(self, outcome: Outcome, duration_ms: float) -> None:
        fields = job_fields(outcome.job, self.worker_id)
        fields["duration_ms"] = round(duration_ms, 3)
        if outcome.error is None:
            log.info("attempt completed", extra=fields)
            return
        fields["error_type"] = error_name(outcome.error)
        fields["error"] = str(outcome.error)[: limits.MAX_ERROR_CHARS]
        log.info("attempt failed: %s", fields["error_type"], extra=fields)

    # --- the watchdog ----------------------------------------------------------------------

    def expire_overdue(self) -> int:
        """Abandon every attempt past its deadline (recorded as timed out) or past its grace
        to stop (recorded as cancelled); return how many."""
        now = time.monotonic()
        with self._lock:
            overdue = [r for r in self._running.values() if r.thread is not None and _due(r, now)]
            for r in overdue:
                del self._running[r.job.id]
            self._abandoned.extend(r.thread for r in overdue if r.thread is not None)
        for r in overdue:
            # The stack first: once cancelled, a cooperative handler returns, and the stack
            # would no longer say where it hung.
            timed_out = r.context.deadline <= now
            stack = _thread_stack(r.thread, "timed-out handler" if timed_out else "handler")
            r.context.cancel()
            self._spawn()
            error = _abandon_error(r, now)
            fields = job_fields(r.job, self.worker_id)
            fields.update(error_type=type(error).__name__, error=str(error))
            log.warning("job %d: %s; its thread is abandoned", r.job.id, error, extra=fields)
            self.on_outcome(Outcome(r.job, r.context, error=error, traceback=stack))
        return len(overdue)


def _due(running: _Running, now: float) -> bool:
    stop_by = running.stop_by
    return running.context.deadline <= now or (stop_by is not None and stop_by <= now)


def _abandon_error(running: _Running, now: float) -> Exception:
    """Why an attempt is abandoned: its timeout, or a request to stop it ignored."""
    attempt, context = running.job.attempt, running.context
    if context.deadline <= now:
        return JobTimeout(f"attempt {attempt} exceeded its {context.timeout_s:g} s timeout")
    return JobCancelled(f"attempt {attempt} did not stop {running.stop_why}")


def _thread_stack(thread: threading.Thread | None, what: str) -> str:
    """Where a hung handler is stuck: the most useful traceback its abandonment can carry."""
    frame = sys._current_frames().get(thread.ident or -1) if thread else None
    if frame is None:
        return "(the handler's thread had already finished)"
    return f"Stack of the {what}:\n" + "".join(traceback.format_stack(frame))


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
