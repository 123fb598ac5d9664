"""R4 dual write: a process that submits a job dies between the Postgres commit and the
Redis push (crash point `after_commit_before_push`), CRASHES times (tests/chaos/crasher.py).
Alongside: transactional enqueues that roll back (explicitly, or because the process dies
before COMMIT) and transactional enqueues that commit (dispatched by NOTIFY).

Pass: every crashed submission is dispatched by the reconciler and completes within the
reconcile interval + 5 s of its commit; rolled-back enqueues never exist and never run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psycopg

from common.enqueue import enqueue
from tests.chaos.harness import REPO, Cluster, Record, completed_twice, db, pick, scalar, wait_until

CRASHES = pick(60, 500)
ROLLBACKS = pick(20, 100)  # of each kind: explicit ROLLBACK, and death before COMMIT
COMMITTED = pick(20, 100)
RECONCILE_S = pick(1.0, 5.0)
BUDGET_S = RECONCILE_S + 5


def crash(cluster: Cluster, mode: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.crasher", mode, str(count), "4"],
        env=cluster.env,
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().splitlines()[-1])
    return result


def transactional(database_url: str, tag: str, count: int, commit: bool) -> list[int]:
    ids = []
    with psycopg.connect(database_url) as conn:
        for n in range(count):
            ids.append(enqueue(conn, "chaos_sleep", {"ms": 20, "tag": tag, "n": n}).id)
            if commit:
                conn.commit()
            else:
                conn.rollback()
    return ids


def dispatch_latencies(conn: psycopg.Connection[Any], tag: str) -> list[float]:
    """Seconds from each job's commit (created_at) to the start of its first attempt."""
    rows = conn.execute(
        "SELECT extract(epoch FROM min(a.started_at) - j.created_at) FROM jobs j"
        " JOIN job_attempts a ON a.job_id = j.id WHERE j.payload->>'tag' = %s GROUP BY j.id",
        (tag,),
    ).fetchall()
    return sorted(float(r[0]) for r in rows)


def wait_dispatched(conn: psycopg.Connection[Any]) -> None:
    """Until every crashed submission and every committed transactional one has completed."""
    tagged = "SELECT count(*) FROM jobs WHERE payload->>'tag' = %s AND status = 'completed'"
    wait_until(
        lambda: (
            scalar(conn, tagged, "crashed") == CRASHES
            and scalar(conn, tagged, "notified") == COMMITTED
        ),
        RECONCILE_S * 2 + 30,
        "the crashed submissions to complete",
        step=0.2,
    )


# Jobs that were never committed but exist all the same.
GHOSTS = "SELECT count(*) FROM jobs WHERE id = ANY(%s) OR payload->>'tag' = 'rolled_back'"


def test_r4_a_crash_between_commit_and_push_is_dispatched_by_the_reconciler(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    settings = {"lease_s": 2, "reconcile_after_s": RECONCILE_S}
    cluster.boot(database_url, redis_prefix, ["A", "B"], 16, **settings)
    rolled_back = transactional(database_url, "rolled_back", ROLLBACKS, commit=False)
    died_uncommitted = crash(cluster, "before_commit", ROLLBACKS)
    committed = transactional(database_url, "notified", COMMITTED, commit=True)
    crashed = crash(cluster, "after_commit", CRASHES)
    never_committed = rolled_back + died_uncommitted["ids"]
    with db(database_url) as conn:
        wait_dispatched(conn)
        latencies = dispatch_latencies(conn, "crashed")
        notified = dispatch_latencies(conn, "notified")
        ghosts = scalar(conn, GHOSTS, never_committed)
        twice = completed_twice(conn)["by_attempts"]
    time.sleep(0.5)
    ran = cluster.ledger.executions()
    figures = {
        "crashes": CRASHES,
        "crash_exit_codes": crashed["exit_codes"],
        "crashing_s": crashed["seconds"],
        "reconcile_after_s": RECONCILE_S,
        "crashed_completed": len(latencies),
        "dispatch_latency_min_s": round(latencies[0], 2),
        "dispatch_latency_p50_s": round(latencies[len(latencies) // 2], 2),
        "dispatch_latency_max_s": round(latencies[-1], 2),
        "budget_s": BUDGET_S,
        "notified_committed": len(committed),
        "notify_latency_max_s": round(notified[-1], 3),
        "rolled_back": len(rolled_back),
        "died_before_commit": died_uncommitted["exit_codes"],
        "rolled_back_stored": ghosts,
        "rolled_back_executed": sum(ran[i] for i in never_committed),
        "completed_twice": twice,
    }
    record("R4_dual_write", figures)
    assert crashed["exit_codes"] == {"70": CRASHES}  # every one died at the crash point
    assert died_uncommitted["exit_codes"] == {"70": ROLLBACKS}
    assert len(latencies) == CRASHES
    assert ghosts == 0 and figures["rolled_back_executed"] == 0
    assert len(never_committed) == 2 * ROLLBACKS
    assert len(notified) == len(committed) == COMMITTED
    assert twice == 0
    assert latencies[-1] <= BUDGET_S
