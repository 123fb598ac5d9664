"""A runner's row in the live registry (common/store/runners.py): written at its first beat,
beaten every `beat_interval_s` from a supervised loop of its own, deleted on a clean stop.

Each beat is one upsert on the relaxed pool: a beat lost in a server crash is only a beat
missed, and the next one writes the row again. A beat that fails (Postgres down, a row it
refuses) is logged once and the loop goes on, so the runner is listed again with its first
beat after the outage; meanwhile the listing's rule (two intervals) drops it. A runner that
dies without a word is dropped by the same rule; any runner's beat deletes its row an hour
later.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import metadata

from common import limits
from common.errors import DependencyDown
from common.runner.health import Pulse
from common.store import Store
from common.store.runners import RunnerBeat, beat_runner, prune_runners, remove_runner

log = logging.getLogger("djs.runner")

PRUNE_EVERY_S = 60.0  # a row dead for an hour may wait a minute more to go
PRUNE_BATCH = 100


def _version() -> str:
    try:
        return metadata.version("djs")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


DJS_VERSION = _version()


def checked_interval(beat_interval_s: float) -> float:
    """The beat interval, within its bounds (ValueError otherwise)."""
    low, high = limits.MIN_BEAT_INTERVAL_S, limits.MAX_BEAT_INTERVAL_S
    if not low <= beat_interval_s <= high:
        raise ValueError(f"beat_interval_s must be from {low:g} to {high:g} s")
    return beat_interval_s


class Registration:
    """One runner's entry: `run` beats until `done`, `withdraw` deletes it."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        in_hand: Callable[[], int],
        beat_interval_s: float,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.queues = list(queues)  # empty: every queue
        self.concurrency = concurrency
        self.in_hand = in_hand
        self.beat_interval_s = checked_interval(beat_interval_s)
        self.pulse = Pulse(beat_interval_s)
        self.started_at: datetime | None = None  # the database's, from the first beat
        self.beats = 0  # beats Postgres took
        self._pruned_at: float | None = None
        self._failing = False  # log a failed beat once, and its recovery

    def run(self, done: threading.Event) -> None:
        while not done.is_set():
            self.pulse.beat()
            self.beat()
            done.wait(self.beat_interval_s)

    def beat(self) -> bool:
        """One beat, every error caught (the loop must outlive it); whether it was taken."""
        try:
            with self.store.connection(durable=False) as conn:
                self.started_at = beat_runner(conn, self._now())
                if self._prune_due():
                    self._pruned_at = time.monotonic()
                    prune_runners(conn, PRUNE_BATCH)
        except DependencyDown as exc:
            self._failed(exc.message)
            return False
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}", exc)
            return False
        self.beats += 1
        if self._failing:
            self._failing = False
            log.info("runner %s beats again", self.worker_id)
        return True

    def withdraw(self) -> None:
        """A clean stop: delete the row (a runner listed no more than it runs)."""
        try:
            with self.store.connection() as conn:
                remove_runner(conn, self.worker_id)
        except Exception as exc:  # its row drops off the listing within two intervals
            message = exc.message if isinstance(exc, DependencyDown) else repr(exc)
            log.warning("runner %s could not withdraw its row: %s", self.worker_id, message)

    def _now(self) -> RunnerBeat:
        return RunnerBeat(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            in_hand=max(0, self.in_hand()),
            beat_interval_s=self.beat_interval_s,
            version=DJS_VERSION,
            started_at=self.started_at,
        )

    def _prune_due(self) -> bool:
        return self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_EVERY_S

    def _failed(self, message: str, error: BaseException | None = None) -> None:
        if self._failing:
            log.debug("runner beat failed again: %s", message)
            return
        self._failing = True
        log.warning(
            "runner %s beat failed (%s); trying every %g s",
            self.worker_id,
            message,
            self.beat_interval_s,
            exc_info=error,
        )
