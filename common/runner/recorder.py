"""The runner's recorder: attempts' outcomes, written to Postgres in batches, never dropped."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence

from common import limits, metrics
from common.errors import DependencyDown
from common.manager import JobManager
from common.reconnect import ReconnectBackoff
from common.records import Completion, Failure, Recorded
from common.runner import lifecycle
from common.runner.executor import Outcome
from common.runner.health import Pulse
from common.runner.invoke import error_name

log = logging.getLogger("djs.runner")

_RECORD_BATCH = 500
_IDLE_BEAT_S = 1.0  # an idle recorder still beats its pulse this often


class Recorder:
    """Takes outcomes from the job threads; one thread writes them, up to 500 per batch."""

    def __init__(
        self, manager: JobManager, on_recorded: Callable[[int], None], worker: str | None = None
    ) -> None:
        self.manager = manager
        self.worker = worker  # named in the log lines of the jobs it quarantines
        self.on_recorded = on_recorded
        self._outcomes: queue.Queue[Outcome | None] = queue.Queue()
        self.pulse = Pulse(_IDLE_BEAT_S)

    def put(self, outcome: Outcome) -> None:
        job = outcome.job
        duration = metrics.ATTEMPT_DURATION.labels(*metrics.job_labels(job.queue, job.type))
        duration.observe(time.monotonic() - job.claimed_at)
        self._outcomes.put(outcome)

    def finish(self) -> None:
        """Record what is queued, then end run()."""
        self._outcomes.put(None)

    def run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._record(batch)

    def _next_batch(self) -> list[Outcome] | None:
        while True:
            self.pulse.beat()
            try:
                first = self._outcomes.get(timeout=_IDLE_BEAT_S)
            except queue.Empty:
                continue
            break
        if first is None:
            return None
        batch = [first]
        while len(batch) < _RECORD_BATCH:
            try:
                more = self._outcomes.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._outcomes.put(None)  # keep the sentinel for the next turn
                break
            batch.append(more)
        return batch

    def _record(self, batch: list[Outcome]) -> None:
        try:
            self._persist(batch)
        except Exception:  # one outcome Postgres refuses must not stop the others
            log.exception(
                "a batch of %d outcomes was refused; recording them one by one", len(batch)
            )
            for outcome in batch:
                self._record_alone(outcome)
        try:
            self.manager.settle([o.job for o in batch])
        except Exception:  # the dispatcher's active entries expire on their own
            log.exception("recorded %d outcomes; could not acknowledge them", len(batch))
        self.on_recorded(len(batch))

    def _record_alone(self, outcome: Outcome) -> None:
        try:
            self._persist([outcome])
        except Exception as exc:
            self.manager.quarantine(outcome.job, exc, self.worker)

    def _persist(self, batch: list[Outcome]) -> None:
        """Write outcomes to Postgres, waiting out an outage: an outcome is never dropped.

        While Postgres is down the leases run out; if it stays down past them, the janitor
        recovers the jobs and these writes are refused by their fence, as they must be.
        """
        backoff = ReconnectBackoff()
        while True:
            try:
                recorded = record_outcomes(self.manager, batch)
                break
            except DependencyDown as exc:
                self.pulse.beat()  # waiting out an outage is progress; a hang is not
                delay = backoff.next_delay()
                log.warning("cannot record outcomes: %s; retrying in %.2f s", exc.message, delay)
                time.sleep(delay)
        if recorded.stale:
            log.warning(
                "%d outcomes refused by their lease fence (job no longer ours)", recorded.stale
            )


def record_outcomes(manager: JobManager, batch: Sequence[Outcome]) -> Recorded:
    """Write attempts' outcomes once, as every consumer does (this recorder, the SQS
    consumer): a return is a Completion, an error a Failure with the lifecycle rules'
    decision (retry and its backoff, or fail for a reason). DependencyDown if Postgres is
    down; whatever else Postgres refuses raises too (quarantine the outcome)."""
    completions = [_completion(o) for o in batch if o.error is None]
    failures = [_failure(o) for o in batch if o.error is not None]
    recorded = manager.record(completions, failures)
    _count(batch, recorded)
    return recorded


def _count(batch: Sequence[Outcome], recorded: Recorded) -> None:
    """Completions and retries that applied, for the metrics (the manager counts failures:
    the janitor fails jobs too)."""
    retried = {d.id for d in recorded.failed if d.status != "failed"}
    for outcome in batch:
        job = outcome.job
        if job.id in recorded.completed:
            metrics.COMPLETED.labels(*metrics.job_labels(job.queue, job.type)).inc()
        elif job.id in retried:
            metrics.RETRIED.labels(*metrics.job_labels(job.queue, job.type)).inc()


def _text(value: str, limit: int = limits.MAX_ERROR_CHARS) -> str:
    """Storable and bounded: Postgres text holds no NUL or lone surrogate, and a 1 MB error
    message times 20 attempts made a 42 MB job."""
    if len(value) > limit:
        value = f"{value[:limit]}... [{len(value) - limit:,} more characters not stored]"
    text = value.replace("\x00", "\\x00")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


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
        error_type=error_name(error),
        message=_text(str(error)),
        traceback=_text(outcome.traceback, limits.MAX_TRACEBACK_CHARS),
        retry_in_ms=decision.retry_in_ms,
        reason=decision.reason,
        logs=[_text(line) for line in ctx.logs],
        progress=ctx.progress_pct,
    )
