"""The Lambda invoker: its boto3 calls against moto, and its outcome mapping against a Lambda
Invoke API stand-in on 127.0.0.1 that runs the real worker_app handlers (tests/lambda_standin.py).
The local invoker is the runner's default: tests/test_runner.py and the others cover it."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from chalice.app import Blueprint, Chalice
from moto import mock_aws

from common.handlers import HandlerRegistry, JobTimeout, NonRetryableError, Retry
from common.records import ClaimedJob
from common.runner.invoke import FunctionError, InvokeFailed
from common.runner.lambda_invoke import (
    LAMBDA_MAX_PAYLOAD_BYTES,
    LambdaInvoker,
    LambdaServiceError,
    lambda_config,
    outcome_of,
)
from tests import hardening_handlers
from tests.lambda_standin import LambdaStandIn
from worker_app.handlers import examples

PREFIX = "djs-worker-test-"
# Handlers only these tests deploy: registered as worker_app's are, into a registry of their own.
extra = HandlerRegistry()
extra_bp = Blueprint(__name__)


@extra.handler(extra_bp, "later")
def later(event: dict[str, Any], context: Any) -> Any:
    """Asks for a retry in payload.delay_s on its first attempt; done on the next."""
    if event["attempt"] == 1:
        raise Retry(delay_s=float(event["payload"]["delay_s"]), reason="later please")
    return {"attempt": event["attempt"]}


@extra.handler(extra_bp, "introspect")
def introspect(event: dict[str, Any], context: Any) -> Any:
    """What a handler's context says, under Lambda."""
    context.log("a line")
    context.progress(50)
    return {
        "type": type(context).__name__,
        "job_id": context.job_id,
        "attempt": context.attempt,
        "cancelled": context.cancelled,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "logs": context.logs,
    }


APP = Chalice(app_name="djs-worker")
for blueprint in (examples.bp, hardening_handlers.bp, extra_bp):
    APP.register_blueprint(blueprint)


def aws_env(monkeypatch: pytest.MonkeyPatch, lambda_url: str) -> None:
    """boto3 reaches `lambda_url` only: fake credentials, no metadata service, no LocalStack,
    and any other endpoint a closed port on 127.0.0.1 (never AWS itself)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    if lambda_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DJS_AWS_LOCALSTACK", raising=False)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStandIn]:
    server = LambdaStandIn(APP, PREFIX, {f"{PREFIX}stubborn": 0.5})
    aws_env(monkeypatch, server.url)
    yield server
    server.close()


def job(job_type: str, attempt: int = 1) -> ClaimedJob:
    return ClaimedJob(
        id=7, queue="default", type=job_type, payload={}, priority=0, attempt=attempt,
        max_attempts=3, attempt_offset=0, backoff={"type": "exponential", "delay_ms": 1000},
        timeout_s=None, lease_token=uuid.uuid4(),
    )  # fmt: skip


def invoke(invoker: LambdaInvoker, job_type: str, payload: Any) -> Any:
    event = {"job_id": 7, "type": job_type, "queue": "default", "payload": payload, "attempt": 1}
    return invoker.invoke(job(job_type), event, None)  # type: ignore[arg-type]


def failure(invoker: LambdaInvoker, job_type: str, payload: Any) -> InvokeFailed:
    with pytest.raises(InvokeFailed) as raised:
        invoke(invoker, job_type, payload)
    return raised.value


# --- boto3 against moto ---------------------------------------------------------------------


@pytest.fixture
def moto_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process: boto3's requests never leave it (no endpoint override)."""
    aws_env(monkeypatch, "")
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


def _canned(results: list[str]) -> None:
    """Queue the answers of moto's Lambda without Docker (its documented moto-api call, which
    mock_aws intercepts: it does not reach the network)."""
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response",
        json={"results": results, "region": "us-east-1"},
        timeout=5,
    )
    assert response.status_code == 201


