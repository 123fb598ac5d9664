"""Settings, read once at start-up from the environment and passed explicitly."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import limits
from common.models import NAME_PATTERN
from common.redact import DEFAULT_SENSITIVE_FIELDS

# The levels DJS_LOG_LEVEL and --log-level take.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class Settings(BaseSettings):
    """Everything djs reads from the environment. Construct once; pass it on."""

    model_config = SettingsConfigDict(env_prefix="DJS_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/djs",
        validation_alias="DATABASE_URL",
    )
    # Or DATABASE_URL is read once at start-up from AWS (common/awssecrets.py; one source
    # only): an SSM SecureString's name or ARN, or a Secrets Manager secret's id, holding the
    # URL itself or an RDS credentials secret's JSON (username, password, host, port, dbname).
    database_url_ssm: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/-]{1,2048}$")
    database_url_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9/_+=.@:!-]{1,2048}$")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    # Every Redis key starts with this, so several deployments (or tests) share one server.
    redis_prefix: str = "djs"
    # REDIS_URL is a Redis Cluster (ElastiCache cluster mode: its configuration
    # endpoint): the clients follow MOVED/ASK; an idle runner polls across hash slots.
    redis_cluster: bool = False
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
    # How often a runner writes its row in the live registry (GET /workers); it is listed
    # while its last beat is at most two of these old.
    beat_interval_s: float = Field(
        default=5.0, ge=limits.MIN_BEAT_INTERVAL_S, le=limits.MAX_BEAT_INTERVAL_S
    )
    # How often a runner's janitor promotes due delayed jobs and enforces retention.
    janitor_interval_s: float = 1.0
    # How often the alert loop (runners and `djs api`) looks at the queues' alert hooks.
    alert_interval_s: float = Field(default=1.0, ge=0.05, le=60.0)
    # Alert URLs reach public addresses only; these hosts or networks (comma-separated) too.
    alert_allow: str = ""
    default_queue: str = "default"
    # One page of GET /jobs holds about this many bytes at most (and at least one job);
    # next_cursor goes on from where the budget ran out.
    list_max_bytes: int = Field(default=4 << 20, ge=1)
    # Requests per second an API key may make, by its role (a token bucket per key in Redis,
    # shared by every API process); a key's own rate overrides its role's. One API process
    # serves about 2,700 submissions a second: no default lets one key take all of it.
    rate_submitter: float = Field(default=500.0, gt=0)
    rate_viewer: float = Field(default=50.0, gt=0)
    rate_operator: float = Field(default=50.0, gt=0)
    rate_admin: float = Field(default=100.0, gt=0)
    # A key may burst this many seconds' worth of its rate at once.
    rate_burst_s: float = Field(default=2.0, gt=0)
    # Origins (`https://host[:port]`, comma-separated) a browser may call the API from, for
    # a dashboard hosted elsewhere; empty: same origin only, no CORS headers (api_app/cors.py).
    cors_origins: str = ""
    # The server-side pepper of API key hashes (HMAC-SHA256). The API refuses to start
    # without one; `djs dev` makes one and keeps it in its data dir. Changing it voids
    # every key.
    key_pepper: SecretStr | None = None
    # Or the pepper is read once at start-up from AWS (common/pepper.py; one source only):
    # an SSM Parameter Store SecureString's name or ARN, or a Secrets Manager secret's id.
    key_pepper_ssm: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/-]{1,2048}$")
    key_pepper_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9/_+=.@:!-]{1,2048}$")
    # How long an API process trusts a key it has verified before asking Postgres again:
    # a revoked key is refused within this long (at most 30 s, so within 60 s everywhere).
    key_cache_s: float = Field(default=30.0, ge=0, le=30)
    # How often an API process writes its keys' last use (one UPDATE for all of them).
    key_touch_interval_s: float = Field(default=30.0, gt=0)
    # Logging of the long-running commands (djs api, worker, dev): the least level shown,
    # and the format: `json` (one object per line) or `text` (for a human at a terminal).
    log_level: str = Field(default="info", pattern=rf"(?i)^({'|'.join(LOG_LEVELS)})$")
    log_format: str | None = Field(default=None, pattern=r"^(json|text)$")
    # Payload and result fields (comma-separated names, any case, at any depth) whose values
    # are shown as `[redacted]` in logs and in the API's job reads (common/redact.py).
    sensitive_fields: str = DEFAULT_SENSITIVE_FIELDS
    # `djs package`: the Python 3.12+ (chalice installed) that packages; Lambda's runtime
    # follows it. Empty: the build venv `make install` makes (.djs/package/venv).
    package_python: str = ""
    # How a runner calls handlers: `local` (in its own threads) or `lambda` (boto3
    # lambda.invoke of the deployed function `{lambda_function_prefix}{job type}`, the name
    # Chalice gives it: `{app_name}-{stage}-{name}`). `djs worker --invoke` overrides it.
    invoke: str = Field(default="local", pattern=r"^(local|lambda)$")
    lambda_function_prefix: str = Field(
        default="djs-worker-prod-", pattern=r"^[A-Za-z0-9_-]{0,63}$"
    )
    # How stored jobs reach their consumers: `redis` (runners poll it) or `sqs` (serverless:
    # Lambda consumes an SQS queue; no Redis, no runner; see common/dispatch/sqs.py).
    dispatch: Literal["redis", "sqs"] = "redis"
    # With DJS_DISPATCH=sqs: djs queue -> SQS queue URL, as JSON; "*" stands for every queue
    # not named: {"*": "https://sqs.us-east-1.amazonaws.com/123456789012/djs-jobs"}.
    sqs_queue_urls: dict[str, str] = Field(default_factory=dict)
    # The SQS queue NAME the worker app's consumer reads (Chalice needs it when the app is
    # defined); empty: the worker app has no SQS consumer.
    sqs_consume_queue: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,80}$")
    # Where the API's rate limits per key are kept: `redis` (token buckets shared by every API
    # process) or `off` (throttle at the edge instead: API Gateway's stage or usage-plan
    # limits). Unset: `redis`, except with DJS_DISPATCH=sqs, where no Redis need exist: `off`.
    rate_limit: Literal["redis", "off"] | None = None
    # With SQS, the reconciler cannot ask what the queue holds: it sends again every waiting
    # job untouched for this long (a duplicate is refused by the guarded claim).
    sqs_resend_after_s: float = Field(default=300.0, ge=1.0, le=86_400.0)

    @field_validator("sqs_queue_urls")
    @classmethod
    def _check_queue_urls(cls, urls: dict[str, str]) -> dict[str, str]:
        if len(urls) > limits.MAX_SQS_QUEUE_URLS:
            raise ValueError(f"at most {limits.MAX_SQS_QUEUE_URLS} SQS queue URLs")
        for queue, url in urls.items():
            if queue != "*" and not re.fullmatch(NAME_PATTERN, queue):
                raise ValueError(f"{queue!r} is not a queue name (nor '*')")
            if not re.fullmatch(r"https?://[^\s/]+/[^\s]{1,400}", url):
                raise ValueError(f"the SQS queue URL of {queue!r} is not an http(s) URL")
            if url.endswith(".fifo"):  # FIFO queues take no per-message DelaySeconds
                raise ValueError(f"the SQS queue of {queue!r} is a FIFO queue: use a standard one")
        return urls

    def rate_limited(self) -> bool:
        """Whether the API keeps rate limits per key in Redis (DJS_RATE_LIMIT)."""
        return (self.rate_limit or ("off" if self.dispatch == "sqs" else "redis")) == "redis"

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_has_database_0_only(cls, cluster: bool, info: ValidationInfo) -> bool:
        # Else the cluster client refuses it on first use, which would read "Redis is down".
        # A field validator: its error shows this field's input only, not REDIS_URL's secret.
        url = urlsplit(str(info.data.get("redis_url", "")))
        dbs = {url.path.strip("/") or "0", *parse_qs(url.query).get("db", [])}
        if cluster and dbs != {"0"}:
            raise ValueError("a Redis Cluster has database 0 only; REDIS_URL names another")
        return cluster

    def alert_allowed(self) -> list[str]:
        """DJS_ALERT_ALLOW as a list of hosts and networks."""
        return [entry.strip() for entry in self.alert_allow.split(",") if entry.strip()]
