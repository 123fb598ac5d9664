"""The records that cross layers: what the store returns, what the dispatcher pushes and pops,
and what the runner reports. One home, so that no layer imports another for a dataclass."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_ms(when: datetime) -> int:
    """A due time as integer milliseconds since the epoch, rounded **up**.

    Both the Redis push and the NOTIFY payload use this: Redis must never promote a job
    before Postgres's run_at, or the claim is refused and the job waits for the upkeep.
    Integer arithmetic, because float milliseconds of a datetime can land either side.
    """
    delta = when - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000)


def from_due_ms(ms: int) -> datetime:
    """The inverse of due_ms, exact: due_ms(from_due_ms(ms)) == ms."""
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class Ready:
    """A job to push: ready now when due is None, else at that time."""

    id: int
    queue: str
    priority: int
    due: datetime | None = None
    # A job whose runners keep dying while running it may be what kills them: it waits in
    # the queue's suspect set and runs alone on an idle runner, so it cannot take others
    # down with it.
    suspect: bool = False

    @property
    def due_ms(self) -> int:
        """0 when ready now, else the due time (see due_ms)."""
        return 0 if self.due is None else due_ms(self.due)


@dataclass(frozen=True)
class Dispatch:
    """A job's row as far as dispatch cares, after a guarded statement moved it."""

    id: int
    queue: str
    priority: int
    status: str
    run_at: datetime | None
    suspect: bool = False  # stalled often enough to run alone (see recover_stalled)
    # What fail_jobs and recover_stalled also return, for the metrics (common/metrics.py).
    type: str | None = None
    fail_reason: str | None = None


def ready_again(dispatches: list[Dispatch]) -> list[Ready]:
    """The pushes that put these jobs back in line: now, or at their run_at."""
    return [
        Ready(d.id, d.queue, d.priority, d.run_at if d.status == "delayed" else None, d.suspect)
        for d in dispatches
        if d.status in ("pending", "delayed")
    ]


@dataclass(frozen=True)
class Claimed:
    """What a dispatcher's claim popped from one queue."""

    ids: list[int]
    next_due_in_ms: int | None  # how soon the next delayed job falls due, if there is one
    isolated: bool = False  # ids is one suspect job, to be run alone
    suspect_waiting: bool = False  # a suspect job waits for this runner to fall idle


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
    # A first attempt's wait from its run-at (or submission) to this claim (claim_jobs).
    waited_ms: float | None = None
    # When this process got the claim back, for the attempt duration metric.
    claimed_at: float = field(default_factory=time.monotonic)

    @property
    def attempts_left(self) -> int:
        """Attempts that remain in this job's budget after the current one."""
        return self.max_attempts - (self.attempt - self.attempt_offset)

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.lease_token)


@dataclass(frozen=True)
class Lease:
    """The fence a runner holds on an active job."""

    job_id: int
    token: UUID


@dataclass(frozen=True)
class Completion:
    """An attempt that returned: its result, log lines and last progress."""

    job_id: int
    token: UUID
    result: Any
    logs: list[str] = field(default_factory=list)
    progress: float | None = None


@dataclass(frozen=True)
class Failure:
    """An attempt that raised, with the lifecycle rules' decision about what comes next."""

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
class Recorded:
    """What recording a batch of outcomes did: the completions and failures that applied."""

    completed: set[int]
    failed: list[Dispatch]  # with their new status: failed, pending or delayed
    stale: int  # outcomes their lease fence refused
