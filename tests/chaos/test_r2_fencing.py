"""R2 fencing: runner A is frozen (SIGSTOP) past its lease while it holds jobs; the janitor
hands them to runner B, which completes them; then A is thawed (SIGCONT) and tries to
record its own, now stale, completions.

Pass: every stale completion is refused by the lease fence and each job has exactly one
completed attempt (B's), A's attempt closed as stalled, one `completed` event, B's result.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psycopg

from tests.chaos.harness import (
    Cluster,
    Proc,
    Record,
    db,
    pick,
    scalar,
    sleep_job,
    submit,
    wait_until,
)
from tests.chaos.sql import MOVES_INTO_COMPLETED

LEASE_S = pick(1.0, 2.0)
JOBS = pick(4, 20)


def freeze_a_until_b_completes(
    conn: psycopg.Connection[Any], cluster: Cluster, a: Proc, ids: list[int]
) -> tuple[Proc, float]:
    """SIGSTOP A once it holds every job, start B, and SIGCONT A once B has completed them
    all; return B and how long A was frozen."""
    held_by_a = "SELECT count(*) FROM jobs WHERE status = 'active' AND worker = %s"
    wait_until(
        lambda: scalar(conn, held_by_a, a.worker_id) == JOBS,
        10,
        "runner A to hold every job",
    )
    os.kill(a.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    b = cluster.runner("B", concurrency=JOBS)
    done = "SELECT count(*) FROM jobs WHERE status = 'completed' AND id = ANY(%s)"
    wait_until(
        lambda: scalar(conn, done, ids) == JOBS,
        LEASE_S * 3 + 20,
        "runner B to complete the jobs",
    )
    frozen_s = time.monotonic() - frozen_at
    os.kill(a.pid, signal.SIGCONT)
    return b, frozen_s


def recorded(conn: psycopg.Connection[Any], ids: list[int]) -> tuple[Any, int, Any]:
    """Per job its attempts (worker/outcome), the `completed` events, and each result's pid."""
    attempts = conn.execute(
        "SELECT job_id, array_agg(worker || '/' || outcome ORDER BY attempt)"
        " FROM job_attempts WHERE job_id = ANY(%s) GROUP BY job_id",
        (ids,),
    ).fetchall()
    completed_events = scalar(
        conn,
        f"SELECT count(*) FROM {MOVES_INTO_COMPLETED} m WHERE job_id = ANY(%s)",
        ids,
    )
    results = conn.execute(
        "SELECT (result->>'pid')::int FROM jobs WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    return attempts, completed_events, results


def test_r2_a_frozen_runner_cannot_record_a_stale_completion(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    [a] = cluster.boot(
        database_url, redis_prefix, ["A"], JOBS, lease_s=LEASE_S, reconcile_after_s=2
    )
    with cluster.services() as svc:
        ids = [j.id for j in submit(svc, [sleep_job(LEASE_S * 2000) for _ in range(JOBS)])]
    with db(database_url) as conn:
        b, frozen_s = freeze_a_until_b_completes(conn, cluster, a, ids)
        wait_until(lambda: cluster.refused_outcomes("A") >= JOBS, 15, "A's stale completions")
        time.sleep(0.5)  # anything else A might still write would land now
        attempts, completed_events, results = recorded(conn, ids)
    executions = cluster.ledger.executions()
    figures = {
        "jobs": JOBS,
        "lease_s": LEASE_S,
        "frozen_s": round(frozen_s, 2),
        "stale_completions_refused": cluster.refused_outcomes("A"),
        "lease_lost_warnings": cluster.log_count("lease lost", "A"),
        "completed_attempts": sum(str(h).count("/completed") for _, h in attempts),
        "completed_events": completed_events,
        "executions": sum(executions[i] for i in ids),
    }
    record("R2_fencing", figures)
    expected = [f"{a.worker_id}/stalled", f"{b.worker_id}/completed"]
    assert {job: list(history) for job, history in attempts} == {i: expected for i in ids}
    assert figures["stale_completions_refused"] == JOBS
    assert completed_events == JOBS
    assert {pid for (pid,) in results} == {b.pid}
    assert all(executions[i] == 2 for i in ids)  # A ran it, then B: at least once, recorded once
