"""Horizontal scaling with real `djs worker` processes (issue 14): several runners on one
database and Redis prefix share the queues, no job runs twice, and each does its share; and
the two queue orders a runner can follow (weighted, strict), counted in the claims it made.

Claims are counted from job_attempts, whose ids are given in claim order: the counts say
what the runners did, not how fast, so a loaded machine makes these tests slower, not wrong.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from common.models import JobSubmission
from common.services import Services
from tests.helpers import WAIT_S, run_djs, start_djs, stop, wait_until

RUNNERS = 4
JOBS = 4000
MIN_SHARE = 0.10
# Each job sleeps this long, so that claiming is not the whole cost of a job and a runner
# that claims first cannot drain the queue before the others claim too.
JOB_SLEEP_S = 0.005
# 4,000 jobs take ~10-20 s on an idle 2-core machine; the bound is for a loaded one.
DRAIN_BOUND_S = 10 * WAIT_S


def _submit(services: Services, queue: str, n: int, **payload: Any) -> list[int]:
    ids: list[int] = []
    for start in range(0, n, 1000):  # MAX_BATCH jobs per bulk statement
        jobs = [
            JobSubmission(type="sleep" if payload else "echo", queue=queue, payload=payload)
            for _ in range(min(1000, n - start))
        ]
        ids += [s.job.id for s in services.manager.enqueue(jobs)]
    return ids


def _rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def _live_runners(database_url: str) -> list[str]:
    rows = _rows(
        database_url,
        "SELECT id FROM runners WHERE last_beat >= now() - 2 * beat_interval_s * interval '1 s'",
    )
    return sorted(row[0] for row in rows)


@contextmanager
def _workers(
    env: dict[str, str], args: list[str], n: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """n `djs worker` processes; each stopped (SIGTERM) at the end, which must end it cleanly."""
    processes = [start_djs(["worker", *args], env) for _ in range(n)]
    try:
        yield processes
    finally:
        outcomes = [stop(p) for p in processes]
        for code, out in outcomes:
            assert code == 0, out[-3000:]


def _claim_order(database_url: str) -> list[str]:
    """The queue of each attempt, in the order the attempts were claimed."""
    rows = _rows(
        database_url,
        "SELECT j.queue FROM job_attempts a JOIN jobs j ON j.id = a.job_id ORDER BY a.id",
    )
    return [row[0] for row in rows]


def _burst(env: dict[str, str], tmp_path: Path, *args: str) -> None:
    """One worker with a single slot, to its end: it exits once every queue is empty."""
    result = run_djs(
        ["worker", "--burst", "--concurrency", "1", *args], env, tmp_path, timeout_s=3 * WAIT_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _assert_each_ran_once(database_url: str) -> None:
    # Each job completed, on its first and only attempt.
    states = _rows(database_url, "SELECT status::text, attempts, count(*) FROM jobs GROUP BY 1, 2")
    assert states == [("completed", 1, JOBS)], states
    [(attempts, jobs_attempted, completed_attempts)] = _rows(
        database_url,
        "SELECT count(*), count(DISTINCT job_id), count(*) FILTER (WHERE outcome = 'completed')"
        " FROM job_attempts",
    )
    assert (attempts, jobs_attempted, completed_attempts) == (JOBS, JOBS, JOBS)
    # No two attempts of one job ran at the same time (one each, so none can; the query is
    # the rule itself, should a retry ever add a second attempt).
    [(overlapping,)] = _rows(
        database_url,
        "SELECT count(*) FROM job_attempts a JOIN job_attempts b"
        " ON a.job_id = b.job_id AND a.id < b.id"
        " WHERE tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)",
    )
    assert overlapping == 0
    # The job's row names the runner its attempt row names: the one that ran it.
    [(mismatched,)] = _rows(
        database_url,
        "SELECT count(*) FROM jobs j JOIN job_attempts a ON a.job_id = j.id"
        " WHERE j.worker IS DISTINCT FROM a.worker",
    )
    assert mismatched == 0


# --- 4 runners, 4,000 jobs ---------------------------------------------------------------------


@pytest.mark.serial  # 4 worker processes at full tilt: nothing else should share the cores
def test_four_runners_run_4000_jobs_once_each_and_share_them(
    services: Services, database_url: str, env: dict[str, str]
) -> None:
    with _workers(env, ["--concurrency", "8"], RUNNERS) as processes:
        # Every runner claims before the first job exists: none can take them all.
        live = wait_until(
            lambda: (ids := _live_runners(database_url)) and len(ids) == RUNNERS and ids,
            f"{RUNNERS} runners registered",
        )
        assert len({p.pid for p in processes}) == RUNNERS
        ids = _submit(services, "default", JOBS, seconds=JOB_SLEEP_S)
        assert len(set(ids)) == JOBS

        def completed() -> bool:
            [(done,)] = _rows(database_url, "SELECT count(*) FROM jobs WHERE status = 'completed'")
            return bool(done == JOBS)

        wait_until(completed, f"{JOBS} jobs completed", timeout_s=DRAIN_BOUND_S)
        assert all(p.poll() is None for p in processes), "a worker died"

    _assert_each_ran_once(database_url)
    shares = dict(_rows(database_url, "SELECT worker, count(*) FROM job_attempts GROUP BY 1"))
    assert sorted(shares) == live, shares  # the registered runners, and no one else
    assert sum(shares.values()) == JOBS
    for worker, count in shares.items():
        assert count >= MIN_SHARE * JOBS, f"{worker} ran {count} of {JOBS}: {shares}"


# --- queue orders with real runners ------------------------------------------------------------


def test_strict_order_starts_every_high_job_before_any_low_one(
    services: Services, database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    # low's jobs are older: strict order, not age, puts high first.
    _submit(services, "low", 30)
    _submit(services, "high", 30)
    _burst(env, tmp_path, "--queues", "high,low", "--strict")
    order = _claim_order(database_url)
    assert order == ["high"] * 30 + ["low"] * 30, order


def test_strict_order_takes_high_jobs_that_arrive_while_low_ones_run(
    services: Services, database_url: str, env: dict[str, str]
) -> None:
    """A running strict runner turns to `high` as soon as it has work: its jobs are claimed
    in one run, before the `low` jobs that were waiting longer. (In weighted order, with
    the same runner but no --strict, low claims come between them: this test fails.)"""
    low = _submit(services, "low", 40, seconds=0.1)
    args = ["--queues", "high,low", "--strict", "--concurrency", "1"]
    with _workers(env, args, 1):
        wait_until(lambda: _claim_order(database_url), "the first low job claimed")
        high = _submit(services, "high", 10, seconds=0.001)  # one atomic push to Redis
        [(waiting,)] = _rows(
            database_url, "SELECT count(*) FROM jobs WHERE queue = 'low' AND status = 'pending'"
        )
        wait_until(
            lambda: len(_claim_order(database_url)) == len(low) + len(high),
            "every job claimed",
            timeout_s=3 * WAIT_S,
        )
    order = _claim_order(database_url)
    first = order.index("high")
    assert order[first : first + 10] == ["high"] * 10, order  # not one low claim between
    assert set(order[:first]) == {"low"}, order
    # Low jobs still waiting when high's arrived ran after them (one claim that had begun
    # before the push may still have taken a low job).
    assert order[first + 10 :].count("low") >= waiting - 1, (waiting, order)


def test_weighted_order_claims_in_proportion_to_the_weights(
    services: Services, database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    _submit(services, "a", 60)
    _submit(services, "b", 60)
    _burst(env, tmp_path, "--queues", "a:3,b")
    order = _claim_order(database_url)
    assert Counter(order) == {"a": 60, "b": 60}
    # While both have work, a gets 3 claims in 4. The smooth round robin gives exactly 60 of
    # 80; the tolerance covers a turn spent on an id Postgres refused (a duplicate delivery).
    first = Counter(order[:80])
    assert 56 <= first["a"] <= 64, order
    # Not strict: b is served from the start, never behind a run of a.
    assert "b" in order[:4], order
    # a ran out after its 60th claim (the 80th or so): the rest are b's.
    assert order[-36:] == ["b"] * 36, order


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strict"], "error: strict order needs the queues listed"),
        (["--queues", "high:3,low", "--strict"], "error: strict order takes no weights: high:3"),
    ],
)
def test_strict_order_needs_a_list_without_weights(
    env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_djs(["worker", *args], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "4097"])
def test_concurrency_out_of_range_is_refused(
    env: dict[str, str], tmp_path: Path, value: str
) -> None:
    result = run_djs(["worker", "--concurrency", value], env, tmp_path)
    assert result.returncode == 2
    assert "--concurrency: must be from 1 to 4096" in result.stderr


def test_worker_help_explains_queues_strict_and_concurrency(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run_djs(["worker", "--help"], env, tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for phrase in ("--queues NAME[:WEIGHT],...", "--strict", "in the order listed", "CPU-bound"):
        assert phrase in text, result.stdout
