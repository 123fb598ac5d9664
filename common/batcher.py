"""Group commit for submissions: concurrent requests share one INSERT and one Redis push.

A request that finds no write in progress writes at once, on its own thread (no handoff:
an idle API answers as fast as without batching). Requests that arrive while a write is in
progress queue up; when it ends, the oldest of them becomes the next writer and takes
everything queued (up to max_jobs) into one statement (one commit, one WAL flush) and one
push. If a combined batch fails for a reason that belongs to one request (an idempotency
clash, a value Postgres refuses), each request is retried alone, so one request's error never
becomes another's.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from common.errors import Conflict, InvalidInput
from common.manager import JobManager, Submitted
from common.models import JobSubmission

log = logging.getLogger("djs.batcher")


class _Request:
    """One caller's jobs and, once written, its outcome; or the call to write next."""

    def __init__(self, jobs: Sequence[JobSubmission]) -> None:
        self.jobs = jobs
        self.result: list[Submitted] = []
        self.error: BaseException | None = None
        self.lead = False  # woken to write the next batch, not with an outcome
        # A lock held from the start is the cheapest one-shot wake-up: the caller blocks
        # acquiring it, the writer releases it. (An Event builds a Condition and a lock per
        # wait; every request waits once.)
        self._asleep = threading.Lock()
        self._asleep.acquire()

    def sleep(self) -> None:
        self._asleep.acquire()

    def wake(self) -> None:
        self._asleep.release()


class SubmitBatcher:
    def __init__(self, manager: JobManager, max_jobs: int = 1000) -> None:
        self.manager = manager
        self.max_jobs = max_jobs
        self._lock = threading.Lock()
        self._waiting: deque[_Request] = deque()
        self._writing = False

    def submit(self, jobs: Sequence[JobSubmission]) -> list[Submitted]:
        """Store and dispatch `jobs` (all or none), sharing the commit with concurrent callers."""
        request = _Request(jobs)
        with self._lock:
            self._waiting.append(request)
            lead = not self._writing
            self._writing = True
        while not lead:
            request.sleep()
            if not request.lead:
                break  # our jobs were written by another request's thread
            # Asked to write the next batch: ours is the oldest waiting, so it is in it.
            request.lead, lead = False, True
        if lead:
            try:
                self._write(self._take())
            finally:
                self._pass_the_lead()
        if request.error is not None:
            raise request.error
        return request.result

    def _take(self) -> list[_Request]:
        """The oldest waiting requests, up to max_jobs jobs (always at least one)."""
        batch: list[_Request] = []
        size = 0
        with self._lock:
            while self._waiting and (
                not batch or size + len(self._waiting[0].jobs) <= self.max_jobs
            ):
                batch.append(self._waiting.popleft())
                size += len(batch[-1].jobs)
        return batch

    def _pass_the_lead(self) -> None:
        with self._lock:
            if not self._waiting:
                self._writing = False
                return
            successor = self._waiting[0]
        successor.lead = True
        successor.wake()

    def _write(self, batch: list[_Request]) -> None:
        jobs = [job for request in batch for job in request.jobs]
        try:
            submitted = self.manager.enqueue(jobs)
        except (Conflict, InvalidInput) as exc:
            # Refused before anything was written: one request's error must not become its
            # neighbours', so each request is tried alone.
            if len(batch) == 1:
                self._settle(batch[0], error=exc)
            else:
                for request in batch:
                    self._alone(request)
            return
        except BaseException as exc:  # Postgres down, etc.: every caller gets the same error
            for request in batch:
                self._settle(request, error=exc)
            raise
        start = 0
        for request in batch:
            self._settle(request, result=submitted[start : start + len(request.jobs)])
            start += len(request.jobs)

    def _alone(self, request: _Request) -> None:
        try:
            self._settle(request, result=self.manager.enqueue(request.jobs))
        except Exception as exc:
            self._settle(request, error=exc)

    @staticmethod
    def _settle(
        request: _Request, result: list[Submitted] | None = None, error: BaseException | None = None
    ) -> None:
        request.result = result or []
        request.error = error
        request.wake()
