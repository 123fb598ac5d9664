"""Postgres is the truth: push again any pending or delayed job that Redis may have lost."""

from __future__ import annotations

import logging

from common.manager import JobManager
from common.upkeep.throttle import Every

log = logging.getLogger("djs.reconciler")


class Reconciler:
    """Walks the undispatched jobs in bounded batches; one reconciler acts at a time."""

    def __init__(self, manager: JobManager, interval_s: float, batch: int) -> None:
        self.manager = manager
        # A job untouched this long is pushed again. The reconciler looks five times as
        # often, so a lost push is repaired within about interval_s * 1.2, not twice it.
        self.interval_s = interval_s
        self.batch = batch
        self._after_id = 0
        self._every = Every(interval_s / 5, self.run_once, log, at_once=False)

    def maybe_run(self) -> int:
        """Run once if the period has passed; return how many jobs were pushed."""
        return self._every.maybe_run()

    def run_once(self, max_batches: int = 50, calm_batches: int = 2) -> int:
        """Walk the undispatched jobs `batch` per round trip; push those Redis lacks.

        A backlog of jobs waiting in Redis is old but not lost: pushing it again cost as much
        as running it. So only ids missing from Redis are pushed, and after `calm_batches`
        batches with nothing missing the walk resumes next period from where it stopped;
        while batches keep finding losses (a flushed Redis) it goes on, up to `max_batches`.
        """
        pushed = 0
        calm = 0
        for _ in range(max_batches):
            found = self.manager.reconcile(self.interval_s, self._after_id, self.batch)
            if found is None:  # another reconciler holds the lock
                break
            self._after_id, lost, made_ready = found
            pushed += made_ready
            calm = 0 if lost else calm + 1
            if not self._after_id or calm >= calm_batches:
                break
        self.manager.restore_pauses()
        if pushed:
            log.info("reconciler made %d lost jobs ready again", pushed)
        return pushed
