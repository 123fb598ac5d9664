"""R8 poison pill: a job whose handler calls os._exit(1), taking its runner down each time it
runs, among a stream of ordinary jobs on three runners that a supervisor restarts when they
die (as systemd or Kubernetes would). The poison job has attempts to spare, so max_stalls
(default 3) is what must stop it. Each is submitted in the middle of a batch of ordinary jobs.

Pass: each poison job ends failed with reason `stalled` after max_stalls stalls (each one a
runner death); every ordinary job completes, and completions keep coming while the poison
kills runners.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from common.models import JobSubmission
from tests.chaos.harness import (
    Cluster,
    Proc,
    Record,
    db,
    not_terminal,
    pick,
    scalar,
    sleep_job,
    submit,
    wait_until,
)

LEASE_S = pick(1.0, 2.0)
OTHERS = pick(300, 1500)
SUBMIT_S = pick(8.0, 20.0)
POISON = pick(1, 3)
MAX_STALLS = 3  # the column default
BATCHES = 20


class Supervisor(threading.Thread):
    """Restarts any runner that died, until halted (bounded by the test's deadline)."""

    def __init__(self, cluster: Cluster, runners: list[Proc]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.runners = runners
        self.deaths: list[int] = []  # exit codes
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            for i, runner in enumerate(self.runners):
                if not runner.alive():
                    self.deaths.append(runner.popen.returncode)
                    self.runners[i] = self.cluster.restart(runner)


def submit_stream(cluster: Cluster) -> tuple[list[int], float]:
    """Ordinary jobs in BATCHES over SUBMIT_S; a poison job in the middle of the third batch
    (and of every other one after it, while POISON jobs are not all in)."""
    size = OTHERS // BATCHES
    poison_ids: list[int] = []
    with cluster.services() as svc:
        for n in range(BATCHES):
            batch = [sleep_job(50, tag="other") for _ in range(size)]
            if n >= 2 and n % 2 == 0 and len(poison_ids) < POISON:
                batch.insert(size // 2, JobSubmission(type="poison", attempts=10))
                if not poison_ids:
                    poisoned_at = time.monotonic()
            poison_ids += [j.id for j in submit(svc, batch) if j.type == "poison"]
            time.sleep(SUBMIT_S / BATCHES)
    return poison_ids, poisoned_at


def wait_poison_failed(conn: psycopg.Connection[Any], poisoned_at: float) -> float:
    """Until every poison job has failed; return the seconds from the first one's submission."""
    wait_until(
        lambda: scalar(conn, OPEN_POISON) == 0,
        MAX_STALLS * (LEASE_S + 5) * POISON + 30,
        "the poison job to fail",
    )
    return time.monotonic() - poisoned_at


def test_r8_a_poison_pill_fails_as_stalled_and_others_keep_flowing(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    names = [f"R{i}" for i in range(3)]
    runners = cluster.boot(database_url, redis_prefix, names, 4, lease_s=LEASE_S)
    supervisor = Supervisor(cluster, runners)
    supervisor.start()
    try:
        poison_ids, poisoned_at = submit_stream(cluster)
        with db(database_url) as conn:
            poison_s = wait_poison_failed(conn, poisoned_at)
            wait_until(lambda: not_terminal(conn) == 0, 60, "the other jobs to finish")
            poisons = conn.execute(POISONS).fetchall()
            finished = [float(r[0]) for r in conn.execute(OTHERS_FINISHED, (poison_ids,))]
            collateral = conn.execute(COLLATERAL).fetchall()
    finally:
        supervisor.halt.set()
        supervisor.join(10)
    # Completions of ordinary jobs while the poison jobs were killing runners.
    during = [t for t in finished if 0 <= t <= poison_s]
    gaps = [b - a for a, b in zip([0.0, *during], during, strict=False)]
    figures = {
        "poison_jobs": POISON,
        "lease_s": LEASE_S,
        "poison": [[*map(str, p[:4]), list(p[4])] for p in poisons],
        "poison_executions": sum(cluster.ledger.executions("-")[i] for i in poison_ids),
        "runner_deaths": len(supervisor.deaths),
        "death_exit_codes": sorted(set(supervisor.deaths)),
        "poison_failed_after_s": round(poison_s, 2),
        "other_jobs": OTHERS // BATCHES * BATCHES,
        "others_completed_while_poisoned": len(during),
        "longest_gap_between_completions_s": round(max(gaps, default=0.0), 2),
        "others_failed": len(collateral),
        "others_failed_detail": [list(map(str, row)) for row in collateral],
    }
    record("R8_poison_pill", figures)
    assert len(poisons) == POISON
    for status, reason, stalls, attempts, outcomes in poisons:
        assert (status, reason, stalls, attempts) == ("failed", "stalled", MAX_STALLS, MAX_STALLS)
        assert list(outcomes) == ["stalled"] * MAX_STALLS
    # Each claim of a poison job kills its runner (two claimed together: one death).
    assert set(supervisor.deaths) == {1}
    assert MAX_STALLS <= len(supervisor.deaths) <= MAX_STALLS * POISON
    assert len(during) > 0
    assert not collateral


OPEN_POISON = "SELECT count(*) FROM jobs WHERE type = 'poison' AND status <> 'failed'"
POISONS = (
    "SELECT status::text, fail_reason::text, stalls, attempts,"
    " array_agg(a.outcome ORDER BY a.attempt) FROM jobs j"
    " JOIN job_attempts a ON a.job_id = j.id WHERE j.type = 'poison' GROUP BY j.id"
)
OTHERS_FINISHED = (
    "SELECT extract(epoch FROM finished_at - (SELECT min(created_at) FROM jobs"
    " WHERE id = ANY(%s))) FROM jobs WHERE type <> 'poison' ORDER BY 1"
)
COLLATERAL = (
    "SELECT id, fail_reason::text, stalls, attempts FROM jobs"
    " WHERE type <> 'poison' AND status <> 'completed' ORDER BY id"
)
