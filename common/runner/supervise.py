"""Threads that keep a runner alive are supervised: one that dies is logged and started again,
so a bug met on one row cannot silently stop heartbeats, timeouts or recording for good."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from common.reconnect import ReconnectBackoff
from common.runner.health import LoopState, Pulse, Restarts, loop_state

log = logging.getLogger("djs.runner")


class Supervised(threading.Thread):
    """Runs `target` until it returns; if it raises, logs it and runs it again (with
    backoff) until `done` is set. `restarts` counts how often that happened; `pulse`, if
    the target beats one, says when it last made progress."""

    def __init__(
        self,
        name: str,
        target: Callable[[], None],
        done: threading.Event,
        pulse: Pulse | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._done = done
        self.pulse = pulse
        self.deaths = Restarts()

    @property
    def restarts(self) -> int:
        return self.deaths.count

    def state(self) -> LoopState:
        return loop_state(self.is_alive(), self.pulse, self.deaths, time.monotonic())

    def run(self) -> None:
        backoff = ReconnectBackoff(base_s=0.05, cap_s=2.0)
        while True:
            try:
                self._target_fn()
                return
            except Exception as exc:
                self.deaths.died(exc)
                log.exception("%s died (restart %d); starting it again", self.name, self.restarts)
                if self._done.wait(backoff.next_delay()):
                    return
