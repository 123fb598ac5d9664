"""Submitting jobs: the one path the API, the CLI and the library share."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.errors import DependencyDown
from common.models import JobOut, JobSubmission
from common.redisqueue import Ready, RedisQueue
from common.store import Store

log = logging.getLogger("djs.jobs")


@dataclass(frozen=True)
class Submitted:
    job: JobOut
    dispatched: bool  # False: stored durably, Redis push deferred to the reconciler


def submit(store: Store, queue: RedisQueue, submission: JobSubmission) -> Submitted:
    """Store the job (the commit is the promise), then push its id to Redis.

    If Redis is down the job is still stored; the runners' reconciler pushes it when Redis
    answers again. If Postgres is down, nothing is written and DependencyDown is raised.
    """
    job = store.enqueue(submission)
    try:
        queue.push([Ready(job.id, job.queue, job.priority, job.run_at)])
    except DependencyDown as exc:
        log.warning("job %d stored, dispatch deferred: %s", job.id, exc.message)
        return Submitted(job, dispatched=False)
    return Submitted(job, dispatched=True)
