"""The job threads' line of work: a FIFO that wakes one sleeping thread at a time."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class TaskLine:
    """A FIFO for the job threads that wakes one sleeping thread at a time.

    Waking a thread is a futex call and a GIL handover. queue.Queue wakes one per item: with
    256 idle threads, its notify took 38 % of a busy runner's GIL time (py-spy --gil). Here a
    woken thread that leaves work behind wakes the next one, and a thread that finishes a job
    takes the next without sleeping, so short jobs need few wake-ups and long ones still
    spread over every thread.
    """

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._sleeping = 0
        self._waking = 0  # notified, not yet back

    def put(self, item: Any) -> None:
        with self._ready:
            self._items.append(item)
            self._wake_one()

    def get(self) -> Any:
        with self._ready:
            while not self._items:
                self._sleeping += 1
                self._ready.wait()
                self._sleeping -= 1
                self._waking = max(0, self._waking - 1)
            item = self._items.popleft()
            self._wake_one()
            return item

    def _wake_one(self) -> None:
        # One wake-up in flight at a time; the woken thread passes it on if work is left.
        if self._items and self._waking == 0 and self._sleeping > 0:
            self._waking = 1
            self._ready.notify()
