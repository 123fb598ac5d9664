"""R1 kill -9 storm: three runners; jobs of 20-200 ms are POSTed to /jobs throughout the storm;
every KILL_EVERY_S a random runner is SIGKILLed and started again at once.

Pass: 0 jobs lost (every job answered 201 is in Postgres and terminal), 0 jobs recorded
completed twice (attempt rows and `completed` events), and every job terminal within
lease + largest backoff + 30 s after the last kill.
"""

from __future__ import annotations

import random
import time

from common.models import Backoff
from common.runner.lifecycle import backoff_ms
from tests.chaos.harness import (
    Cluster,
    Record,
    Submitter,
    completed_twice,
    db,
    free_port,
    outcome_counts,
    pick,
    scalar,
    settle,
    status_histogram,
    wait_api_ready,
    wait_runner_ready,
)
from tests.conftest import REDIS_URL

JOBS = pick(600, 5000)
STORM_S = pick(10.0, 60.0)
KILL_EVERY_S = pick(1.0, 2.0)
LEASE_S = pick(2.0, 10.0)
RUNNERS = 3
CONCURRENCY = pick(8, 16)
ATTEMPTS = 3  # the default budget: stalls count against it
# The default backoff before the last attempt: 1 s * 2^(attempts - 2).
LARGEST_BACKOFF_S = backoff_ms(Backoff().model_dump(), ATTEMPTS - 1, rand=0) / 1000
BUDGET_S = LEASE_S + LARGEST_BACKOFF_S + 30


def test_r1_kill_9_storm_loses_nothing_and_records_once(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    cluster.use(database_url, REDIS_URL, redis_prefix, lease_s=LEASE_S, reconcile_after_s=2)
    port = free_port()
    cluster.api(port)
    runners = [cluster.runner(f"R{i}", concurrency=CONCURRENCY) for i in range(RUNNERS)]
    for runner in runners:
        wait_runner_ready(runner)
    wait_api_ready(port)
    rng = random.Random(1)
    bodies = [
        {"type": "chaos_sleep", "payload": {"ms": rng.randint(20, 200), "tag": "r1"}}
        for _ in range(JOBS)
    ]
    # Two connections share the jobs, paced over the whole storm: the last kill hits work.
    submitters = [Submitter(port, bodies[i::2], STORM_S) for i in range(2)]
    for s in submitters:
        s.start()
    kills = 0
    storm_end = time.monotonic() + STORM_S
    while time.monotonic() + KILL_EVERY_S <= storm_end:
        time.sleep(KILL_EVERY_S)
        i = rng.randrange(RUNNERS)
        runners[i].popen.kill()
        runners[i].popen.wait(10)
        runners[i] = cluster.restart(runners[i])
        kills += 1
    last_kill = time.monotonic()
    for s in submitters:
        s.join(STORM_S + 30)
        s.halt.set()
    responses = [r for s in submitters for r in s.responses]
    accepted = [i for s in submitters for i in s.accepted()]
    with db(database_url) as conn:
        terminal_after_s, left = settle(conn, accepted, last_kill, BUDGET_S)
        stored = scalar(conn, "SELECT count(*) FROM jobs WHERE id = ANY(%s)", accepted)
        statuses = conn.execute(
            "SELECT status::text || coalesce('/' || fail_reason::text, ''), count(*) FROM jobs"
            " WHERE id = ANY(%s) GROUP BY 1",
            (accepted,),
        ).fetchall()
        twice = completed_twice(conn)
        outcomes = outcome_counts(conn)
        max_stalls = scalar(conn, "SELECT max(stalls) FROM jobs")
    executions = cluster.ledger.executions("r1")
    figures = {
        "jobs_posted": len(responses),
        "accepted_201": len(accepted),
        "http_statuses": status_histogram(responses),
        "kills": kills,
        "storm_s": STORM_S,
        "lease_s": LEASE_S,
        "lost": len(accepted) - stored + left,
        "completed_twice": twice,
        "final_states": dict(statuses),
        "attempt_outcomes": outcomes,
        "max_stalls_on_a_job": max_stalls,
        "handler_executions": sum(executions.values()),
        "jobs_executed_more_than_once": sum(1 for n in executions.values() if n > 1),
        "stale_outcomes_refused": cluster.refused_outcomes(),
        "terminal_after_last_kill_s": round(terminal_after_s, 2),
        "budget_s": BUDGET_S,
    }
    record("R1_kill_storm", figures)
    assert len(accepted) == JOBS, figures["http_statuses"]
    assert figures["lost"] == 0
    assert twice == {"by_attempts": 0, "by_events": 0}
    assert terminal_after_s <= BUDGET_S
