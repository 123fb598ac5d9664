"""Store transitions against real Postgres, including the illegal ones the guards refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.models import JobSubmission, ListQuery
from common.services import Services
from common.store import Completion, Failure


def _enqueue(services: Services, **fields: object) -> int:
    return services.store.enqueue(JobSubmission(type="echo", **fields))[0].id  # type: ignore[arg-type]


def _fail(job_id: int, attempt: int, retry_in_ms: int | None) -> Failure:
    return Failure(job_id, attempt, "RuntimeError", "boom", "Traceback ...", retry_in_ms)


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
    [claimed] = services.store.claim([job_id], "w1")
    assert claimed.attempt == 1
    assert services.store.complete([Completion(job_id, 1, {"ok": True})]) == {job_id}
    job = services.store.get(job_id)
    assert job is not None
    assert job.status == "completed" and job.result == {"ok": True}
    assert [(h.attempt, h.outcome, h.worker) for h in job.history] == [(1, "completed", "w1")]
    assert job.history[0].duration_ms is not None and job.history[0].duration_ms >= 0


def test_duplicate_claim_and_duplicate_completion_change_nothing(services: Services) -> None:
    job_id = _enqueue(services)
    assert len(services.store.claim([job_id], "w1")) == 1
    assert services.store.claim([job_id], "w2") == []  # second delivery of the same id
    assert services.store.complete([Completion(job_id, 1, 1)]) == {job_id}
    assert services.store.complete([Completion(job_id, 1, 2)]) == set()  # duplicate record
    job = services.store.get(job_id)
    assert job is not None and job.result == 1 and len(job.history) == 1


def test_completion_with_stale_attempt_is_rejected(services: Services) -> None:
    job_id = _enqueue(services)
    services.store.claim([job_id], "w1")
    services.store.fail([_fail(job_id, 1, 0)])  # retry now -> pending
    services.store.claim([job_id], "w2")  # attempt 2
    assert services.store.complete([Completion(job_id, 1, "late")]) == set()
    assert services.store.complete([Completion(job_id, 2, "on time")]) == {job_id}


def test_complete_or_fail_a_pending_job_is_illegal(services: Services) -> None:
    job_id = _enqueue(services)
    assert services.store.complete([Completion(job_id, 0, None)]) == set()
    assert services.store.fail([_fail(job_id, 0, None)]) == []
    job = services.store.get(job_id)
    assert job is not None and job.status == "pending"


def test_failure_with_retry_then_final_failure(services: Services) -> None:
    job_id = _enqueue(services, attempts=2)
    services.store.claim([job_id], "w1")
    [retry] = services.store.fail([_fail(job_id, 1, 5000)])
    assert retry.status == "delayed" and retry.run_at is not None
    assert services.store.claim([job_id], "w1") == []  # not due yet: never early
    job = services.store.get(job_id)
    assert job is not None and job.status == "delayed"


def test_final_failure_keeps_error_and_traceback(services: Services) -> None:
    job_id = _enqueue(services, attempts=1)
    services.store.claim([job_id], "w1")
    [done] = services.store.fail([_fail(job_id, 1, None)])
    assert done.status == "failed"
    job = services.store.get(job_id)
    assert job is not None
    assert job.last_error == "RuntimeError: boom"
    assert job.history[0].outcome == "failed"
    assert job.history[0].traceback == "Traceback ..."


def test_batch_claim_returns_only_runnable_ids(services: Services) -> None:
    ids = [_enqueue(services) for _ in range(5)]
    services.store.claim(ids[:2], "w1")
    claimed = services.store.claim([*ids, 999999], "w2")
    assert sorted(j.id for j in claimed) == ids[2:]


def test_list_filters_and_keyset_pagination(services: Services) -> None:
    ids = [_enqueue(services, queue="a" if i % 2 else "b") for i in range(7)]
    page1 = services.store.list_jobs(ListQuery(limit=3))
    page2 = services.store.list_jobs(ListQuery(limit=3, cursor=page1[-1].id))
    page3 = services.store.list_jobs(ListQuery(limit=3, cursor=page2[-1].id))
    seen = [j.id for j in page1 + page2 + page3]
    assert seen == sorted(ids, reverse=True)
    assert {j.queue for j in services.store.list_jobs(ListQuery(queue="a"))} == {"a"}
    services.store.claim([ids[0]], "w")
    assert [j.id for j in services.store.list_jobs(ListQuery(status="active"))] == [ids[0]]


def test_queue_counts(services: Services) -> None:
    for _ in range(3):
        _enqueue(services, queue="mail")
    job_id = _enqueue(services, queue="mail")
    services.store.claim([job_id], "w")
    assert services.store.queue_counts() == {"mail": {"pending": 3, "active": 1}}


def test_undispatched_respects_the_reconcile_lock(services: Services) -> None:
    _enqueue(services)
    with services.store.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(72450002)")
        assert services.store.undispatched(0, 0, 10) is None
    found = services.store.undispatched(0, 0, 10)
    assert found is not None and len(found) == 1
