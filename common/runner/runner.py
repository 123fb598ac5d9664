"""The local runner: claim -> run -> record -> schedule retry, with many jobs per round trip.

Threads: the main loop claims (this module); a pool of job threads runs handlers
(executor.py); the recorder writes outcomes in batches (recorder.py); the watcher enforces
timeouts, renews leases and runs the upkeep (watch.py); the listener pushes jobs committed
through the transactional enqueue (common/upkeep/listener.py); the beat keeps the runner's row
in the live registry (registry.py). health() says whether each of these loops is alive
(health.py).

Handlers that never return leak their threads (executor.py). Past `max_leaked_threads` the
runner stops claiming, drains, and run() answers that it needs replacing: `djs worker` then
re-executes itself, a fresh process without the leaked threads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import DependencyDown
from common.handlers import HandlerRegistry
from common.limits import MAX_CONCURRENCY
from common.manager import JobManager
from common.reconnect import ReconnectBackoff
from common.runner import health
from common.runner.executor import JobExecutor
from common.runner.invoke import Invoker
from common.runner.queues import QueueSelection
from common.runner.recorder import Recorder
from common.runner.registry import Registration
from common.runner.supervise import Supervised
from common.runner.watch import Upkeep, Watcher

log = logging.getLogger("djs.runner")

_REDIS_TIMER_SLACK_MS = 120  # Redis may time a blocked client out this late (hz = 10)
_SIGNAL_POLL_S = 0.002  # in the last stretch before a due job, look for new work this often
MAX_CANCEL_GRACE_S = 300.0  # a cancelled handler's thread is abandoned after at most this
# A leaked thread costs a stack and whatever it holds. Up to one pool's worth (at least 16,
# so a small pool is not replaced for every hung handler) keeps a runner within twice its
# size; replacing it costs a drain, so it is not worth doing for the first few.
MIN_MAX_LEAKED_THREADS = 16


class Listener(Protocol):
    """Runs beside the runner until `stop` is set (common/upkeep/listener.py)."""

    def run(self, stop: threading.Event) -> None: ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _leak_bound(max_leaked_threads: int | None, concurrency: int, cancel_grace_s: float) -> int:
    """The bound on leaked threads, the options checked (ValueError names the wrong one)."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be from 1 to {MAX_CONCURRENCY}")
    if not 0 <= cancel_grace_s <= MAX_CANCEL_GRACE_S:
        raise ValueError(f"cancel_grace_s must be from 0 to {MAX_CANCEL_GRACE_S:g} s")
    if max_leaked_threads is None:
        return max(concurrency, MIN_MAX_LEAKED_THREADS)
    if max_leaked_threads < 1:
        raise ValueError("max_leaked_threads must be at least 1")
    return max_leaked_threads


@dataclass(frozen=True)
class RunResult:
    """How run() ended: `replace` says why this process should be replaced by a fresh one
    (handler threads it cannot end); None after stop() or the end of a burst."""

    replace: str | None = None


@dataclass
class _Round:
    """One look at every served queue: did it start work, and when is the next due job."""

    popped: bool = False
    suspect_waiting: bool = False
    next_due_in_ms: int | None = None


