"""Threads that keep a runner alive are supervised: one that dies is logged and started again,
so a bug met on one row cannot silently stop heartbeats, timeouts or recording for good."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from common.reconnect import ReconnectBackoff

log = logging.getLogger("djs.runner")


class Supervised(threading.Thread):
    """Runs `target` until it returns; if it raises, logs it and runs it again (with
    backoff) until `done` is set. `restarts` counts how often that happened."""

    def __init__(self, name: str, target: Callable[[], None], done: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._done = done
        self.restarts = 0

    def run(self) -> None:
        backoff = ReconnectBackoff(base_s=0.05, cap_s=2.0)
        while True:
            try:
                self._target_fn()
                return
            except Exception:
                self.restarts += 1
                log.exception("%s died (restart %d); starting it again", self.name, self.restarts)
                if self._done.wait(backoff.next_delay()):
                    return
