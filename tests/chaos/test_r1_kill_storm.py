"""R1 kill -9 storm: three runners; jobs of 20-200 ms are POSTed to /jobs throughout the storm;
every KILL_EVERY_S a random runner is SIGKILLed and started again at once.

Pass: 0 jobs lost (every job answered 201 is in Postgres and terminal), 0 jobs recorded
completed twice (attempt rows and `completed` events), and every job terminal within
lease + largest backoff + 30 s after the last kill.
"""

from __future__ import annotations

import random
import time
from typing import Any

from common.models import Backoff
from common.runner.lifecycle import backoff_ms
from tests.chaos.harness import (
    Cluster,
    Load,
    Proc,
    Record,
    Submitter,
    completed_twice,
    db,
    free_port,
    outcome_counts,
    pick,
    scalar,
    settle_accepted,
    status_histogram,
)

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


def storm(cluster: Cluster, runners: list[Proc], rng: random.Random) -> int:
    """SIGKILL a random runner every KILL_EVERY_S until STORM_S is over, restarting it at
    once; return the number of kills."""
    kills = 0
    storm_end = time.monotonic() + STORM_S
    while time.monotonic() + KILL_EVERY_S <= storm_end:
        time.sleep(KILL_EVERY_S)
        i = rng.randrange(RUNNERS)
        runners[i].popen.kill()
        runners[i].popen.wait(10)
        runners[i] = cluster.restart(runners[i])
        kills += 1
    return kills


def final_state(
    database_url: str, accepted: list[int], last_kill: float
) -> tuple[float, dict[str, Any]]:
    """Seconds from the last kill until the accepted jobs were terminal (or the budget ran
    out), and what Postgres then holds."""
    with db(database_url) as conn:
        terminal_after_s, lost = settle_accepted(conn, accepted, last_kill, BUDGET_S)
        statuses = conn.execute(
            "SELECT status::text || coalesce('/' || fail_reason::text, ''), count(*) FROM jobs"
            " WHERE id = ANY(%s) GROUP BY 1",
            (accepted,),
        ).fetchall()
        return terminal_after_s, {
            "lost": lost,
            "completed_twice": completed_twice(conn),
            "final_states": dict(statuses),
            "attempt_outcomes": outcome_counts(conn),
            "max_stalls_on_a_job": scalar(conn, "SELECT max(stalls) FROM jobs"),
        }


def test_r1_kill_9_storm_loses_nothing_and_records_once(
    database_url: str, redis_prefix: str, cluster: Cluster, record: Record
) -> None:
    port = free_port()
    names = [f"R{i}" for i in range(RUNNERS)]
    runners = cluster.boot(
        database_url,
        redis_prefix,
        names,
        CONCURRENCY,
        api_port=port,
        lease_s=LEASE_S,
        reconcile_after_s=2,
    )
    rng = random.Random(1)
    bodies = [
        {"type": "chaos_sleep", "payload": {"ms": rng.randint(20, 200), "tag": "r1"}}
        for _ in range(JOBS)
    ]
    # Two connections share the jobs, paced over the whole storm: the last kill hits work.
    load = Load([Submitter(port, bodies[i::2], STORM_S) for i in range(2)]).start()
    kills = storm(cluster, runners, rng)
    last_kill = time.monotonic()
    load.finish(STORM_S + 30)
    responses, accepted = load.responses, load.accepted()
    terminal_after_s, state = final_state(database_url, accepted, last_kill)
    executions = cluster.ledger.executions("r1")
    figures = {
        "jobs_posted": len(responses),
        "accepted_201": len(accepted),
        "http_statuses": status_histogram(responses),
        "kills": kills,
        "storm_s": STORM_S,
        "lease_s": LEASE_S,
        **state,
        "handler_executions": sum(executions.values()),
        "jobs_executed_more_than_once": sum(1 for n in executions.values() if n > 1),
        "stale_outcomes_refused": cluster.refused_outcomes(),
        "terminal_after_last_kill_s": round(terminal_after_s, 2),
        "budget_s": BUDGET_S,
    }
    record("R1_kill_storm", figures)
    assert len(accepted) == JOBS, figures["http_statuses"]
    assert figures["lost"] == 0
    assert figures["completed_twice"] == {"by_attempts": 0, "by_events": 0}
    assert terminal_after_s <= BUDGET_S
