"""The metrics read from Postgres at scrape time: queue depth per state, the age of each
queue's oldest due job, and the live runners serving each queue.

The same reads as GET /queues (common/store/overview.py), on one pooled connection: exact
counts in O(queues x states) whatever the number of jobs. Nothing is kept between scrapes,
so API processes agree without sharing anything. At most MAX_METRIC_QUEUES queues are
reported by name; the rest are summed into `other`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from common import limits
from common.errors import DependencyDown
from common.metrics import OTHER
from common.models import JOB_STATUSES
from common.store import Store
from common.store.overview import QueueOverview

log = logging.getLogger("djs.metrics")


class QueueCollector(Collector):
    """Reads the queues' overview once per scrape."""

    def __init__(self, store: Store, max_queues: int = limits.MAX_METRIC_QUEUES) -> None:
        self.store = store
        self.max_queues = max_queues

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "djs_queue_metrics_up", "1 when the queue metrics could be read from Postgres."
        )
        try:
            seen = self.store.queue_overview(None)
        except DependencyDown as exc:
            log.warning("queue metrics unavailable: %s", exc.message)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._families(seen)

    def _families(self, seen: QueueOverview) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "djs_queue_jobs", "Jobs in each queue by state (exact).", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "djs_queue_oldest_due_age_seconds",
            "Seconds since the oldest pending job of the queue was due (0: none waits).",
            labels=["queue"],
        )
        runners = GaugeMetricFamily(
            "djs_runners_up", "Live runners serving the queue (registry).", labels=["queue"]
        )
        # A queue a runner names but that has no jobs yet still has runners up.
        names = sorted(set(seen.names) | set(seen.runners_named))
        named, rest = names[: self.max_queues], names[self.max_queues :]
        for queue in named:
            counts = seen.counts.get(queue, {})
            for state in JOB_STATUSES:
                depth.add_metric([queue, state], counts.get(state, 0))
            oldest.add_metric([queue], seen.oldest_waiting_s.get(queue) or 0.0)
            runners.add_metric([queue], seen.runners(queue))
        if rest:
            for state in JOB_STATUSES:
                total = sum(seen.counts.get(q, {}).get(state, 0) for q in rest)
                depth.add_metric([OTHER, state], total)
            ages = [seen.oldest_waiting_s.get(q) or 0.0 for q in rest]
            oldest.add_metric([OTHER], max(ages))
        yield depth
        yield oldest
        yield runners
