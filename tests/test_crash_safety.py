"""Crash-safety mechanisms in-process, against real Postgres and Redis: the transactional
enqueue, the reconciler after Redis loses everything, lease fencing in the runner, drain."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from common.enqueue import enqueue
from common.models import JobSubmission
from common.runner import Runner
from common.services import Services
from common.upkeep.janitor import Janitor
from common.upkeep.listener import EnqueueListener
from common.upkeep.reconciler import Reconciler
from tests import scripted


def _runner(services: Services, **kw: Any) -> Runner:
    kw.setdefault("poll_interval_s", 0.05)
    return services.runner(scripted.registry, upkeep=kw.pop("upkeep", []), listen=False, **kw)


def _status(services: Services, job_id: int) -> str | None:
    return services.store.status_of(job_id)


def _wait(predicate: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_transactional_enqueue_dispatches_after_commit_only(services: Services) -> None:
    listener = EnqueueListener(services.manager, services.settings.database_url)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.3)  # LISTEN is in place
        with psycopg.connect(services.settings.database_url) as conn:
            kept = enqueue(conn, "scripted", {"n": 1})
            assert services.queue.depth("default")["wait"] == 0  # not before commit
        with psycopg.connect(services.settings.database_url) as conn:
            dropped = enqueue(conn, "scripted", {"n": 2})
            conn.rollback()
        _wait(lambda: services.queue.depth("default")["wait"] == 1)
        time.sleep(0.2)
        assert services.queue.claim("default", 10).ids == [kept.id]
        assert _status(services, dropped.id) is None  # rolled back: never stored, never run
    finally:
        stop.set()
        thread.join(5)


def test_enqueue_joins_the_callers_transaction(services: Services) -> None:
    with psycopg.connect(services.settings.database_url) as conn:
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
        conn.commit()
        order = conn.execute("INSERT INTO orders DEFAULT VALUES RETURNING id").fetchone()
        job = enqueue(conn, "scripted", {"order": order[0] if order else None}, priority=5)
        conn.rollback()
    with psycopg.connect(services.settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert job.priority == 5


def test_reconciler_restores_every_job_after_flushall(services: Services) -> None:
    ids = [
        s.job.id
        for s in services.manager.enqueue([JobSubmission(type="scripted") for _ in range(30)])
    ]
    delayed = services.manager.enqueue([JobSubmission(type="scripted", delay_ms=400)])[0].job
    services.queue.set_paused("default", True)
    services.store.set_paused("default", True)
    # What FLUSHALL does to this queue, without flushing the Redis the parallel tests share
    # (a real flushdb here once wiped another test's delayed retry mid-run).
    prefix = services.settings.redis_prefix
    services.queue.redis.delete(*services.queue.redis.scan_iter(match=f"{prefix}:*"))
    time.sleep(0.6)
    reconciler = Reconciler(services.manager, interval_s=0.5, batch=7)
    assert reconciler.run_once() == 30  # walked in batches of 7
    assert services.queue.claim("default", 100).ids == []  # the pause came back too
    services.queue.set_paused("default", False)
    _runner(services, burst=True).run()
    assert {_status(services, i) for i in [*ids, delayed.id]} == {"completed"}


def test_reconciler_leaves_a_waiting_backlog_alone_and_finds_the_lost_job(
    services: Services,
) -> None:
    """Old jobs still waiting in Redis are not lost: only the one whose push never happened is
    pushed, and the walk over the backlog is spread over runs, a few batches each."""
    waiting = services.manager.enqueue([JobSubmission(type="scripted") for _ in range(40)])
    lost = services.store.enqueue(JobSubmission(type="scripted"))[0]  # stored, never pushed
    time.sleep(0.6)
    reconciler = Reconciler(services.manager, interval_s=0.5, batch=10)
    pushes = [reconciler.run_once(calm_batches=2) for _ in range(3)]
    assert pushes == [0, 0, 1]  # 20 waiting jobs per run, then the lost one
    assert reconciler.run_once() == 0  # the walk starts over; nothing else is missing
    claimed = services.queue.claim("default", 100).ids
    assert sorted(claimed) == sorted([s.job.id for s in waiting] + [lost.id])  # once each


def test_a_fenced_runner_changes_nothing(services: Services) -> None:
    """Runner A's lease lapses mid-job; the janitor hands the job to runner B; A's late
    completion is refused and the job has exactly one completed attempt."""
    job = services.manager.enqueue(
        [JobSubmission(type="scripted", payload={"plan": ["sleep:1", "ok"]})],
    )[0].job
    slow = _runner(services, lease_s=0.3, worker_id="A", concurrency=1)
    # A stops renewing: its heartbeat is silenced, as if the process were frozen.
    slow._watcher.heartbeat = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=slow.run)
    thread.start()
    _wait(lambda: _status(services, job.id) == "active")
    time.sleep(0.4)
    assert Janitor(services.manager).run_once() >= 1  # recovered as stalled
    _runner(services, burst=True, worker_id="B").run()
    _wait(lambda: slow.processed == 1)  # A's handler returned after B had finished
    slow.stop()
    thread.join(10)
    done = services.store.get(job.id)
    assert (
        done is not None
        and done.status == "completed"
        and done.result == {"attempt": 2, **done.result}
    )
    assert [(h.worker, h.outcome) for h in done.history] == [("A", "stalled"), ("B", "completed")]


def test_long_jobs_keep_their_lease(services: Services) -> None:
    jobs = [JobSubmission(type="scripted", payload={"plan": ["sleep:0.9"]}) for _ in range(3)]
    ids = [s.job.id for s in services.manager.enqueue(jobs)]
    runner = _runner(
        services,
        burst=True,
        lease_s=0.3,
        upkeep=[Janitor(services.manager, interval_s=0.05)],
    )
    runner.run()
    for job_id in ids:
        job = services.store.get(job_id)
        assert job is not None and job.status == "completed" and len(job.history) == 1


def test_drain_releases_jobs_still_running_after_the_grace_period(services: Services) -> None:
    quick, slow = services.manager.enqueue(
        [
            JobSubmission(type="scripted", payload={"plan": ["sleep:0.1"]}),
            JobSubmission(type="scripted", payload={"plan": ["cancellable", "ok"]}, attempts=1),
        ],
    )
    runner = _runner(services, grace_s=0.5)
    thread = threading.Thread(target=runner.run)
    thread.start()
    _wait(lambda: _status(services, slow.job.id) == "active")
    runner.stop()
    thread.join(10)
    assert _status(services, quick.job.id) == "completed"  # finished within grace
    assert _status(services, slow.job.id) == "pending" and runner.released == 1
    _runner(services, burst=True).run()  # another runner takes it at once
    done = services.store.get(slow.job.id)
    assert done is not None and done.status == "completed"
    assert [h.outcome for h in done.history] == ["released", "completed"]


def test_jobs_whose_runners_keep_dying_run_alone(services: Services) -> None:
    """A poison pill kills its runner and every job claimed with it. One death is usually the
    runner's own (a deploy, the OOM killer): recovered jobs run as usual. On their last
    stall before failing they run alone, so ordinary jobs are not failed with the pill."""
    from common.records import ready_again

    jobs = [JobSubmission(type="scripted", payload={"plan": ["sleep:0.1"]}) for _ in range(6)]
    ids = [s.job.id for s in services.manager.enqueue(jobs)]
    for death, suspects in ((1, None), (2, 3)):
        assert services.queue.claim("default", 3).ids == ids[:3]  # the runner that dies
        assert len(services.store.claim(ids[:3], f"dead-runner-{death}", lease_s=30)) == 3
        with services.store.connection() as conn:
            conn.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 s'")
        services.queue.push(ready_again(services.store.recover_stalled(10)))
        assert services.queue.depth("default").get("suspect") == suspects
    _runner(services, burst=True, concurrency=8).run()
    spans = {}
    for job_id in ids:
        job = services.store.get(job_id)
        assert job is not None and job.status == "completed"
        last = job.history[-1]
        spans[job_id] = (last.started_at, last.finished_at)
    for suspect in ids[:3]:
        start, end = spans[suspect]
        overlapping = [
            other
            for other, (s, e) in spans.items()
            if other != suspect and s < end and e > start  # type: ignore[operator]
        ]
        assert overlapping == [], f"suspect {suspect} ran alongside {overlapping}"
