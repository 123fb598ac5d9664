"""Request and response models shared by the API, the CLI and the runner."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from annotated_types import Interval
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    field_validator,
    model_validator,
)

from common import limits

JobStatus = Literal["pending", "delayed", "active", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FailReason = Literal[
    "exhausted", "non_retryable", "timeout", "stalled", "cancelled", "invalid_record"
]

# Queue and type names end up in Redis keys and URLs: keep them plain.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
MAX_BATCH = limits.MAX_BATCH
# Body numbers are strict: `true` and `5.0` are not integers, `true` is not a number.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Id = Annotated[Int, Interval(ge=1, le=limits.BIGINT)]


def _decimal(value: Any) -> Any:
    # A query string's integer is its decimal digits: int() would also take "5.0", " 5", "+5"
    # and "5_0", and thousands of digits slowly.
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError("must be a whole number in decimal digits")
        return int(value)
    return value


# An integer from the query string (or given as an int from Python): strict after parsing.
QueryInt = Annotated[Int, BeforeValidator(_decimal)]
QueryId = Annotated[Id, BeforeValidator(_decimal)]  # the parser outermost: bounds in the schema

# RFC 3339, the document's `date-time`: pydantic alone would also read a number, or digits,
# as Unix seconds, and take a space for the T or a time without seconds.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with a time zone, e.g. 2026-01-31T12:00:00Z")
    if not isinstance(value, str | datetime):
        raise ValueError("must be a time as text, e.g. 2026-01-31T12:00:00Z")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def unstorable_json(value: Any) -> str | None:
    """Why a JSON value cannot be stored (common/limits.py), or None."""
    return limits.json_problem(value)


def _check_time(when: datetime | None, window: timedelta | None) -> datetime | None:
    if when is not None and (reason := limits.time_problem(when, window)):
        raise ValueError(reason)
    return when


class Backoff(BaseModel):
    """How long to wait before attempt n+1 (see common/lifecycle.py)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["exponential", "fixed"] = "exponential"
    delay_ms: Int = Field(default=1000, ge=0, le=limits.MAX_BACKOFF_MS)
    max_delay_ms: Int | None = Field(default=None, ge=0, le=limits.MAX_BACKOFF_MS)
    jitter: Float = Field(default=0.0, ge=0.0, le=1.0)


class JobSubmission(BaseModel):
    """The body of `POST /jobs`, and each item of `POST /jobs/batch`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=NAME_PATTERN, description="The handler that runs the job.")
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", pattern=NAME_PATTERN)
    priority: Int = Field(default=0, ge=0, le=1000, description="Higher runs first.")
    attempts: Int = Field(default=3, ge=1, le=100, description="Maximum attempts.")
    backoff: Backoff = Field(default_factory=Backoff)
    delay_ms: Int | None = Field(default=None, ge=0, le=365 * 24 * 3600 * 1000)
    run_at: Time | None = Field(default=None, description="RFC 3339, with a time zone.")
    timeout_s: Float | None = Field(default=None, gt=0, le=24 * 3600)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    # The API key that submits the job: set by the API from its caller, never from a body.
    _owner_key_id: int | None = PrivateAttr(default=None)

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
    def _storable_key(cls, key: str | None) -> str | None:
        if key and (reason := limits.text_problem(key)):
            raise ValueError(f"idempotency_key contains {reason}, which Postgres cannot store")
        return key

    @field_validator("run_at")
    @classmethod
    def _sane_run_at(cls, when: datetime | None) -> datetime | None:
        return _check_time(when, limits.TIME_WINDOW)

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

    @property
    def owner_key_id(self) -> int | None:
        return self._owner_key_id

    def owned_by(self, key_id: int) -> JobSubmission:
        self._owner_key_id = key_id
        return self

    def request_hash(self) -> str:
        """Fingerprint of what was asked for, to tell an idempotent replay from a new body.
        The owner is part of it: another key's replay is a conflict, never the first job."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        if self._owner_key_id is not None:
            body["owner_key_id"] = self._owner_key_id
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class BatchSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmission] = Field(min_length=1, max_length=MAX_BATCH)


class AttemptOut(BaseModel):
    attempt: int
    worker: str | None = Field(description="null for a submitter key: viewers see workers.")
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None = Field(description="null for a submitter key: viewers see it.")
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
    history: list[AttemptOut] = Field(
        description=f"The newest {limits.MAX_HISTORY} attempts, oldest first "
        "(attempts_total counts them all)."
    )
    events: list[EventOut] = Field(
        description=f"The newest {limits.MAX_EVENTS} events, oldest first."
    )
    events_total: int = Field(description="Every event of the job.")


