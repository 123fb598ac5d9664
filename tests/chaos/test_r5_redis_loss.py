"""R5 Redis loss, on a Redis server of this test's own (no persistence): JOBS jobs are stored
and pushed, half pending and half delayed; Redis is FLUSHALLed before any runner starts;
then, while runners work through them, Redis is killed and started again empty.

Pass: 100% of the jobs complete, and no delayed job starts an attempt before its run_at
(attempt started_at against run_at, both Postgres time).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import psycopg

from common.models import JobSubmission
from tests.chaos.harness import (
    Cluster,
    Record,
    RedisServer,
    db,
    pick,
    scalar,
    sleep_job,
    status_counts,
    submit,
    wait_until,
)

JOBS = pick(300, 2000)
DELAY_MS = pick((1000, 5000), (2000, 20000))
RECONCILE_S = pick(1.0, 5.0)
CONCURRENCY = pick(2, 4)  # per runner: slow enough that jobs still wait at the restart
DOWN_S = 1.0


def half_pending_half_delayed() -> list[JobSubmission]:
    """JOBS jobs: the odd ones pending (50-150 ms), the even ones delayed by DELAY_MS."""
    rng = random.Random(5)
    return [
        sleep_job(rng.randint(50, 150), tag="pending")
        if i % 2
        else sleep_job(50, tag="delayed", delay_ms=rng.randint(*DELAY_MS))
        for i in range(JOBS)
    ]


def restart_mid_run(conn: psycopg.Connection[Any], server: RedisServer) -> dict[str, int]:
    """Once the runners have worked through an eighth of the jobs (the reconciler restores
    the flushed ones), kill Redis and start it again empty; return the states at the kill."""
    done = "SELECT count(*) FROM jobs WHERE status = 'completed'"
    wait_until(
        lambda: scalar(conn, done) >= JOBS // 8,
        RECONCILE_S * 2 + 30,
        "runners to work on the restored jobs",
    )
    at_restart = status_counts(conn)
    server.kill()
    time.sleep(DOWN_S)
    server.start()
    return at_restart


def wait_all_completed(conn: psycopg.Connection[Any]) -> float:
    waiting = "SELECT count(*) FROM jobs WHERE status <> 'completed'"
    return wait_until(
        lambda: scalar(conn, waiting) == 0,
        DELAY_MS[1] / 1000 + RECONCILE_S * 2 + 60,
        "every job to complete",
        step=0.2,
    )


# Attempts of delayed jobs that started before their run_at; the least margin of any.
EARLY = (
    "SELECT count(*) FROM jobs j JOIN job_attempts a ON a.job_id = j.id"
    " WHERE j.payload->>'tag' = 'delayed' AND a.started_at < j.run_at"
)
MARGIN = (
    "SELECT min(extract(epoch FROM a.started_at - j.run_at)) FROM jobs j"
    " JOIN job_attempts a ON a.job_id = j.id WHERE j.payload->>'tag' = 'delayed'"
)


def test_r5_redis_flushall_and_restart_lose_no_job_and_run_none_early(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        cluster.use(
            database_url, server.url, redis_prefix, lease_s=2, reconcile_after_s=RECONCILE_S
        )
        with cluster.services() as svc:
            submit(svc, half_pending_half_delayed())
        with db(database_url) as conn:
            at_flush = status_counts(conn)
            server.flushall()
            runners = [cluster.runner(n, concurrency=CONCURRENCY) for n in ("A", "B")]
            at_restart = restart_mid_run(conn, server)
            all_done_s = wait_all_completed(conn)  # from the restart
            early, margin = scalar(conn, EARLY), scalar(conn, MARGIN)
            final = status_counts(conn)
    finally:
        server.kill()
    figures = {
        "jobs": JOBS,
        "at_flushall": at_flush,
        "at_restart": at_restart,
        "final": final,
        "completed_pct": round(100 * final.get("completed", 0) / JOBS, 2),
        "delayed_started_early": early,
        "earliest_start_vs_run_at_s": round(float(margin), 3),
        "all_done_after_restart_s": round(all_done_s, 2),
        "runners_alive": sum(r.alive() for r in runners),
    }
    record("R5_redis_loss", figures)
    assert final == {"completed": JOBS}
    assert early == 0
    assert at_restart.get("pending", 0) + at_restart.get("delayed", 0) > 0  # the loss hit work
