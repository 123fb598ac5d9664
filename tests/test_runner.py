"""The runner in-process, in burst mode, with the real worker_app registry."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from common.handlers import HandlerRegistry, Retry
from common.models import JobSubmission
from common.runner import Runner
from common.services import Services
from worker_app.app import registry


def _submit(services: Services, job_type: str, **fields: Any) -> int:
    return services.manager.enqueue([JobSubmission(type=job_type, **fields)])[0].job.id


def _runner(services: Services, reg: HandlerRegistry = registry, **kw: Any) -> Runner:
    kw.setdefault("upkeep", [])
    return services.runner(reg, listen=False, burst=True, poll_interval_s=0.05, **kw)


class _App:
    """Stands in for a Chalice app's lambda_function decorator in test-only registries."""

    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def test_burst_runs_every_job_once_and_exits(services: Services) -> None:
    ids = [_submit(services, "echo", payload={"n": i}) for i in range(50)]
    runner = _runner(services, concurrency=4)
    runner.run()
    assert runner.processed == 50
    for i, job_id in enumerate(ids):
        job = services.store.get(job_id)
        assert job is not None and job.status == "completed" and job.result == {"n": i}
        assert len(job.history) == 1
    assert services.queue.depth("default") == {"wait": 0, "delayed": 0, "active": 0}


def test_failure_is_retried_then_failed_with_traceback(services: Services) -> None:
    job_id = _submit(services, "fail", payload={"message": "nope"}, attempts=2)
    reg = HandlerRegistry()
    reg.handler(_App(), "fail")(_raise(RuntimeError("nope")))
    started = time.monotonic()
    _runner(services, reg).run()
    job = services.store.get(job_id)
    assert job is not None and job.status == "failed"
    assert [h.outcome for h in job.history] == ["retried", "failed"]
    assert job.history[1].traceback and "RuntimeError: nope" in job.history[1].traceback
    # The retry waited the first backoff step (1 s) and burst mode waited for it.
    assert time.monotonic() - started >= 1.0


def test_non_retryable_fails_at_once(services: Services) -> None:
    job_id = _submit(services, "fail", payload={"fatal": True}, attempts=5)
    _runner(services).run()
    job = services.store.get(job_id)
    assert job is not None and job.status == "failed" and len(job.history) == 1
    assert job.last_error == "NonRetryableError: failed on purpose"


def test_retry_outcome_uses_its_own_delay(services: Services) -> None:
    job_id = _submit(services, "flaky", attempts=3)
    calls: list[int] = []

    def flaky(event: dict[str, Any], context: Any) -> Any:
        calls.append(event["attempt"])
        if event["attempt"] == 1:
            raise Retry(delay_s=0.1)
        return "ok"

    reg = HandlerRegistry()
    reg.handler(_App(), "flaky")(flaky)
    _runner(services, reg).run()
    job = services.store.get(job_id)
    assert job is not None and job.status == "completed" and calls == [1, 2]


def test_unknown_type_and_unserialisable_result_fail_clearly(services: Services) -> None:
    unknown = _submit(services, "no_such_handler")
    bad = _submit(services, "bad_result")
    reg = HandlerRegistry()
    reg.handler(_App(), "bad_result")(lambda event, context: object())
    _runner(services, reg).run()
    for job_id, message in ((unknown, "no handler"), (bad, "not JSON-serializable")):
        job = services.store.get(job_id)
        assert job is not None and job.status == "failed" and message in (job.last_error or "")


def test_stop_finishes_jobs_in_flight(services: Services) -> None:
    ids = [_submit(services, "sleep", payload={"seconds": 0.3}) for _ in range(3)]
    runner = services.runner(registry, upkeep=[], listen=False, concurrency=3, poll_interval_s=0.05)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 5
    while runner.processed == 0 and not _all_active(services, ids) and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    thread.join(5)
    assert not thread.is_alive()
    statuses = {services.store.get(i).status for i in ids}  # type: ignore[union-attr]
    assert statuses == {"completed"}


def test_reconciler_pushes_jobs_redis_lost(services: Services) -> None:
    from common.upkeep.reconciler import Reconciler

    job_id = services.store.enqueue(JobSubmission(type="echo"))[0].id  # stored, never pushed
    time.sleep(0.6)
    reconciler = Reconciler(services.manager, interval_s=0.5, batch=10)
    assert reconciler.run_once() == 1
    _runner(services).run()
    job = services.store.get(job_id)
    assert job is not None and job.status == "completed"


