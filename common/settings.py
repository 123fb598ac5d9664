"""Settings, read once at start-up from the environment and passed explicitly."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything djs reads from the environment. Construct once; pass it on."""

    model_config = SettingsConfigDict(env_prefix="DJS_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/djs",
        validation_alias="DATABASE_URL",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    # Every Redis key starts with this, so several deployments (or tests) share one server.
    redis_prefix: str = "djs"
    db_pool_min: int = 1
    db_pool_max: int = 10
    # How long a runner blocks on Redis for new work before looking again.
    poll_interval_s: float = 1.0
    # A pending job that has sat this long is pushed to Redis again (lost push, Redis flush).
    reconcile_after_s: float = 5.0
    reconcile_batch: int = 500
    # A claim's lease; the heartbeat renews it every min(1 s, lease/3). A runner silent for
    # this long has stalled and its jobs go back to pending.
    lease_s: float = 30.0
    # On SIGTERM, jobs in flight get this long to finish before their leases are released.
    grace_s: float = 25.0
    # How often a runner's janitor promotes due delayed jobs and enforces retention.
    janitor_interval_s: float = 1.0
    default_queue: str = "default"
    # One page of GET /jobs holds about this many bytes at most (and at least one job);
    # next_cursor goes on from where the budget ran out.
    list_max_bytes: int = Field(default=4 << 20, ge=1)
