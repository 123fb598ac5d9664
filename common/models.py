"""Request and response models shared by the API, the CLI and the runner."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "delayed", "active", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = ("pending", "delayed", "active", "completed", "failed", "cancelled")

# Queue and type names end up in Redis keys and URLs: keep them plain.
_NAME = r"^[A-Za-z0-9_.:-]{1,100}$"


class JobSubmission(BaseModel):
    """The body of `POST /jobs`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=_NAME, description="The handler that runs the job.")
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", pattern=_NAME)
    priority: int = Field(default=0, ge=0, le=1000, description="Higher runs first.")
    attempts: int = Field(default=3, ge=1, le=100, description="Maximum attempts.")


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


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: int
    queue: str
    type: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int
    attempts_made: int
    max_attempts: int
    run_at: datetime | None
    worker: str | None
    result: Any
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetail(JobOut):
    history: list[AttemptOut]


class ListQuery(BaseModel):
    """Query string of `GET /jobs`."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    queue: str | None = Field(default=None, pattern=_NAME)
    type: str | None = Field(default=None, pattern=_NAME)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: int | None = Field(default=None, ge=1)
