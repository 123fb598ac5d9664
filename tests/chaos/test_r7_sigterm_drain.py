"""R7 SIGTERM drain: runner A holds QUICK jobs that will finish within its grace period and
SLOW ones that cannot (their first attempt lasts past it; a second one is short); runner B
stands by; A gets SIGTERM at a planned time that all these durations are measured from.

Pass: 0 redeliveries of jobs that finished within the grace period (one attempt, one
execution each); 0 jobs left active on A after grace + lease (the slow ones are released
at the end of the grace period and B completes them); A exits 0 within its grace period.
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg

from common.models import JobSubmission
from tests.chaos.harness import (
    Cluster,
    Proc,
    Record,
    db,
    pick,
    scalar,
    sleep_job,
    stop_gracefully,
    submit,
    wait_until,
)

GRACE_S = pick(2.0, 10.0)
LEASE_S = pick(2.0, 5.0)
QUICK = pick(30, 100)
SLOW = pick(6, 20)


ON_A = "SELECT count(*) FROM jobs WHERE status = 'active' AND worker = %s"


def quick_and_slow(sigterm_at: float) -> list[JobSubmission]:
    """QUICK jobs whose first attempt ends within the grace period after `sigterm_at` (a unix
    time), then SLOW ones whose first attempt lasts a minute past it (a second one is short)."""
    rng = random.Random(7)
    jobs = [
        sleep_job(0, tag="quick", first_until=sigterm_at + rng.uniform(0.1, 0.7) * GRACE_S)
        for _ in range(QUICK)
    ]
    jobs += [sleep_job(200, tag="slow", first_until=sigterm_at + GRACE_S + 60) for _ in range(SLOW)]
    return jobs


def drain(
    conn: psycopg.Connection[Any], a: Proc, sigterm_at: float
) -> tuple[int, int | None, float, int]:
    """SIGTERM A at `sigterm_at`: the jobs it held then, its exit code, the seconds it took
    to exit, and the jobs it still held after grace + lease."""
    time.sleep(max(0.0, sigterm_at - time.time()))
    busy = scalar(conn, ON_A, a.worker_id)
    sigterm = time.monotonic()
    exit_code = stop_gracefully(a, GRACE_S + 15)
    exited_s = time.monotonic() - sigterm
    time.sleep(max(0.0, sigterm + GRACE_S + LEASE_S - time.monotonic()))
    left_on_a = scalar(conn, ON_A, a.worker_id)
    return busy, exit_code, exited_s, left_on_a


def test_r7_sigterm_drains_finishes_what_it_can_and_releases_the_rest(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    settings = {"lease_s": LEASE_S, "grace_s": GRACE_S}
    [a] = cluster.boot(database_url, redis_prefix, ["A"], QUICK + SLOW, **settings)
    sigterm_at = time.time() + 4  # time enough for B to start while A holds the jobs
    with cluster.services() as svc:
        ids = [j.id for j in submit(svc, quick_and_slow(sigterm_at))]
    with db(database_url) as conn:
        wait_until(lambda: scalar(conn, ON_A, a.worker_id) == len(ids), 10, "A to hold every job")
        [b] = cluster.ready_runners(["B"], SLOW)
        busy, exit_code, exited_s, left_on_a = drain(conn, a, sigterm_at)
        done = "SELECT count(*) FROM jobs WHERE status = 'completed'"
        wait_until(lambda: scalar(conn, done) == len(ids), GRACE_S * 2 + 30, "every job done")
        rows = conn.execute(
            "SELECT j.payload->>'tag', array_agg(a.outcome || '@' || a.worker ORDER BY a.attempt)"
            " FROM jobs j JOIN job_attempts a ON a.job_id = j.id GROUP BY j.id"
        ).fetchall()
    executions = cluster.ledger.executions("quick")
    quick = [h for tag, h in rows if tag == "quick"]
    slow = [h for tag, h in rows if tag == "slow"]
    figures = {
        "grace_s": GRACE_S,
        "lease_s": LEASE_S,
        "quick_jobs": QUICK,
        "slow_jobs": SLOW,
        "active_on_a_at_sigterm": busy,
        "runner_exit_code": exit_code,
        "runner_exited_after_s": round(exited_s, 2),
        "quick_finished_by_a": sum(h == [f"completed@{a.worker_id}"] for h in quick),
        "redeliveries_of_finished": sum(len(h) - 1 for h in quick)
        + sum(n - 1 for n in executions.values()),
        "released_by_a": sum(h[0] == f"released@{a.worker_id}" for h in slow),
        "released_then_completed_by_b": sum(
            h == [f"released@{a.worker_id}", f"completed@{b.worker_id}"] for h in slow
        ),
        "active_on_a_after_grace_plus_lease": left_on_a,
        "release_logged": cluster.log_count(f"released {SLOW} unfinished jobs", "A"),
    }
    record("R7_sigterm_drain", figures)
    assert exit_code == 0 and exited_s <= GRACE_S + 3
    assert figures["quick_finished_by_a"] == QUICK and len(executions) == QUICK
    assert figures["redeliveries_of_finished"] == 0
    assert left_on_a == 0
    assert figures["released_then_completed_by_b"] == SLOW
