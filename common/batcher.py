"""Group commit for submissions: concurrent requests share one INSERT and one Redis push.

Each request thread hands its jobs to the batcher and waits. One thread takes everything
that arrived while the previous batch was being written and stores it with one statement
(one commit, one WAL flush) and one push. If a combined batch fails for a reason that
belongs to one request (an idempotency clash), each request is retried alone, so one
request's error never becomes another's.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from common.errors import Conflict
from common.jobs import Submitted, submit_many
from common.models import JobSubmission
from common.redisqueue import RedisQueue
from common.store import Store

log = logging.getLogger("djs.batcher")

_Request = tuple[Sequence[JobSubmission], "Future[list[Submitted]]"]


class SubmitBatcher:
    def __init__(self, store: Store, redis_queue: RedisQueue, max_jobs: int = 1000) -> None:
        self.store = store
        self.queue = redis_queue
        self.max_jobs = max_jobs
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="djs-batcher", daemon=True)
        self._thread.start()

    def submit(self, jobs: Sequence[JobSubmission]) -> list[Submitted]:
        """Store and dispatch `jobs` (all or none), sharing the commit with concurrent callers."""
        future: Future[list[Submitted]] = Future()
        self._requests.put((jobs, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self._requests.get()]
            size = len(batch[0][0])
            while size < self.max_jobs:
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    break
                batch.append(request)
                size += len(request[0])
            self._write(batch)

    def _write(self, batch: list[_Request]) -> None:
        jobs = [job for request_jobs, _ in batch for job in request_jobs]
        try:
            submitted = submit_many(self.store, self.queue, jobs)
        except Conflict as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:  # find whose it is: each request alone
                for request in batch:
                    self._alone(request)
            return
        except Exception as exc:  # Postgres down, etc.: every caller gets the same error
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for request_jobs, future in batch:
            future.set_result(submitted[start : start + len(request_jobs)])
            start += len(request_jobs)

    def _alone(self, request: _Request) -> None:
        jobs, future = request
        try:
            future.set_result(submit_many(self.store, self.queue, jobs))
        except Exception as exc:
            future.set_exception(exc)