def _deploy(name: str) -> None:
    from common import aws

    role = aws.client("iam").create_role(
        RoleName="djs-worker", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def echo(event, context):\n    return event\n")
    aws.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.echo",
        Code={"ZipFile": code.getvalue()},
    )  # fmt: skip


def test_invoke_sends_the_event_to_the_function_and_returns_its_answer(moto_lambda: None) -> None:
    _deploy(f"{PREFIX}echo")
    invoker = LambdaInvoker(PREFIX, concurrency=4)
    # moto's Lambda without Docker answers with the request's payload: the event as sent.
    sent = invoke(invoker, "echo", {"n": 1, "text": "é"})
    payload = {"n": 1, "text": "é"}
    assert sent == {
        "job_id": 7,
        "type": "echo",
        "queue": "default",
        "payload": payload,
        "attempt": 1,
    }
    # ... or with the canned answers queued for it, in order.
    _canned(['{"rows": 3}', "[1, 2]"])
    assert invoke(invoker, "echo", {}) == {"rows": 3}
    assert invoke(invoker, "echo", {}) == [1, 2]


def test_the_client_never_retries_and_pools_a_connection_per_job_thread() -> None:
    config = lambda_config(concurrency=32)
    assert config.retries == {"max_attempts": 0, "mode": "standard"}
    assert config.max_pool_connections == 32
    assert config.read_timeout > 900  # past the longest run Lambda allows
    assert config.tcp_keepalive is True


# --- outcomes, through the stand-in running the real handlers -------------------------------


def test_a_result_is_the_functions_json(standin: LambdaStandIn) -> None:
    invoker = LambdaInvoker(PREFIX, concurrency=2)
    assert invoke(invoker, "echo", {"a": [1, None, "x"]}) == {"a": [1, None, "x"]}
    assert standin.calls == [f"{PREFIX}echo"]


def test_an_exception_is_retryable_with_the_lambda_stack_trace(standin: LambdaStandIn) -> None:
    failed = failure(LambdaInvoker(PREFIX, 2), "fail", {"message": "nope"})
    assert isinstance(failed.error, FunctionError)
    assert (failed.error.error_type, str(failed.error)) == ("RuntimeError", "nope")
    head = f"Traceback (most recent call last), in Lambda function {PREFIX}fail:"
    assert failed.traceback.startswith(head)
    assert "worker_app/handlers/examples.py" in failed.traceback
    assert "raise RuntimeError(message)" in failed.traceback
    assert failed.traceback.endswith("RuntimeError: nope")


def test_a_non_retryable_error_stays_non_retryable(standin: LambdaStandIn) -> None:
    failed = failure(LambdaInvoker(PREFIX, 2), "fail", {"fatal": True, "message": "bad input"})
    assert type(failed.error) is NonRetryableError and str(failed.error) == "bad input"
    assert "raise NonRetryableError(message)" in failed.traceback


def test_the_functions_own_timeout_is_a_job_timeout(standin: LambdaStandIn) -> None:
    failed = failure(LambdaInvoker(PREFIX, 2), "stubborn", {"seconds": 3})
    assert isinstance(failed.error, JobTimeout)
    assert "Task timed out after 0.50 seconds" in str(failed.error)


def test_a_retry_keeps_its_delay_across_lambda(standin: LambdaStandIn) -> None:
    failed = failure(LambdaInvoker(PREFIX, 2), "later", {"delay_s": 2.5})
    assert isinstance(failed.error, Retry)
    assert failed.error.delay_s == 2.5 and str(failed.error) == "later please"
    assert "in later\n" in failed.traceback  # the handler's own frame


def test_a_handler_under_lambda_gets_a_job_context(standin: LambdaStandIn) -> None:
    invoker = LambdaInvoker(PREFIX, 2)
    seen = invoke(invoker, "introspect", {})
    assert {k: v for k, v in seen.items() if k != "remaining_ms"} == {
        "type": "JobContext",
        "job_id": 7,
        "attempt": 1,
        "cancelled": False,
        "logs": ["a line"],
    }
    assert 0 < seen["remaining_ms"] <= 3000  # chalice's Lambda context: 3 s to run
    # worker_app's sleep reads context.cancelled: Lambda's own context has no such field.
    assert invoke(invoker, "sleep", {"seconds": 0.05}) == {"slept_s": 0.05}


