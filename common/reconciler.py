"""Postgres is the truth: push again any pending or delayed job that Redis may have lost."""

from __future__ import annotations

import logging
import time

from common.errors import DependencyDown
from common.jobs import ready_again
from common.redisqueue import RedisQueue
from common.store import Store

log = logging.getLogger("djs.reconciler")


class Reconciler:
    """Walks the undispatched jobs in bounded batches; one reconciler acts at a time."""

    def __init__(
        self, store: Store, redis_queue: RedisQueue, interval_s: float, batch: int
    ) -> None:
        self.store = store
        self.queue = redis_queue
        # A job untouched this long is pushed again. The reconciler looks five times as
        # often, so a lost push is repaired within about interval_s * 1.2, not twice it.
        self.interval_s = interval_s
        self.period_s = interval_s / 5
        self.batch = batch
        self._after_id = 0
        self._last_run = time.monotonic()

    def maybe_run(self) -> int:
        """Run once if the interval has passed; return how many jobs were pushed."""
        if time.monotonic() - self._last_run < self.period_s:
            return 0
        self._last_run = time.monotonic()
        try:
            return self.run_once()
        except DependencyDown as exc:
            log.warning("reconcile skipped: %s", exc.message)
            return 0

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
            found = self.store.undispatched(self.interval_s, self._after_id, self.batch)
            if found is None:  # another reconciler holds the lock
                break
            self._after_id, stale = found
            lost = self.queue.missing(ready_again(stale))
            pushed += self.queue.push(lost)
            calm = 0 if lost else calm + 1
            if not self._after_id or calm >= calm_batches:
                break
        # A flushed Redis forgets pauses too; Postgres remembers them.
        for name, settings in self.store.queue_settings().items():
            if settings["paused"]:
                self.queue.set_paused(name, True)
        if pushed:
            log.info("reconciler made %d lost jobs ready again", pushed)
        return pushed
