"""GET /queues's counts are exact: equal to count(*) by queue and status (and by owner), at
every moment, while submissions, claims, outcomes, retries, cancels, removes, cleans and
folds run at once on real Postgres and Redis."""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from chalice.test import Client
from psycopg import sql

from common.models import CleanRequest, JobFilter, JobSubmission
from common.records import Completion, Failure
from common.services import Services
from common.store.counts import COUNTS
from common.store.migrate import migrate
from common.store.sqlfile import load_queries, migration_files
from tests.conftest import _admin, db_url, post_json

QUEUES = ("alpha", "beta", "gamma")
OWNERS = (None, 1, 2)


def _exact_in_one_snapshot(url: str, owner: int | None) -> tuple[dict[Any, int], dict[Any, int]]:
    """The counts as djs reads them and count(*), both in one repeatable-read snapshot."""
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            read = conn.execute(COUNTS["job_counts"], {"owner_key_id": owner}).fetchall()
            truth = conn.execute(
                "SELECT queue, status::text, count(*) FROM jobs"
                " WHERE %(o)s::bigint IS NULL OR owner_key_id = %(o)s::bigint GROUP BY 1, 2",
                {"o": owner},
            ).fetchall()
    return {(q, s): int(n) for q, s, n, _ in read}, {(q, s): int(n) for q, s, n in truth}


def _submit(services: Services, rng: random.Random) -> None:
    for _ in range(40):
        jobs = []
        for _ in range(rng.randint(1, 15)):
            delay = rng.choice([None, None, None, 1, 60_000])
            job = JobSubmission(type="echo", queue=rng.choice(QUEUES), delay_ms=delay)
            owner = rng.choice(OWNERS)
            jobs.append(job.owned_by(owner) if owner is not None else job)
        services.manager.enqueue(jobs)


def _work(services: Services, rng: random.Random, stop: threading.Event) -> None:
    manager = services.manager
    while not stop.is_set():
        claim = manager.claim(rng.choice(QUEUES), 10, "counts-test", rng.choice([0.05, 30]), False)
        done, failed = [], []
        for job in claim.jobs:
            if rng.random() < 0.6:
                done.append(Completion(job.id, job.lease_token, {"ok": True}))
            else:
                retry = rng.choice([None, 0, 20])
                failed.append(
                    Failure(job.id, job.lease_token, "E", "boom", "tb", retry, "exhausted")
                )
        if rng.random() < 0.8:  # else the lease lapses: a stall for the janitor
            manager.record(done, failed)
        manager.settle(claim.jobs)
        manager.recover_stalled(50)
        manager.promote_due(50)


def _admin_verbs(services: Services, rng: random.Random, stop: threading.Event) -> None:
    manager = services.manager
    verbs: list[Callable[[], object]] = [
        lambda: manager.remove(JobFilter(status="completed", queue=rng.choice(QUEUES)), 5),
        lambda: manager.remove(JobFilter(status="pending"), 2),
        lambda: manager.clean(rng.choice(QUEUES), CleanRequest(status="completed", keep=3)),
        lambda: manager.clean(rng.choice(QUEUES), CleanRequest(status="failed", age_s=0)),
        lambda: manager.retry(JobFilter(status="failed"), 5),
        lambda: manager.cancel(JobFilter(status="pending", queue=rng.choice(QUEUES)), 3),
        lambda: manager.promote(JobFilter(status="delayed"), 3),
    ]
    while not stop.is_set():
        rng.choice(verbs)()


def _fold(services: Services, stop: threading.Event) -> None:
    while not stop.is_set():
        services.store.fold_counts()


def _check(url: str, stop: threading.Event, mismatches: list[Any], checks: list[int]) -> None:
    while not stop.is_set():
        owner = random.choice(OWNERS)
        read, truth = _exact_in_one_snapshot(url, owner)
        checks.append(1)
        if read != truth:
            mismatches.append((owner, read, truth))


