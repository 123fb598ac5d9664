"""The runner's watcher: timeouts, the heartbeat (lease renewals, cancel requests, progress)
and the upkeep (reconciler, janitor), on one thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from common.errors import DependencyDown
from common.manager import JobManager
from common.runner.executor import JobExecutor

log = logging.getLogger("djs.runner")

_WATCH_INTERVAL_S = 0.05  # how often timeouts are checked


class Upkeep(Protocol):
    """Periodic background work (reconciler, janitor); each decides itself when it is due."""

    def maybe_run(self) -> int: ...


class Watcher:
    def __init__(
        self,
        manager: JobManager,
        executor: JobExecutor,
        lease_s: float,
        upkeep: Sequence[Upkeep],
    ) -> None:
        self.manager = manager
        self.executor = executor
        self.lease_s = lease_s
        self.upkeep = list(upkeep)

    def run(self, stopping: threading.Event, done: threading.Event) -> None:
        """Until `done`; the upkeep pauses once the runner is `stopping`."""
        heartbeat_s = min(1.0, self.lease_s / 3)
        last_beat = time.monotonic()
        while not done.is_set():
            _guarded(self.executor.expire_overdue)
            if time.monotonic() - last_beat >= heartbeat_s:
                last_beat = time.monotonic()
                _guarded(self.heartbeat)
                for task in self.upkeep:
                    if stopping.is_set():
                        break
                    _guarded(task.maybe_run)
            done.wait(_WATCH_INTERVAL_S)

    def heartbeat(self) -> None:
        """Renew our leases, tell handlers about cancel requests, publish their progress."""
        running = self.executor.running()
        if not running:
            return
        try:
            leases = [job.lease for job, _ in running]
            held = self.manager.renew(leases, self.lease_s)
            self.manager.save_progress(
                {j.id: c.progress_pct for j, c in running if c.progress_pct is not None}
            )
        except DependencyDown as exc:
            log.warning("heartbeat failed: %s", exc.message)
            return
        for job, context in running:
            if job.id not in held:
                # Recovered as stalled, cancelled or removed: our outcome will be refused.
                log.warning("job %d: lease lost; its outcome will not count", job.id)
                context.cancel()
            elif held[job.id]:
                context.cancel()


def _guarded(step: Callable[[], object]) -> None:
    """One step of the watch loop; an error in it is logged and the loop goes on (a
    timeout check must not stop because a heartbeat failed oddly)."""
    try:
        step()
    except Exception:
        log.exception("watcher: %s failed", getattr(step, "__qualname__", step))
