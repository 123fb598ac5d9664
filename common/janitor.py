"""Background upkeep in Postgres: due delayed jobs become pending, jobs whose lease expired
are recovered (stalled), and retention is enforced."""

from __future__ import annotations

import logging
import time

from common.errors import DependencyDown
from common.jobs import ready_again
from common.models import CleanRequest, Retention
from common.redisqueue import RedisQueue
from common.store import JANITOR_LOCK, Store

log = logging.getLogger("djs.janitor")


class Janitor:
    """Runs every `interval_s`, in bounded batches, one janitor at a time across runners."""

    def __init__(
        self, store: Store, redis_queue: RedisQueue, interval_s: float = 1.0, batch: int = 1000
    ) -> None:
        self.store = store
        self.queue = redis_queue
        self.interval_s = interval_s
        self.batch = batch
        self._last_run = 0.0

    def maybe_run(self) -> int:
        if time.monotonic() - self._last_run < self.interval_s:
            return 0
        self._last_run = time.monotonic()
        try:
            return self.run_once()
        except DependencyDown as exc:
            log.warning("janitor skipped: %s", exc.message)
            return 0

    def run_once(self) -> int:
        """Return how many jobs it touched."""
        with self.store.exclusive(JANITOR_LOCK) as mine:
            if not mine:
                return 0
            # Redis promotes due jobs on its own; this makes Postgres say `pending` too.
            touched = len(self.store.promote_due(self.batch))
            recovered = self.store.recover_stalled(self.batch)
            if recovered:
                log.warning("recovered %d stalled jobs", len(recovered))
                self.queue.push(ready_again(recovered))
            touched += len(recovered)
            for queue, settings in self.store.queue_settings().items():
                touched += self._retain(queue, "completed", settings["remove_on_complete"])
                touched += self._retain(queue, "failed", settings["remove_on_fail"])
        return touched

    def _retain(self, queue: str, status: str, rule: dict[str, int] | None) -> int:
        if not rule:
            return 0
        retention = Retention.model_validate(rule)
        removed = 0
        if retention.age_s is not None:
            request = CleanRequest(status=status, age_s=retention.age_s, limit=self.batch)  # type: ignore[arg-type]
            removed += self.store.clean(queue, request)
        if retention.count is not None:
            request = CleanRequest(status=status, keep=retention.count, limit=self.batch)  # type: ignore[arg-type]
            removed += self.store.clean(queue, request)
        if removed:
            log.info("retention removed %d %s jobs from %s", removed, status, queue)
        return removed
