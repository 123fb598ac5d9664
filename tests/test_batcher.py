"""Group commit: concurrent submissions share statements, and each caller gets its own jobs
back, or its own error, never another's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.batcher import SubmitBatcher
from common.errors import Conflict, DependencyDown
from common.manager import JobManager
from common.models import JobSubmission
from common.services import Services
from common.store import Store


def _transactions(services: Services) -> int:
    """How many transactions wrote the (never updated) jobs: one per shared INSERT."""
    with services.store.connection() as conn:
        row = conn.execute("SELECT count(DISTINCT xmin::text) AS n FROM jobs").fetchone()
    return int(row["n"]) if row else 0


def test_an_idle_batcher_writes_on_the_callers_thread(services: Services) -> None:
    batcher = SubmitBatcher(services.manager)
    threads_before = threading.active_count()
    [submitted] = batcher.submit([JobSubmission(type="echo", payload={"n": 1})])
    assert submitted.job.payload == {"n": 1} and submitted.created and submitted.dispatched
    assert threading.active_count() == threads_before  # no writer thread of its own
    assert services.queue.claim("default", 10).ids == [submitted.job.id]


def test_concurrent_callers_share_statements_and_get_their_own_jobs(services: Services) -> None:
    batcher = SubmitBatcher(services.manager)
    callers = 64
    start = threading.Barrier(callers)

    def call(n: int) -> list[int]:
        start.wait()
        jobs = [JobSubmission(type="echo", payload={"caller": n, "i": i}) for i in range(3)]
        submitted = batcher.submit(jobs)
        assert [s.job.payload for s in submitted] == [j.payload for j in jobs]
        return [s.job.id for s in submitted]

    with ThreadPoolExecutor(callers) as pool:
        ids = [i for got in pool.map(call, range(callers)) for i in got]
    assert len(set(ids)) == callers * 3
    assert _transactions(services) < callers  # shared INSERTs: fewer statements than callers
    assert sorted(services.queue.claim("default", 1000).ids) == sorted(ids)


def test_one_callers_conflict_is_not_another_callers_error(services: Services) -> None:
    batcher = SubmitBatcher(services.manager)
    batcher.submit([JobSubmission(type="echo", payload={"v": 1}, idempotency_key="k")])
    callers = 32
    start = threading.Barrier(callers)

    def call(n: int) -> str:
        start.wait()
        if n == 0:  # same key, different request: 409 for this caller only
            job = JobSubmission(type="echo", payload={"v": 2}, idempotency_key="k")
        else:
            job = JobSubmission(type="echo", payload={"caller": n})
        try:
            batcher.submit([job])
        except Conflict:
            return "conflict"
        return "stored"

    with ThreadPoolExecutor(callers) as pool:
        outcomes = list(pool.map(call, range(callers)))
    assert outcomes == ["conflict"] + ["stored"] * (callers - 1)


@pytest.mark.timeout(30)
def test_an_error_reaches_the_caller_and_the_next_call_is_not_stuck(services: Services) -> None:
    down = Store("postgresql://postgres@127.0.0.1:1/none").open()  # nothing listens there
    try:
        batcher = SubmitBatcher(JobManager(down, services.queue))
        for _ in range(2):  # a writer left marked busy would hang the second call
            with pytest.raises(DependencyDown):
                batcher.submit([JobSubmission(type="echo")])
    finally:
        down.close()
