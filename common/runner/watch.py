"""The runner's watcher: timeouts, the heartbeat (lease renewals, cancel requests, progress)
and the upkeep (reconciler, janitor), on one thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from common.errors import DependencyDown
from common.logs import job_fields
from common.manager import JobManager
from common.runner.executor import JobExecutor
from common.runner.health import Pulse

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
        self.pulse = Pulse(min(1.0, lease_s / 3))  # a turn with a heartbeat in it

    def run(self, stopping: threading.Event, done: threading.Event) -> None:
        """Until `done`; the upkeep pauses once the runner is `stopping`."""
        heartbeat_s = min(1.0, self.lease_s / 3)
        last_beat = time.monotonic()
        while not done.is_set():
            self.pulse.beat()
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
        """Renew our leases, tell handlers about cancel requests, publish their progress.

        A handler asked to stop that does not is abandoned after the executor's grace.
        """
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
                log.warning(
                    "job %d: lease lost; its outcome will not count",
                    job.id,
                    extra=job_fields(job, self.executor.worker_id),
                )
                self.executor.request_stop(job.id, context, "losing its lease")
            elif held[job.id]:
                self.executor.request_stop(job.id, context, "a cancel request")


def _guarded(step: Callable[[], object]) -> None:
    """One step of the watch loop; an error in it is logged and the loop goes on (a
    timeout check must not stop because a heartbeat failed oddly)."""
    try:
        step()
    except Exception:
        log.exception("watcher: %s failed", getattr(step, "__qualname__", step))
