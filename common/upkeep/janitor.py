"""Background upkeep in Postgres: due delayed jobs become pending, jobs whose lease expired
are recovered (stalled), delayed jobs due at a time djs cannot read are quarantined
(invalid_record), retention is enforced, and the job counts' deltas are folded."""

from __future__ import annotations

import logging

from common.manager import JobManager
from common.models import CleanRequest, Retention
from common.upkeep.throttle import Every

log = logging.getLogger("djs.janitor")


class Janitor:
    """Runs every `interval_s`, in bounded batches, one janitor at a time across runners."""

    def __init__(self, manager: JobManager, interval_s: float = 1.0, batch: int = 1000) -> None:
        self.manager = manager
        self.batch = batch
        self._every = Every(interval_s, self.run_once, log)

    def maybe_run(self) -> int:
        return self._every.maybe_run()

    def run_once(self) -> int:
        """Return how many jobs it touched."""
        with self.manager.exclusive("janitor") as mine:
            if not mine:
                return 0
            # Redis promotes due jobs on its own; this makes Postgres say `pending` too.
            touched = self.manager.promote_due(self.batch)
            touched += self.manager.recover_stalled(self.batch)
            # A run_at beyond year 9999 loads clamped, but the job would wait for ever.
            touched += self.manager.quarantine_unreadable(self.batch)
            # Keeps the deltas GET /queues sums few (exact either way; see counts.sql).
            self.manager.store.fold_counts()
            for queue, settings in self.manager.store.queue_settings().items():
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
            removed += self.manager.clean(queue, request)
        if retention.count is not None:
            request = CleanRequest(status=status, keep=retention.count, limit=self.batch)  # type: ignore[arg-type]
            removed += self.manager.clean(queue, request)
        if removed:
            log.info("retention removed %d %s jobs from %s", removed, status, queue)
        return removed