class JobFilter(BaseModel):
    """Which jobs a list or a bulk operation applies to."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    queue: str | None = Field(default=None, pattern=NAME_PATTERN)
    type: str | None = Field(default=None, pattern=NAME_PATTERN)
    created_after: Time | None = None
    created_before: Time | None = None
    ids: list[Id] | None = Field(default=None, max_length=MAX_BATCH)

    @field_validator("created_after", "created_before")
    @classmethod
    def _sane_time(cls, when: datetime | None) -> datetime | None:
        return _check_time(when, window=None)


ListSort = Literal["newest", "oldest", "priority"]


def _search_text(text: str | None) -> str | None:
    if text is not None and (reason := limits.text_problem(text)):
        raise ValueError(f"contains {reason}")
    return text


class ListQuery(JobFilter):
    """Query string of `GET /jobs`."""

    ids: list[QueryId] | None = Field(default=None, max_length=MAX_BATCH)
    limit: QueryInt = Field(default=50, ge=1, le=500)
    cursor: QueryId | None = Field(
        default=None, description="next_cursor of the previous page, with the same parameters."
    )
    sort: ListSort = Field(
        default="newest", description="newest or oldest first, or highest priority then oldest."
    )
    payload: str | None = Field(
        default=None,
        min_length=2,
        max_length=limits.MAX_SEARCH_FRAGMENT,
        description="A JSON object as text: jobs whose payload contains it (`payload @> ...`).",
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_SEARCH_TEXT,
        description="Text in the payload's JSON, any case; looks at "
        f"{limits.TEXT_SCAN:,} jobs per page (next_cursor goes on).",
    )
    error: str | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_SEARCH_TEXT,
        description="Text in the job's last error, any case.",
    )

    @field_validator("payload")
    @classmethod
    def _fragment(cls, text: str | None) -> str | None:
        if text is not None:
            fragment = _json_object(text)
            if reason := limits.json_problem(fragment):
                raise ValueError(f"contains {reason}")
        return text

    @field_validator("text", "error")
    @classmethod
    def _storable_text(cls, text: str | None) -> str | None:
        return _search_text(text)

    def payload_fragment(self) -> dict[str, Any] | None:
        return None if self.payload is None else _json_object(self.payload)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError('must be a JSON object, e.g. {"order_id": 7}') from exc
    except RecursionError as exc:  # thousands of levels: refused before any walk
        raise ValueError(f"nesting deeper than {limits.MAX_JSON_DEPTH} levels") from exc
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object, e.g. {"order_id": 7}')
    return value


class StatsQuery(BaseModel):
    """Query string of `GET /stats`."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, pattern=NAME_PATTERN)


class Retention(BaseModel):
    """Keep finished jobs at most this old and/or this many (newest first)."""

    model_config = ConfigDict(extra="forbid")

    age_s: Int | None = Field(default=None, ge=0, le=limits.MAX_AGE_S)
    count: Int | None = Field(default=None, ge=0, le=limits.MAX_KEEP)


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None


class CleanRequest(BaseModel):
    """Remove finished jobs of one queue older than an age, or beyond the newest N."""

    # `_age_or_keep`, said in the schema too, so a client (or a fuzzer) can read it there.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "integer"}}}
                for name in ("age_s", "keep")
            ]
        },
    )

    status: Literal["completed", "failed", "cancelled"]
    age_s: Int | None = Field(default=None, ge=0, le=limits.MAX_AGE_S)
    keep: Int | None = Field(default=None, ge=0, le=limits.MAX_KEEP)
    limit: Int = Field(default=10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _age_or_keep(self) -> CleanRequest:
        if self.age_s is None and self.keep is None:
            raise ValueError("give age_s or keep")
        return self


class RedriveRequest(BaseModel):
    """Retry up to `limit` failed jobs matching a filter, in id order after `cursor`."""

    model_config = ConfigDict(extra="forbid")

    filter: JobFilter = Field(default_factory=JobFilter)
    limit: Int = Field(default=100, ge=1, le=MAX_BATCH)
    cursor: Int | None = Field(
        default=None, ge=0, le=limits.BIGINT, description="next_cursor of the last answer"
    )


class BulkRequest(BaseModel):
    """A bulk admin operation: which jobs (a non-empty filter) and at most how many."""

    model_config = ConfigDict(extra="forbid")

    filter: JobFilter
    limit: Int = Field(default=1000, ge=1, le=limits.MAX_BULK)

    @model_validator(mode="after")
    def _filter_names_something(self) -> BulkRequest:
        if not self.filter.model_dump(exclude_none=True):
            raise ValueError("filter must name at least one of ids, queue, type, status, created_*")
        return self