def test_a_burst_runner_runs_what_postgres_holds_and_redis_lacks_before_it_exits(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = services.store.enqueue(JobSubmission(type="echo"))[0].id  # stored, never pushed
    _runner(services).run()  # no reconciler: the burst runner itself checks Postgres
    assert services.store.status_of(job_id) == "completed"
    assert "1 jobs were missing from Redis" in caplog.text


def _all_active(services: Services, ids: list[int]) -> bool:
    return all(services.store.get(i).status == "active" for i in ids)  # type: ignore[union-attr]


def _raise(exc: Exception) -> Any:
    def handler(event: dict[str, Any], context: Any) -> Any:
        raise exc

    return handler


def test_results_and_errors_postgres_would_refuse_do_not_stop_the_runner(
    services: Services,
) -> None:
    nan = _submit(services, "nan_result")
    nul = _submit(services, "nul_error", attempts=1)
    fine = _submit(services, "echo")
    escaped = _submit(services, "backslash_u")
    reg = HandlerRegistry()
    reg.handler(_App(), "nan_result")(lambda event, context: {"x": float("nan")})
    reg.handler(_App(), "nul_error")(_raise(RuntimeError("bad\x00byte")))
    reg.handler(_App(), "echo")(lambda event, context: "ok")
    # A backslash followed by u0000 is six ordinary characters, not a NUL.
    reg.handler(_App(), "backslash_u")(lambda event, context: {"text": "\\u0000"})
    _runner(services, reg).run()
    nan_job, nul_job = services.store.get(nan), services.store.get(nul)
    assert nan_job is not None and nan_job.status == "failed"
    assert "not JSON-serializable" in (nan_job.last_error or "")
    assert nul_job is not None and nul_job.status == "failed"
    assert nul_job.history[0].error_message == "bad\\x00byte"
    assert services.store.status_of(fine) == "completed"
    escaped_job = services.store.get(escaped)
    assert escaped_job is not None and escaped_job.result == {"text": "\\u0000"}


def test_a_burst_run_returns_after_its_background_threads(services: Services) -> None:
    """The upkeep must not run on pools the caller closes after run() returns: a burst worker
    logged "janitor skipped: postgres is unavailable" on a clean exit."""
    _submit(services, "echo")
    runner = services.runner(registry, listen=True, burst=True, poll_interval_s=0.05)
    runner.run()
    assert runner.processed == 1
    alive = [t.name for t in threading.enumerate() if t.name in ("djs-watch", "djs-recorder")]
    assert alive == []


def test_huge_or_unstorable_outcomes_are_bounded_and_recorded(services: Services) -> None:
    """A 1 MB error message over many attempts made a 42 MB job; a lone surrogate in an error
    or a result was refused by Postgres, which stopped the thread that records outcomes."""
    from common import limits

    huge = _submit(services, "huge_error", attempts=3, backoff={"delay_ms": 0})
    surrogate = _submit(services, "surrogate_error", attempts=1)
    bad_result = _submit(services, "surrogate_result")
    big_result = _submit(services, "big_result")
    after = _submit(services, "echo")
    reg = HandlerRegistry()
    reg.handler(_App(), "huge_error")(_raise(RuntimeError("x" * 1_000_000)))
    reg.handler(_App(), "surrogate_error")(_raise(RuntimeError("bad \ud800 text")))
    reg.handler(_App(), "surrogate_result")(lambda event, context: {"t": "\udfff"})
    reg.handler(_App(), "big_result")(lambda event, context: "y" * (limits.MAX_RESULT_CHARS + 1))
    reg.handler(_App(), "echo")(lambda event, context: "ok")
    _runner(services, reg).run()
    job = services.store.get(huge)
    assert job is not None and job.status == "failed" and len(job.history) == 3
    for attempt in job.history:
        message = attempt.error_message or ""
        assert len(message) < limits.MAX_ERROR_CHARS + 100 and "more characters" in message
    failed = services.store.get(surrogate)
    assert failed is not None and failed.history[0].error_message == "bad \\ud800 text"
    for job_id, reason in ((bad_result, "surrogate"), (big_result, "characters of JSON")):
        refused = services.store.get(job_id)
        assert refused is not None and refused.status == "failed", job_id
        assert refused.fail_reason == "non_retryable" and reason in (refused.last_error or "")
    assert services.store.status_of(after) == "completed"
