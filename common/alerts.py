"""A queue's alert hook settings (PUT /queues/{name}/alerts), checked at the edge."""

from __future__ import annotations

import urllib.parse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common import limits

ALERT_KINDS = ("failed", "schedule_lag", "no_runners")


class AlertSettings(BaseModel):
    """Where a queue's alerts go and how often at most."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=limits.MAX_ALERT_URL_CHARS)
    # schedule_lag fires once the oldest due waiting job is older than this; None: never.
    lag_threshold_s: float | None = Field(default=None, gt=0, le=limits.MAX_ALERT_LAG_S)
    min_interval_s: float = Field(
        default=60.0, ge=limits.MIN_ALERT_INTERVAL_S, le=limits.MAX_ALERT_INTERVAL_S
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as exc:
            raise ValueError("has a bad port") from exc
        return value
