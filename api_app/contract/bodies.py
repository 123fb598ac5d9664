"""The shapes of the API's answers that are not a common.models model of their own.

Closed (`additionalProperties: false`): a route that starts answering a field these do not
name fails the response-schema checks (tests/test_openapi.py, tests/test_schemathesis.py),
so the document cannot quietly fall behind the routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.models import JobOut, JobStatus, Retention


class _Closed(BaseModel):
    # Every field is always in the answer, defaults or not.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class ErrorDetail(_Closed):
    code: str = Field(description="Stable, snake_case: `not_found`, `validation_error`, ...")
    message: str
    details: Any = Field(description="Field paths for a 422, the state found for a 409, ...")


class ErrorBody(_Closed):
    """Every error the API answers (api_app/errors.py, api_app/wsgi.py)."""

    error: ErrorDetail


class SubmittedJob(JobOut):
    model_config = ConfigDict(extra="forbid")

    created: bool = Field(description="False: an idempotent replay of an earlier submission.")
    dispatched: bool = Field(description="False: Redis was down; the reconciler pushes it.")


class SubmittedBatch(_Closed):
    jobs: list[SubmittedJob]
    created: int


class JobPage(_Closed):
    jobs: list[JobOut]
    next_cursor: int | None = Field(description="Pass back as `cursor` for the next page.")


class RemovedJob(_Closed):
    removed: int = Field(description="The id of the job removed.")


class Retried(_Closed):
    retried: int
    ids: list[int]


class Promoted(_Closed):
    promoted: int
    ids: list[int]


class Removed(_Closed):
    removed: int
    ids: list[int]


class Cancelled(_Closed):
    cancelled: int
    ids: list[int]
    cancel_requested: list[int] = Field(description="Active jobs asked to stop.")


class Redriven(_Closed):
    retried: int
    ids: list[int]
    next_cursor: int | None
    remaining: int
    more: bool


class QueueRow(_Closed):
    name: str
    paused: bool
    remove_on_complete: Retention | None
    remove_on_fail: Retention | None


class QueueOut(QueueRow):
    counts: dict[JobStatus, int] = Field(description="Exact: equal to count(*) per state.")
    runners: int = Field(description="Live runners serving it (GET /workers), of every queue too.")
    oldest_waiting_s: float | None = Field(
        description="Seconds since the oldest pending job (the lowest id) was due; null when "
        "none waits, and for a submitter key."
    )


class MinuteOutcomes(_Closed):
    minute: datetime = Field(description="The minute's start.")
    completed: int
    failed: int


class Percentiles(_Closed):
    p50: float | None = Field(description="null when samples is 0.")
    p95: float | None
    p99: float | None
    samples: int


class QueueStats(_Closed):
    name: str
    per_minute: list[MinuteOutcomes] = Field(
        description="60 entries, oldest first, zero-filled; the last is the current minute."
    )
    wait_ms: Percentiles = Field(
        description="First attempts started in the window: start - due (run_at or created_at)."
    )
    run_ms: Percentiles = Field(description="Attempts finished in the window: finish - start.")
    oldest_waiting_s: float | None


class Stats(_Closed):
    generated_at: datetime
    minutes: int
    latency_window_s: int
    queues: list[QueueStats]


class QueueList(_Closed):
    queues: list[QueueOut]


class Paused(_Closed):
    name: str
    paused: bool


class Cleaned(_Closed):
    removed: int


class WorkerOut(_Closed):
    """A live runner: its last beat is at most two of its intervals old."""

    id: str = Field(description="The worker name it writes into each job's `worker`.")
    host: str
    pid: int
    queues: list[str] = Field(description="The queues it serves; empty: every queue.")
    concurrency: int
    in_hand: int = Field(description="Jobs it held at its last beat.")
    started_at: datetime = Field(description="When it first reached Postgres.")
    last_beat: datetime
    beat_interval_s: float
    version: str = Field(description="The djs version it runs.")


class WorkerList(_Closed):
    workers: list[WorkerOut] = Field(description="Oldest first.")


class Health(_Closed):
    status: Literal["ok"]
    checks: dict[str, Literal["ok"]]


class Ready(_Closed):
    status: Literal["ok"]
    checks: dict[str, Literal["ok"]] = Field(description="postgres, redis and migrations.")


class OpenApiDocument(BaseModel):
    """This document (GET /openapi.json)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class AlertRow(_Closed):
    url: str
    lag_threshold_s: float | None
    min_interval_s: float


class QueueAlert(_Closed):
    queue: str
    alert: AlertRow | None = Field(description="None: the queue has no alert hook.")


class AlertRemoved(_Closed):
    queue: str
    removed: bool
