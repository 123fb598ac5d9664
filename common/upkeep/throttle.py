"""A period shared by the upkeep tasks: run at most every `period_s`, never on a dead store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from common.errors import DependencyDown


class Every:
    """Calls `task` at most every `period_s`; a dependency that is down, or any error, skips
    a turn and is logged."""

    def __init__(
        self, period_s: float, task: Callable[[], int], log: logging.Logger, at_once: bool = True
    ) -> None:
        self.period_s = period_s
        self.task = task
        self.log = log
        self._last = 0.0 if at_once else time.monotonic()

    def maybe_run(self) -> int:
        """Run if the period has passed; return what the task returned (0 when skipped)."""
        if time.monotonic() - self._last < self.period_s:
            return 0
        self._last = time.monotonic()
        name = self.log.name.removeprefix("djs.")
        try:
            return self.task()
        except DependencyDown as exc:
            self.log.warning("%s skipped: %s", name, exc.message)
        except Exception:  # the next period tries again: upkeep must outlive one bad turn
            self.log.exception("%s failed; trying again next period", name)
        return 0
