"""R3 long jobs: every job runs three times the lease on two runners whose janitors look
for expired leases five times a second. Most jobs sleep; a tenth spin on the CPU, holding
the GIL against the heartbeat thread (DJS_CHAOS_R3_CPU_SHARE and DJS_CHAOS_R3_LEASE_S
change that share and the lease: at 0.5 and 1 s on a loaded 2-core machine, the heartbeat
can starve and jobs are re-leased).

Pass: 0 re-leases (no stalled attempt, stalls = 0 on every job) and 0 duplicate executions
(exactly one attempt row and one handler start per job); every job completed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

from tests.chaos.harness import Cluster, Record, db, pick, scalar, sleep_job, submit

LEASE_S = float(os.environ.get("DJS_CHAOS_R3_LEASE_S") or pick(1.5, 2.0))
JOBS = pick(20, 50)
CPU_SHARE = float(os.environ.get("DJS_CHAOS_R3_CPU_SHARE", "0.1"))


def watch_leases(conn: psycopg.Connection[Any], deadline: float) -> float:
    """Until every job has completed (or the deadline passes): the least lease time left seen
    on any active job."""
    closest_s = float("inf")
    while time.monotonic() < deadline:
        left = scalar(
            conn,
            "SELECT extract(epoch FROM min(lease_expires_at) - now()) FROM jobs"
            " WHERE status = 'active'",
        )
        if left is not None:
            closest_s = min(closest_s, float(left))
        if scalar(conn, "SELECT count(*) FROM jobs WHERE status = 'completed'") == JOBS:
            break
        time.sleep(0.05)
    return closest_s


# Per job: id, status, stalls, attempt rows, stalled attempts, longest attempt (s).
PER_JOB = (
    "SELECT j.id, j.status::text, j.stalls, count(a.id),"
    " count(a.id) FILTER (WHERE a.outcome = 'stalled'),"
    " extract(epoch FROM max(a.finished_at - a.started_at))"
    " FROM jobs j LEFT JOIN job_attempts a ON a.job_id = j.id GROUP BY j.id"
)


def test_r3_jobs_longer_than_the_lease_keep_it(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    cluster.boot(database_url, redis_prefix, ["A", "B"], JOBS // 2, lease_s=LEASE_S)
    ms = LEASE_S * 3000
    cpu_jobs = round(JOBS * CPU_SHARE)
    jobs = [sleep_job(ms, tag="long", cpu=i < cpu_jobs) for i in range(JOBS)]
    with cluster.services() as svc:
        ids = [j.id for j in submit(svc, jobs)]
    deadline = time.monotonic() + LEASE_S * 3 * 2 + 30
    with db(database_url) as conn:
        closest_s = watch_leases(conn, deadline)
        rows = conn.execute(PER_JOB).fetchall()
    executions = cluster.ledger.executions("long")
    figures = {
        "jobs": JOBS,
        "lease_s": LEASE_S,
        "job_s": ms / 1000,
        "cpu_bound_jobs": cpu_jobs,
        "completed": sum(r[1] == "completed" for r in rows),
        "re_leases": sum(r[2] for r in rows) + sum(r[4] for r in rows),
        "duplicate_attempt_rows": sum(r[3] - 1 for r in rows),
        "duplicate_executions": sum(n - 1 for n in executions.values()),
        "least_lease_left_s": round(closest_s, 3),
        "longest_attempt_s": round(max(float(r[5] or 0) for r in rows), 2),
        "lease_lost_warnings": cluster.log_count("lease lost"),
    }
    record("R3_long_jobs", figures)
    assert figures["completed"] == JOBS
    assert figures["re_leases"] == 0
    assert figures["duplicate_attempt_rows"] == 0
    assert sorted(executions) == sorted(ids) and figures["duplicate_executions"] == 0