def test_counts_stay_exact_under_every_verb_at_once(services: Services) -> None:
    url = services.settings.database_url
    stop, mismatches, checks = threading.Event(), [], []  # type: ignore[var-annotated]
    errors: list[BaseException] = []

    def guarded(target: Callable[..., None], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return threading.Thread(target=run)

    submitters = [guarded(_submit, services, random.Random(i)) for i in range(2)]
    others = [guarded(_work, services, random.Random(10 + i), stop) for i in range(2)]
    others += [guarded(_admin_verbs, services, random.Random(20), stop)]
    others += [guarded(_fold, services, stop)]
    others += [guarded(_check, url, stop, mismatches, checks)]
    for t in submitters + others:
        t.start()
    for t in submitters:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert not errors, errors
    assert checks and not mismatches, mismatches[:1]
    for owner in OWNERS:  # quiescent: before and after a last fold
        read, truth = _exact_in_one_snapshot(url, owner)
        assert read == truth and sum(truth.values()) > 0
        services.store.fold_counts()
        assert _exact_in_one_snapshot(url, owner) == (truth, truth)


def test_queues_route_counts_a_submitters_own_jobs(client: Client, services: Services) -> None:
    for queue in ("mail", "mail", "sms"):
        post_json(client, "/jobs", {"type": "echo", "queue": queue})
    mine = JobSubmission(type="echo", queue="mail").owned_by(999)
    services.manager.enqueue([mine])
    queues = {q["name"]: q for q in client.http.get("/queues").json_body["queues"]}
    assert queues["mail"]["counts"]["pending"] == 3 and queues["sms"]["counts"]["pending"] == 1
    services.store.fold_counts()
    services.manager.remove(JobFilter(queue="sms"), 10)
    queues = {q["name"]: q for q in client.http.get("/queues").json_body["queues"]}
    assert set(queues) == {"mail"}  # a queue with no job left (and no settings) is not listed
    assert services.store.queue_counts(999) == {"mail": {"pending": 1}}


def test_truncate_starts_the_counts_from_zero(services: Services) -> None:
    services.manager.enqueue([JobSubmission(type="echo") for _ in range(3)])
    services.store.fold_counts()
    with services.store.connection() as conn:
        conn.execute("TRUNCATE jobs, job_attempts, job_events")
    assert services.store.queue_counts() == {}
    services.manager.enqueue([JobSubmission(type="echo")])
    assert services.store.queue_counts() == {"default": {"pending": 1}}


def test_a_reader_folds_deltas_that_piled_up(services: Services, monkeypatch: Any) -> None:
    from common.store import counts

    monkeypatch.setattr(counts, "FOLD_AFTER_DELTAS", 2)
    for _ in range(4):
        services.manager.enqueue([JobSubmission(type="echo")])
    assert services.store.queue_counts() == {"default": {"pending": 4}}
    with services.store.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM job_count_deltas").fetchone()["n"] == 0
    assert services.store.queue_counts() == {"default": {"pending": 4}}


def test_the_migration_backfills_counts_and_outcomes() -> None:
    """Jobs stored before migration 008 are counted from the moment it commits."""
    name = f"djs_test_backfill_{uuid.uuid4().hex[:10]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(db_url(name), autocommit=True) as conn:
            _migrate_before(conn, 8)
            conn.execute(
                "INSERT INTO jobs (queue, type, payload, status, finished_at, owner_key_id)"
                " SELECT 'q' || (i % 3), 'echo', '{}', (ARRAY['pending', 'completed',"
                " 'failed'])[1 + i % 3]::job_status, CASE WHEN i % 3 > 0 THEN now() END,"
                " CASE WHEN i % 2 = 0 THEN 5 END FROM generate_series(1, 300) AS i"
            )
            assert migrate(conn)[0] == "008_counts.sql"
            for owner in (None, 5):
                read, truth = _exact_in_one_snapshot(db_url(name), owner)
                assert read == truth and sum(truth.values()) == (300 if owner is None else 150)
            outcomes = conn.execute("SELECT sum(completed), sum(failed) FROM job_outcomes")
            assert outcomes.fetchone() == (100, 100)
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _migrate_before(conn: psycopg.Connection[Any], number: int) -> None:
    """Apply the migrations numbered below `number`, as migrate() records them."""
    conn.execute(
        "CREATE TABLE djs_migrations (number integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for n, filename, body in migration_files():
        if n < number:
            conn.execute(body.encode())
            conn.execute("INSERT INTO djs_migrations (number, name) VALUES (%s, %s)", (n, filename))


def test_every_counts_and_stats_query_prepares(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for filename in ("counts.sql", "stats.sql", "overview.sql"):
            for name, query in load_queries(filename).items():
                body = query.replace("%%", "%")
                for i, key in enumerate(sorted(set(re.findall(r"%\((\w+)\)s", query))), 1):
                    body = body.replace(f"%({key})s", f"${i}")
                conn.execute(f"PREPARE q_{name} AS {body}")
