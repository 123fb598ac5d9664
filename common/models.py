"""Request and response models shared by the API, the CLI and the runner."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

JobStatus = Literal["pending", "delayed", "active", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FailReason = Literal["exhausted", "non_retryable", "timeout", "stalled", "cancelled"]

# Queue and type names end up in Redis keys and URLs: keep them plain.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
MAX_BATCH = 1000


def unstorable_json(value: Any) -> str | None:
    """Why Postgres's jsonb would refuse this JSON value, or None: it has no NaN or Infinity,
    and no NUL character in any string."""
    if isinstance(value, str):
        return "the NUL character (\\u0000)" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value} (JSON has no NaN or Infinity)"
    if isinstance(value, dict):
        items: Any = (x for pair in value.items() for x in pair)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    return next((reason for item in items if (reason := unstorable_json(item))), None)


class Backoff(BaseModel):
    """How long to wait before attempt n+1 (see common/lifecycle.py)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["exponential", "fixed"] = "exponential"
    delay_ms: int = Field(default=1000, ge=0, le=7 * 24 * 3600 * 1000)
    max_delay_ms: int | None = Field(default=None, ge=0)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)


class JobSubmission(BaseModel):
    """The body of `POST /jobs`, and each item of `POST /jobs/batch`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=NAME_PATTERN, description="The handler that runs the job.")
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", pattern=NAME_PATTERN)
    priority: int = Field(default=0, ge=0, le=1000, description="Higher runs first.")
    attempts: int = Field(default=3, ge=1, le=100, description="Maximum attempts.")
    backoff: Backoff = Field(default_factory=Backoff)
    delay_ms: int | None = Field(default=None, ge=0, le=365 * 24 * 3600 * 1000)
    run_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with a time zone.")
    timeout_s: float | None = Field(default=None, gt=0, le=24 * 3600)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("payload")
    @classmethod
    def _storable(cls, payload: dict[str, Any]) -> dict[str, Any]:
        # Said here (422 on this job), not by Postgres failing a group commit shared with
        # other requests.
        if reason := unstorable_json(payload):
            raise ValueError(f"payload contains {reason}, which Postgres cannot store")
        return payload

    @field_validator("idempotency_key")
    @classmethod
    def _no_nul(cls, key: str | None) -> str | None:
        if key and "\x00" in key:
            raise ValueError("idempotency_key contains the NUL character, which Postgres refuses")
        return key

    @model_validator(mode="after")
    def _one_delay(self) -> JobSubmission:
        if self.delay_ms is not None and self.run_at is not None:
            raise ValueError("give delay_ms or run_at, not both")
        return self

    def due_at(self, now: datetime | None = None) -> datetime | None:
        """When the job may first run; None means now."""
        if self.run_at is not None:
            return self.run_at
        if self.delay_ms:
            return (now or datetime.now(UTC)) + timedelta(milliseconds=self.delay_ms)
        return None

    def request_hash(self) -> str:
        """Fingerprint of what was asked for, to tell an idempotent replay from a new body."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class BatchSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmission] = Field(min_length=1, max_length=MAX_BATCH)


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None
    logs: list[str]
    progress: float | None


class EventOut(BaseModel):
    at: datetime
    from_status: JobStatus | None
    to_status: JobStatus
    cause: str


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: int
    queue: str
    type: str
    payload: dict[str, Any]
    status: JobStatus
    fail_reason: FailReason | None
    priority: int
    attempts_made: int = Field(description="Attempts of the current budget (since the last retry).")
    attempts_total: int = Field(description="Every attempt started, across retries.")
    max_attempts: int
    backoff: dict[str, Any]
    timeout_s: float | None
    run_at: datetime | None
    worker: str | None
    result: Any
    last_error: str | None
    progress: float | None
    cancel_requested: bool
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetail(JobOut):
    history: list[AttemptOut]
    events: list[EventOut]


class JobFilter(BaseModel):
    """Which jobs a list or a bulk operation applies to."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    queue: str | None = Field(default=None, pattern=NAME_PATTERN)
    type: str | None = Field(default=None, pattern=NAME_PATTERN)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    ids: list[int] | None = Field(default=None, max_length=MAX_BATCH)


class ListQuery(JobFilter):
    """Query string of `GET /jobs`."""

    limit: int = Field(default=50, ge=1, le=500)
    cursor: int | None = Field(default=None, ge=1)


class Retention(BaseModel):
    """Keep finished jobs at most this old and/or this many (newest first)."""

    model_config = ConfigDict(extra="forbid")

    age_s: int | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=0)


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None


class CleanRequest(BaseModel):
    """Remove finished jobs of one queue older than an age, or beyond the newest N."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["completed", "failed", "cancelled"]
    age_s: int | None = Field(default=None, ge=0)
    keep: int | None = Field(default=None, ge=0)
    limit: int = Field(default=10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _age_or_keep(self) -> CleanRequest:
        if self.age_s is None and self.keep is None:
            raise ValueError("give age_s or keep")
        return self


class RedriveRequest(BaseModel):
    """Retry up to `limit` failed jobs matching a filter, in id order after `cursor`."""

    model_config = ConfigDict(extra="forbid")

    filter: JobFilter = Field(default_factory=JobFilter)
    limit: int = Field(default=100, ge=1, le=MAX_BATCH)
    cursor: int | None = Field(default=None, ge=0, description="next_cursor of the last answer")


class BulkRequest(BaseModel):
    """A bulk admin operation: which jobs (a non-empty filter) and at most how many."""

    model_config = ConfigDict(extra="forbid")

    filter: JobFilter
    limit: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _filter_names_something(self) -> BulkRequest:
        if not self.filter.model_dump(exclude_none=True):
            raise ValueError("filter must name at least one of ids, queue, type, status, created_*")
        return self
