"""Store transitions against real Postgres, including the illegal ones the guards refuse."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from common.models import CleanRequest, JobFilter, JobSubmission, ListQuery
from common.records import ClaimedJob, Completion, Failure, Lease
from common.services import Services


def _enqueue(services: Services, **fields: object) -> int:
    return services.store.enqueue(JobSubmission(type="echo", **fields))[0].id  # type: ignore[arg-type]


def claim(services: Services, ids: list[int], worker: str) -> list[ClaimedJob]:
    return services.store.claim(ids, worker, lease_s=30)


def token(services: Services, job_id: int) -> UUID:
    with services.store.connection() as conn:
        row = conn.execute("SELECT lease_token FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row["lease_token"] or uuid4()


def _fail(services: Services, job_id: int, retry_in_ms: int | None) -> Failure:
    return Failure(
        job_id,
        token(services, job_id),
        "RuntimeError",
        "boom",
        "Traceback ...",
        retry_in_ms,
        reason="exhausted" if retry_in_ms is None else None,
    )


def _with_token(failure: Failure, job: ClaimedJob) -> Failure:
    return dataclasses.replace(failure, token=job.lease_token)


def _done(services: Services, job_id: int, result: object) -> Completion:
    return Completion(job_id, token(services, job_id), result)


def test_enqueue_is_pending_with_defaults(services: Services) -> None:
    job, created = services.store.enqueue(JobSubmission(type="echo", payload={"x": 1}))
    assert created
    assert (job.status, job.queue, job.attempts_made, job.max_attempts) == (
        "pending",
        "default",
        0,
        3,
    )
    assert job.payload == {"x": 1}


def test_enqueue_in_future_is_delayed(services: Services) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    job, _ = services.store.enqueue(JobSubmission(type="echo", run_at=later))
    assert job.status == "delayed"


def test_claim_complete_records_one_attempt(services: Services) -> None:
    job_id = _enqueue(services)
    [claimed] = claim(services, [job_id], "w1")
    assert claimed.attempt == 1
    assert services.store.complete([_done(services, job_id, {"ok": True})]) == {job_id}
    job = services.store.get(job_id)
    assert job is not None
    assert job.status == "completed" and job.result == {"ok": True}
    assert [(h.attempt, h.outcome, h.worker) for h in job.history] == [(1, "completed", "w1")]
    assert job.history[0].duration_ms is not None and job.history[0].duration_ms >= 0


def test_duplicate_claim_and_duplicate_completion_change_nothing(services: Services) -> None:
    job_id = _enqueue(services)
    assert len(claim(services, [job_id], "w1")) == 1
    assert claim(services, [job_id], "w2") == []  # second delivery of the same id
    assert services.store.complete([_done(services, job_id, 1)]) == {job_id}
    assert services.store.complete([_done(services, job_id, 2)]) == set()  # duplicate record
    job = services.store.get(job_id)
    assert job is not None and job.result == 1 and len(job.history) == 1


def test_completion_with_a_stale_lease_is_fenced_off(services: Services) -> None:
    job_id = _enqueue(services)
    [first] = claim(services, [job_id], "w1")
    services.store.fail([_fail(services, job_id, 0)])  # retry now -> pending
    [second] = claim(services, [job_id], "w2")  # attempt 2, a new token
    assert first.lease_token != second.lease_token
    assert services.store.complete([Completion(job_id, first.lease_token, "late")]) == set()
    assert services.store.fail([_with_token(_fail(services, job_id, None), first)]) == []
    assert services.store.complete([Completion(job_id, second.lease_token, "ok")]) == {job_id}


def _expire(services: Services, job_id: int) -> None:
    with services.store.connection() as conn:
        conn.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = %s", (job_id,)
        )


def test_heartbeat_renews_and_reports_lost_leases_and_cancels(services: Services) -> None:
    a, b = _enqueue(services), _enqueue(services)
    leases = [Lease(j.id, j.lease_token) for j in claim(services, [a, b], "w")]
    assert services.store.renew(leases, 30) == {a: False, b: False}
    services.store.cancel(JobFilter(ids=[a]), 10)
    _expire(services, b)
    assert [d.id for d in services.store.recover_stalled(10)] == [b]
    assert services.store.renew(leases, 30) == {a: True}  # b's lease is gone


def test_stalled_jobs_go_back_to_pending_then_fail_after_max_stalls(services: Services) -> None:
    job_id = _enqueue(services, attempts=10)
    for stall in (1, 2, 3):
        [claimed] = claim(services, [job_id], "w")
        _expire(services, job_id)
        [moved] = services.store.recover_stalled(10)
        assert moved.status == ("failed" if stall == 3 else "pending")
        # The stalled runner's late completion is refused.
        assert services.store.complete([Completion(job_id, claimed.lease_token, 1)]) == set()
    job = services.store.get(job_id)
    assert job is not None and (job.status, job.fail_reason) == ("failed", "stalled")
    assert [h.outcome for h in job.history] == ["stalled"] * 3
    assert services.store.recover_stalled(10) == []  # a live lease is never recovered


def test_release_gives_the_job_back_without_using_an_attempt(services: Services) -> None:
    job_id = _enqueue(services, attempts=1)
    [claimed] = claim(services, [job_id], "w")
    [released] = services.store.release([Lease(job_id, claimed.lease_token)])
    assert released.status == "pending"
    [again] = claim(services, [job_id], "w2")  # the budget of 1 still allows a run
    assert again.attempt == 2 and again.attempts_left == 0
    job = services.store.get(job_id)
    assert job is not None and [h.outcome for h in job.history] == ["released", "running"]


def test_complete_or_fail_a_pending_job_is_illegal(services: Services) -> None:
    job_id = _enqueue(services)
    assert services.store.complete([_done(services, job_id, None)]) == set()
    assert services.store.fail([_fail(services, job_id, None)]) == []
    job = services.store.get(job_id)
    assert job is not None and job.status == "pending"


def test_failure_with_retry_then_final_failure(services: Services) -> None:
    job_id = _enqueue(services, attempts=2)
    claim(services, [job_id], "w1")
    [retry] = services.store.fail([_fail(services, job_id, 5000)])
    assert retry.status == "delayed" and retry.run_at is not None
    assert claim(services, [job_id], "w1") == []  # not due yet: never early
    job = services.store.get(job_id)
    assert job is not None and job.status == "delayed"


def test_final_failure_keeps_error_and_traceback(services: Services) -> None:
    job_id = _enqueue(services, attempts=1)
    claim(services, [job_id], "w1")
    [done] = services.store.fail([_fail(services, job_id, None)])
    assert done.status == "failed"
    job = services.store.get(job_id)
    assert job is not None
    assert job.last_error == "RuntimeError: boom"
    assert job.history[0].outcome == "failed"
    assert job.history[0].traceback == "Traceback ..."


def test_batch_claim_returns_only_runnable_ids(services: Services) -> None:
    ids = [_enqueue(services) for _ in range(5)]
    claim(services, ids[:2], "w1")
    claimed = claim(services, [*ids, 999999], "w2")
    assert sorted(j.id for j in claimed) == ids[2:]


def test_list_filters_and_keyset_pagination(services: Services) -> None:
    ids = [_enqueue(services, queue="a" if i % 2 else "b") for i in range(7)]
    page1 = services.store.list_jobs(ListQuery(limit=3))
    page2 = services.store.list_jobs(ListQuery(limit=3, cursor=page1[-1].id))
    page3 = services.store.list_jobs(ListQuery(limit=3, cursor=page2[-1].id))
    seen = [j.id for j in page1 + page2 + page3]
    assert seen == sorted(ids, reverse=True)
    assert {j.queue for j in services.store.list_jobs(ListQuery(queue="a"))} == {"a"}
    claim(services, [ids[0]], "w")
    assert [j.id for j in services.store.list_jobs(ListQuery(status="active"))] == [ids[0]]


def test_queue_counts(services: Services) -> None:
    for _ in range(3):
        _enqueue(services, queue="mail")
    job_id = _enqueue(services, queue="mail")
    claim(services, [job_id], "w")
    assert services.store.queue_counts() == {"mail": {"pending": 3, "active": 1}}


def test_undispatched_respects_the_reconcile_lock(services: Services) -> None:
    _enqueue(services)
    with services.store.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(72450002)")
        assert services.store.undispatched(0, 0, 10) is None
    found = services.store.undispatched(0, 0, 10)
    assert found is not None and found[0] == 0 and len(found[1]) == 1


def test_undispatched_looks_at_a_bounded_window_and_marks_the_stale(services: Services) -> None:
    old = [_enqueue(services) for _ in range(3)]
    time.sleep(0.3)
    _enqueue(services)  # young
    claim(services, [old[1]], "w")  # active: not a candidate
    first = services.store.undispatched(0.2, 0, 2)
    assert first is not None
    assert first[0] == old[2]  # looked at two jobs: continue after the second
    assert [(d.id, d.status) for d in first[1]] == [(old[0], "pending"), (old[2], "pending")]
    assert services.store.undispatched(0.2, old[2], 2) == (0, [])  # young; the end was reached


def test_remove_and_clean_leave_no_orphaned_history(services: Services) -> None:
    ids = [_enqueue(services) for _ in range(4)]
    for job_id in ids:
        [claimed] = claim(services, [job_id], "w")
        services.store.complete([Completion(job_id, claimed.lease_token, None)])
    assert [r["id"] for r in services.store.remove(JobFilter(ids=ids[:1]), 10)] == ids[:1]
    request = CleanRequest(status="completed", keep=1)
    assert services.store.clean("default", request) == 2
    with services.store.connection() as conn:
        left = conn.execute(
            "SELECT (SELECT array_agg(DISTINCT job_id) FROM job_attempts) AS a,"
            " (SELECT array_agg(DISTINCT job_id) FROM job_events) AS e"
        ).fetchone()
    assert left == {"a": [ids[3]], "e": [ids[3]]}


def _rows(services: Services, query: str, job_id: int) -> list[tuple[object, ...]]:
    with services.store.connection() as conn:
        return [tuple(r.values()) for r in conn.execute(query, (job_id,)).fetchall()]


def test_an_attempt_row_is_written_once_with_its_outcome_and_shown_while_it_runs(
    services: Services,
) -> None:
    job_id = _enqueue(services)
    [claimed] = claim(services, [job_id], "w")
    attempts = "SELECT attempt, outcome, to_status::text FROM job_attempts WHERE job_id = %s"
    assert _rows(services, attempts, job_id) == []  # the claim writes no attempt row
    running = services.store.get(job_id)
    assert running is not None
    [shown] = running.history  # the running attempt is the job's own row
    assert (shown.attempt, shown.outcome, shown.worker) == (1, "running", "w")
    assert shown.finished_at is None and shown.started_at == running.started_at
    assert services.store.complete([Completion(job_id, claimed.lease_token, 1)]) == {job_id}
    assert _rows(services, attempts, job_id) == [(1, "completed", "completed")]


def test_the_runners_move_out_of_active_is_its_attempt_not_an_event_row(
    services: Services,
) -> None:
    job_id = _enqueue(services, backoff={"delay_ms": 60_000})
    [first] = claim(services, [job_id], "w")
    services.store.fail([_fail(services, job_id, retry_in_ms=60_000)])
    services.store.promote(JobFilter(ids=[job_id]), 10)  # the admin's move: an event row
    [second] = claim(services, [job_id], "w")
    services.store.complete([Completion(job_id, second.lease_token, 1)])
    stored = "SELECT from_status::text, to_status::text, cause FROM job_events WHERE job_id = %s"
    assert _rows(services, stored + " ORDER BY id", job_id) == [
        (None, "pending", "api"),
        ("pending", "active", "runner"),
        ("delayed", "pending", "api"),
        ("pending", "active", "runner"),
    ]
    job = services.store.get(job_id)
    assert job is not None and job.events_total == 6
    assert [(e.from_status, e.to_status, e.cause) for e in job.events] == [
        (None, "pending", "api"),
        ("pending", "active", "runner"),
        ("active", "delayed", "runner"),  # from the first attempt's row
        ("delayed", "pending", "api"),
        ("pending", "active", "runner"),
        ("active", "completed", "runner"),  # from the second's
    ]
    assert first.lease_token != second.lease_token


def test_an_attempt_row_an_older_djs_opened_at_the_claim_is_completed(services: Services) -> None:
    job_id = _enqueue(services)
    [claimed] = claim(services, [job_id], "w")
    with services.store.connection() as conn:  # what the claim of djs before migration 013 did
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, worker) VALUES (%s, 1, 'w')", (job_id,)
        )
    assert services.store.complete([Completion(job_id, claimed.lease_token, 1)]) == {job_id}
    job = services.store.get(job_id)
    assert job is not None and [h.outcome for h in job.history] == ["completed"]


def test_an_active_row_written_by_hand_without_worker_or_start_is_still_recovered(
    services: Services,
) -> None:
    job_id = _enqueue(services)
    with services.store.connection() as conn:  # as another tool might write it
        conn.execute(
            "UPDATE jobs SET status = 'active', attempts = 1, worker = NULL, started_at = NULL,"
            " lease_token = gen_random_uuid(), lease_expires_at = now() - interval '1 second'"
            " WHERE id = %s",
            (job_id,),
        )
    [moved] = services.store.recover_stalled(10)  # the janitor's statement does not fail
    assert (moved.id, moved.status) == (job_id, "pending")
    job = services.store.get(job_id)
    assert job is not None and [(h.outcome, h.worker) for h in job.history] == [("stalled", "?")]
