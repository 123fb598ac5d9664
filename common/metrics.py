"""Prometheus metrics: the counters and histograms djs processes keep, and their exposition.

The metrics are module-level, as prometheus_client means them to be: one registry per
process, incremented from the runner, the upkeep, the manager and the API without passing an
object through every layer. What is read from Postgres (depth, lag, runners up) is not kept
here: a collector computes it at scrape time (common/metrics_queues.py).

Label values that come from users (queue and job type names) are bounded: a process keeps at
most MAX_METRIC_LABEL_SETS distinct (queue, type) pairs and folds the rest into `other`, so a
client that submits a million queue names cannot grow a scraper's or a runner's memory.

`djs api --processes N` serves from N processes; it sets PROMETHEUS_MULTIPROC_DIR before they
start (djs_cli/http_front.py), so each writes its values to files there and any process's
GET /metrics sums them all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from common import limits

if TYPE_CHECKING:
    from common.records import Dispatch

OTHER = "other"
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class LabelCap:
    """The first `limit` distinct label tuples pass as they are; later ones become `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def __call__(self, *values: str) -> tuple[str, ...]:
        if values in self._seen:  # the hot path: a set lookup, no lock
            return values
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(values)
                return values
        return (OTHER,) * len(values)


JOB_LABELS = LabelCap(limits.MAX_METRIC_LABEL_SETS)
QUEUE_LABELS = LabelCap(limits.MAX_METRIC_LABEL_SETS)

# Attempts run from milliseconds to hours (a job's timeout is bounded by limits).
_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)
# From a ready job popped at once to a backlog hours deep.
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)

SUBMITTED = Counter(
    "djs_jobs_submitted",
    "Jobs created by a submission (a duplicate unique key is not counted).",
    ["queue", "type"],
)
COMPLETED = Counter("djs_jobs_completed", "Jobs that completed.", ["queue", "type"])
FAILED = Counter(
    "djs_jobs_failed", "Jobs that landed in failed, by fail reason.", ["queue", "type", "reason"]
)
RETRIED = Counter(
    "djs_jobs_retried", "Failed attempts followed by another attempt.", ["queue", "type"]
)
ATTEMPT_DURATION = Histogram(
    "djs_attempt_duration_seconds",
    "Wall time of an attempt, from its claim to its outcome, as recorded.",
    ["queue", "type"],
    buckets=_DURATION_BUCKETS,
)
SCHEDULE_LAG = Histogram(
    "djs_schedule_lag_seconds",
    "From a job's run-at (or its submission) to the start of its first attempt.",
    ["queue"],
    buckets=_LAG_BUCKETS,
)
LEASES_EXPIRED = Counter(
    "djs_leases_expired", "Active jobs whose lease expired, recovered by the janitor.", ["queue"]
)
RECONCILER_PUSHES = Counter(
    "djs_reconciler_pushes", "Jobs Redis had lost that the reconciler pushed again.", ["queue"]
)
HTTP_REQUESTS = Counter(
    "djs_http_requests",
    "API requests answered, by method, route (its template) and status.",
    ["method", "route", "status"],
)


def job_labels(queue: str, job_type: str) -> tuple[str, ...]:
    return JOB_LABELS(queue, job_type)


def queue_label(queue: str) -> str:
    return QUEUE_LABELS(queue)[0]


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def count_pushes(queues: Iterable[str]) -> None:
    for queue in queues:
        RECONCILER_PUSHES.labels(queue_label(queue)).inc()


def count_failures(moved: Iterable[Dispatch]) -> None:
    """Jobs a guarded statement moved to failed, by reason (the job manager's)."""
    for d in moved:
        if d.status == "failed":
            labels = job_labels(d.queue, d.type or OTHER)
            FAILED.labels(*labels, d.fail_reason or "unknown").inc()


def after_fork() -> None:
    """In a server process forked from a parent that imported this module before
    PROMETHEUS_MULTIPROC_DIR was set (`djs api`'s granian forks its workers): values made from
    now on go to the shared files. Every metric here has labels, so none has a value yet:
    values are made at .labels()."""
    if multiprocess():
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """This process's metrics (every process's, in multiprocess mode) and `extra`'s, in the
    Prometheus text format."""
    if multiprocess():
        base = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(base)  # type: ignore[no-untyped-call]
        text = generate_latest(base)
    else:
        text = generate_latest(REGISTRY)
    scraped = CollectorRegistry(auto_describe=False)
    for collector in extra:
        scraped.register(collector)
    return text + generate_latest(scraped)