class Runner:
    """Runs its queues' jobs on a pool of threads until stopped (or, in burst mode, idle)."""

    def __init__(
        self,
        manager: JobManager,
        registry: HandlerRegistry,
        *,
        queues: QueueSelection | None = None,
        concurrency: int = 8,
        burst: bool = False,
        poll_interval_s: float = 1.0,
        lease_s: float = 30.0,
        grace_s: float = 25.0,
        cancel_grace_s: float = 5.0,
        max_leaked_threads: int | None = None,
        upkeep: Sequence[Upkeep] = (),
        listener: Listener | None = None,
        worker_id: str | None = None,
        beat_interval_s: float = 5.0,
        invoker: Invoker | None = None,
    ) -> None:
        self.max_leaked_threads = _leak_bound(max_leaked_threads, concurrency, cancel_grace_s)
        self.manager = manager
        self.queues = queues or QueueSelection(None, manager.queue_names)
        self.concurrency = concurrency
        self.burst = burst
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.listener = listener
        self.worker_id = worker_id or default_worker_id()
        # Made here, so that a bad interval is refused when the runner is made, not run.
        self.registration = self._registration(beat_interval_s)
        self._recorder = Recorder(manager, self._recorded, self.worker_id)
        self._executor = JobExecutor(
            registry, concurrency, self._recorder.put, cancel_grace_s, self.worker_id, invoker
        )
        self._watcher = Watcher(manager, self._executor, lease_s, [self.queues, *upkeep])
        self._slots = threading.Condition()
        self._inflight = 0
        self._exclusive = False  # a suspect job runs, or waits for us to fall idle
        self._stop = threading.Event()
        self._done = threading.Event()  # set once the run is over: background threads end
        self._claim_backoff = ReconnectBackoff()
        self._claim_pulse = health.Pulse(poll_interval_s)
        self._running = False
        self.stop_requested = False  # stop() was called: the run ends, nothing replaces it
        self.loops: dict[str, Supervised] = {}  # the background loops, by name
        self.replace: str | None = None  # why the runner needs replacing, once it does
        self.processed = 0
        self.released = 0

    def stop(self) -> None:
        """Stop claiming; jobs in flight get `grace_s` to finish before their leases go back."""
        self.stop_requested = True
        self._stop.set()
        with self._slots:
            self._slots.notify_all()

    def run(self) -> RunResult:
        """Claim and run jobs until stop() (or, in burst mode, until idle), then drain."""
        self._start_loops()
        self._running = True
        try:
            try:
                self.queues.refresh(force=True)
            except DependencyDown as exc:  # the watcher looks again at its next beat
                log.warning("could not list the queues yet: %s", exc.message)
            while not self._stop.is_set() and self._step():
                pass
        finally:
            self._stop.set()
            self._drain()
            self._executor.shutdown()
            self._done.set()
            self._recorder.finish()
            # Joined before the caller closes the pools: no upkeep runs on a closed store.
            self.loops["recorder"].join()
            self.loops["watcher"].join()
            self.loops["beat"].join()  # no beat may write the row again after this
            self.registration.withdraw()
            self._running = False
        return RunResult(None if self.stop_requested else self.replace)

    def health(self) -> dict[str, Any]:
        """Each loop alive or not, its restarts, last error and silence (see health.py)."""
        claim = health.loop_state(self._running, self._claim_pulse, None, time.monotonic())
        return health.report(
            {"claim": claim, **{name: loop.state() for name, loop in self.loops.items()}},
            worker=self.worker_id,
            stopping=self._stop.is_set(),
            leaked_threads=self._executor.leaked(),
            max_leaked_threads=self.max_leaked_threads,
        )

    def _start_loops(self) -> None:
        recorder, watcher = self._recorder, self._watcher
        registration = self.registration
        self.loops = {
            "recorder": Supervised("djs-recorder", recorder.run, self._done, recorder.pulse),
            "watcher": Supervised("djs-watch", self._watch, self._done, watcher.pulse),
            "beat": Supervised(
                "djs-beat", lambda: registration.run(self._done), self._done, registration.pulse
            ),
        }
        if self.listener:
            listener = self.listener
            self.loops["listener"] = Supervised(
                "djs-listener", lambda: listener.run(self._done), self._done
            )
        for thread in self.loops.values():
            thread.start()

    def _registration(self, beat_interval_s: float) -> Registration:
        return Registration(
            self.manager.store,
            self.worker_id,
            self.queues.names if self.queues.fixed else [],  # empty: every queue
            self.concurrency,
            lambda: self._inflight,
            beat_interval_s,
        )

    def _watch(self) -> None:
        self._watcher.run(self._stop, self._done)

    def _recorded(self, count: int) -> None:
        with self._slots:
            self._inflight -= count
            self.processed += count
            self._slots.notify_all()

    def _drain(self) -> None:
        """Wait up to grace_s for jobs in flight; then hand the rest back to Postgres at once."""
        deadline = time.monotonic() + self.grace_s
        with self._slots:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._claim_pulse.beat()
                self._slots.wait(0.05)
        if self._inflight > 0:
            self._release_unfinished()

    def _release_unfinished(self) -> None:
        left = self._executor.abandon_all()
        try:
            self.released = self.manager.release(left)
        except DependencyDown as exc:
            # The leases expire instead: the janitor recovers the jobs as stalled.
            log.warning("could not release %d jobs: %s", len(left), exc.message)
        log.warning("grace period over: released %d unfinished jobs", self.released)
        with self._slots:
            self._inflight -= len(left)

    # --- claim ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """One turn of the loop; False when burst mode finds nothing left to do, or when
        the runner needs replacing."""
        self._claim_pulse.beat()
        free = self._wait_for_free_slots()
        if free == 0:
            return True
        # Checked once a slot is free: a slot an abandoned thread left is counted by now.
        if self._leaked_too_many():
            return False
        idle = self._inflight == 0
        try:
            turn = self._claim_round(free, idle)
            if turn.popped or turn.suspect_waiting:
                pass
            elif self.burst and idle and turn.next_due_in_ms is None:
                return self._pushed_jobs_redis_lacked()
            else:
                self._idle(turn.next_due_in_ms)
            self._claim_backoff.reset()
        except DependencyDown as exc:
            delay = self._claim_backoff.next_delay()
            log.warning("%s; retrying in %.2f s", exc.message, delay)
            self._stop.wait(delay)
        except Exception:
            # The claim loop outlives a bug met on one row: jobs claimed in a turn that failed
            # stay active without a runner, and their leases bring them back (max_stalls).
            delay = self._claim_backoff.next_delay()
            log.exception("claiming failed; trying again in %.2f s", delay)
            self._stop.wait(delay)
        return True

    def _leaked_too_many(self) -> bool:
        leaked = self._executor.leaked()
        if leaked <= self.max_leaked_threads:
            return False
        self.replace = (
            f"{leaked} abandoned handler threads still run (max_leaked_threads "
            f"{self.max_leaked_threads})"
        )
        log.warning("%s: no more claims; draining, then this runner needs replacing", self.replace)
        return True

    def _claim_round(self, free: int, idle: bool) -> _Round:
        """Claim from the first queue in this turn's order that has work."""
        turn = _Round()
        for name in self.queues.order():
            claim = self.manager.claim(name, free, self.worker_id, self.lease_s, idle)
            popped = claim.popped
            if popped.isolated or popped.suspect_waiting:
                # A suspect job runs alone: claim nothing else until it (or, first, what is
                # in flight now) is done.
                self._exclusive = True
            if claim.jobs:
                with self._slots:
                    self._inflight += len(claim.jobs)
                for job in claim.jobs:
                    self._executor.submit(job)
            due, soonest = popped.next_due_in_ms, turn.next_due_in_ms
            if due is not None:
                turn.next_due_in_ms = due if soonest is None else min(due, soonest)
            turn.popped = bool(popped.ids)
            turn.suspect_waiting = popped.suspect_waiting
            if turn.popped or turn.suspect_waiting:
                break
        return turn

    def _pushed_jobs_redis_lacked(self) -> bool:
        """Burst mode ends when Redis holds nothing more; Postgres must agree. Pending or
        delayed jobs it holds that Redis lacks (a lost push) are pushed again and the run
        goes on, instead of leaving them to a reconciler that may never run."""
        self.queues.refresh(force=True)  # a queue that appeared meanwhile counts too
        lost = self.manager.reconcile_queues(self.queues.names)
        if lost:
            log.warning("burst: %d jobs were missing from Redis; pushed them again", lost)
        return bool(lost)

    def _idle(self, next_due_in_ms: int | None) -> None:
        """Sleep until new work is signalled or the next delayed job falls due.

        Redis checks blocking timeouts only about every 100 ms (its `hz`), so a BLPOP alone
        would start a delayed job up to 100 ms late: block in Redis until shortly before the
        due time, then wait out the rest here in short steps that still notice new work.
        """
        names = self.queues.names
        if next_due_in_ms is None or next_due_in_ms / 1000 > self.poll_interval_s:
            self.manager.wait_for_work(names, self.poll_interval_s)
            return
        if next_due_in_ms > _REDIS_TIMER_SLACK_MS:
            self.manager.wait_for_work(names, (next_due_in_ms - _REDIS_TIMER_SLACK_MS) / 1000)
            return
        due = time.monotonic() + next_due_in_ms / 1000
        while not self.manager.take_signal(names):
            left = due - time.monotonic()
            if left <= 0 or self._stop.wait(min(left, _SIGNAL_POLL_S)):
                return

    def _wait_for_free_slots(self) -> int:
        with self._slots:
            if self._exclusive:
                if self._inflight > 0:
                    self._slots.wait(self.poll_interval_s)
                    return 0
                self._exclusive = False
            if self._inflight >= self.concurrency and not self._stop.is_set():
                self._slots.wait(self.poll_interval_s)
            return self.concurrency - self._inflight
