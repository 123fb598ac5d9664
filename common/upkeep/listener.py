"""Pushes the jobs committed through the transactional enqueue (common/enqueue.py)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from common.errors import DependencyDown
from common.store.notify import listen

if TYPE_CHECKING:
    from common.manager import JobManager

log = logging.getLogger("djs.notify")


class EnqueueListener:
    """LISTENs on a connection of its own and dispatches each committed enqueue."""

    def __init__(self, manager: JobManager, database_url: str) -> None:
        self.manager = manager
        self.database_url = database_url

    def run(self, stop: threading.Event) -> None:
        for ready in listen(self.database_url, stop):
            try:
                self.manager.dispatch(ready)
            except DependencyDown as exc:  # the reconciler pushes them later
                log.warning("could not dispatch %d committed jobs: %s", len(ready), exc.message)