def test_a_throttle_is_retried_after_a_delay_and_invoked_once(standin: LambdaStandIn) -> None:
    standin.throttle[f"{PREFIX}echo"] = 1
    with pytest.raises(Retry) as raised:
        invoke(LambdaInvoker(PREFIX, 2), "echo", {})
    assert raised.value.delay_s >= 1.0 and "throttled" in str(raised.value)
    assert standin.calls == [f"{PREFIX}echo"]  # botocore did not retry it


SERVICE_ERRORS = [
    (500, "ServiceException"),
    (502, "EC2ThrottledException"),
    (409, "ResourceConflictException"),  # the function is being updated
]


@pytest.mark.parametrize(("status", "code"), SERVICE_ERRORS)
def test_a_service_error_is_retryable_and_invoked_once(
    standin: LambdaStandIn, status: int, code: str
) -> None:
    standin.fail_with[f"{PREFIX}echo"] = (status, code)
    with pytest.raises(LambdaServiceError, match=code):
        invoke(LambdaInvoker(PREFIX, 2), "echo", {})
    assert standin.calls == [f"{PREFIX}echo"]


def test_a_refused_request_is_not_retried(standin: LambdaStandIn) -> None:
    standin.fail_with[f"{PREFIX}echo"] = (403, "AccessDeniedException")
    with pytest.raises(NonRetryableError, match="AccessDeniedException"):
        invoke(LambdaInvoker(PREFIX, 2), "echo", {})


def test_a_missing_function_is_non_retryable_and_named(standin: LambdaStandIn) -> None:
    with pytest.raises(NonRetryableError, match=f"no Lambda function {PREFIX}nosuch "):
        invoke(LambdaInvoker(PREFIX, 2), "nosuch", {})


def test_what_lambda_cannot_take_is_refused_before_it_is_sent(standin: LambdaStandIn) -> None:
    invoker = LambdaInvoker(PREFIX, 2)
    with pytest.raises(NonRetryableError, match="at most 6,291,456"):
        invoke(invoker, "echo", {"blob": "x" * LAMBDA_MAX_PAYLOAD_BYTES})
    # "echo:1" would name version 1 of the echo function.
    for job_type in ("echo:1", "a.b", "x" * 60):
        with pytest.raises(NonRetryableError, match="makes no Lambda function name"):
            invoke(invoker, job_type, {})
    assert standin.calls == []
    with pytest.raises(ValueError, match="prefix"):
        LambdaInvoker("bad:prefix-", 2)


def test_error_documents_map_to_the_closed_set_of_outcomes() -> None:
    def error(doc: Any) -> Exception:
        with pytest.raises(InvokeFailed) as raised:
            outcome_of("f", "Unhandled", json.dumps(doc).encode(), job("f", attempt=2))
        return raised.value.error

    timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: x Error: gone"}
    assert isinstance(error(timed_out), JobTimeout)
    retry = error({"errorType": "Retry", "errorMessage": "later"})
    assert type(retry) is Retry and str(retry) == "later"
    assert retry.delay_s == 2.0  # the job's backoff after attempt 2: its own delay is lost
    other = error("a bare string")
    assert isinstance(other, FunctionError) and other.error_type == "Unhandled"
    with pytest.raises(NonRetryableError, match="not JSON"):
        outcome_of("f", None, b"{nope", job("f"))
    with pytest.raises(NonRetryableError, match="answered more than"):
        outcome_of("f", None, b" " * (LAMBDA_MAX_PAYLOAD_BYTES + 1), job("f"))
    assert outcome_of("f", None, b"", job("f")) is None
