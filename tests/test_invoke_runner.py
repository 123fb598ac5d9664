"""A real runner with `invoke="lambda"` against the local Postgres and Redis, its jobs run by
the Lambda Invoke API stand-in (tests/lambda_standin.py) through boto3 over HTTP: the lease,
timeout and history semantics are those of the local runner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import limits
from common.models import JobSubmission
from common.services import Services
from tests.helpers import run_djs
from tests.lambda_standin import LambdaStandIn
from tests.test_invoke import APP, PREFIX, aws_env
from worker_app.app import registry


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStandIn]:
    server = LambdaStandIn(APP, PREFIX, {f"{PREFIX}stubborn": 1.0})
    aws_env(monkeypatch, server.url)
    yield server
    server.close()


@pytest.fixture
def lambda_services(services: Services, standin: LambdaStandIn) -> Services:
    """The test's services, their runners invoking `{PREFIX}{type}` (DJS_LAMBDA_FUNCTION_PREFIX)."""
    settings = services.settings.model_copy(update={"lambda_function_prefix": PREFIX})
    return Services(settings, services.manager)


def _submit(services: Services, job_type: str, **fields: Any) -> int:
    return services.manager.enqueue([JobSubmission(type=job_type, **fields)])[0].job.id


def _run(services: Services, **kw: Any) -> None:
    runner = services.runner(
        registry, invoke="lambda", listen=False, burst=True, upkeep=[], poll_interval_s=0.05, **kw
    )
    runner.run()


def _job(services: Services, job_id: int) -> Any:
    job = services.store.get(job_id)
    assert job is not None
    return job


def test_jobs_complete_through_their_lambda_functions(
    lambda_services: Services, standin: LambdaStandIn
) -> None:
    ids = [_submit(lambda_services, "echo", payload={"n": i}) for i in range(20)]
    _run(lambda_services, concurrency=4)
    for i, job_id in enumerate(ids):
        job = _job(lambda_services, job_id)
        assert (job.status, job.result) == ("completed", {"n": i})
        assert [h.outcome for h in job.history] == ["completed"]
    assert standin.calls == [f"{PREFIX}echo"] * 20
    assert lambda_services.queue.depth("default") == {"wait": 0, "delayed": 0, "active": 0}


def test_a_failure_is_retried_then_failed_with_the_lambda_stack_trace(
    lambda_services: Services,
) -> None:
    job_id = _submit(lambda_services, "fail", payload={"message": "nope"}, attempts=2)
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert job.status == "failed" and job.last_error == "RuntimeError: nope"
    assert [h.outcome for h in job.history] == ["retried", "failed"]
    for attempt in job.history:
        assert attempt.error_type == "RuntimeError" and attempt.error_message == "nope"
        assert f"in Lambda function {PREFIX}fail:" in attempt.traceback
        assert "raise RuntimeError(message)" in attempt.traceback


def test_a_non_retryable_error_fails_at_once(lambda_services: Services) -> None:
    job_id = _submit(lambda_services, "fail", payload={"fatal": True}, attempts=5)
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert job.status == "failed" and len(job.history) == 1
    assert job.last_error == "NonRetryableError: failed on purpose"


def test_the_functions_timeout_is_a_timed_out_attempt(lambda_services: Services) -> None:
    job_id = _submit(lambda_services, "stubborn", payload={"seconds": 3}, attempts=1)
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert job.status == "failed"
    [attempt] = job.history
    assert attempt.outcome == "failed" and attempt.error_type == "JobTimeout"
    assert "Task timed out after 1.00 seconds" in attempt.error_message


def test_the_attempts_own_timeout_still_abandons_a_longer_invoke(
    lambda_services: Services, standin: LambdaStandIn
) -> None:
    standin.timeout_s[f"{PREFIX}stubborn"] = 30.0  # the function would run on for 2 s
    job_id = _submit(lambda_services, "stubborn", payload={"seconds": 2}, attempts=1, timeout_s=0.3)
    _run(lambda_services)
    [attempt] = _job(lambda_services, job_id).history
    assert attempt.error_type == "JobTimeout"
    assert attempt.error_message == "attempt 1 exceeded its 0.3 s timeout"


def test_a_throttle_is_retried_after_a_delay_then_completes(
    lambda_services: Services, standin: LambdaStandIn
) -> None:
    standin.throttle[f"{PREFIX}echo"] = 1
    job_id = _submit(lambda_services, "echo", payload={"ok": True}, attempts=2)
    started = time.monotonic()
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert (job.status, job.result) == ("completed", {"ok": True})
    assert [(h.outcome, h.error_type) for h in job.history] == [
        ("retried", "Retry"),
        ("completed", None),
    ]
    assert "throttled" in job.history[0].error_message
    assert time.monotonic() - started >= 1.0  # the throttle's delay, waited out in burst mode
    assert standin.calls == [f"{PREFIX}echo"] * 2


def test_a_retry_waits_the_delay_its_handler_gave(lambda_services: Services) -> None:
    fast = {"type": "fixed", "delay_ms": 10}  # the backoff alone would retry at once
    job_id = _submit(lambda_services, "later", payload={"delay_s": 1.5}, attempts=2, backoff=fast)
    started = time.monotonic()
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert (job.status, job.result) == ("completed", {"attempt": 2})
    first = job.history[0]
    assert (first.outcome, first.error_type, first.error_message) == (
        "retried",
        "Retry",
        "later please",
    )
    assert time.monotonic() - started >= 1.5


def test_a_missing_function_fails_the_job_non_retryable(lambda_services: Services) -> None:
    job_id = _submit(lambda_services, "nosuch", attempts=5)
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert job.status == "failed" and len(job.history) == 1
    assert job.last_error.startswith(f"NonRetryableError: no Lambda function {PREFIX}nosuch ")


def test_a_result_over_the_limit_fails_as_a_local_one_does(lambda_services: Services) -> None:
    big = {"blob": "x" * limits.MAX_RESULT_CHARS}
    job_id = _submit(lambda_services, "echo", payload=big, attempts=3)
    _run(lambda_services)
    job = _job(lambda_services, job_id)
    assert job.status == "failed" and len(job.history) == 1
    assert "at most 1,048,576 are stored" in job.last_error


def test_djs_worker_invoke_lambda(
    lambda_services: Services, standin: LambdaStandIn, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = _submit(lambda_services, "echo", payload={"from": "cli"})
    env = {**env, "DJS_LAMBDA_FUNCTION_PREFIX": PREFIX}
    env.pop("DJS_AWS_LOCALSTACK", None)
    env.update(AWS_ENDPOINT_URL_LAMBDA=standin.url, AWS_ACCESS_KEY_ID="testing")
    env.update(AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    done = run_djs(["worker", "--invoke", "lambda", "--burst", "--concurrency", "2"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"invoking Lambda functions {PREFIX}<type>" in done.stdout + done.stderr
    job = _job(lambda_services, job_id)
    assert (job.status, job.result) == ("completed", {"from": "cli"})
    assert standin.calls == [f"{PREFIX}echo"]
