"""The Lambda invoker: `lambda.invoke` (RequestResponse) on `{prefix}{job type}`, which is how
Chalice names a handler's function (`{app_name}-{stage}-{name}`: "djs-worker-prod-echo"), with
what Lambda answers mapped to the closed set of handler outcomes (common/runner/invoke.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common import aws
from common.handlers import (
    RETRY_DELAY_MARK,
    Event,
    JobContext,
    JobTimeout,
    NonRetryableError,
    Retry,
)
from common.records import ClaimedJob
from common.runner.invoke import FunctionError, InvokeFailed
from common.runner.lifecycle import backoff_ms

# Lambda's bounds: a function runs at most 15 minutes; a synchronous invoke's request and
# response payloads are at most 6 MB each.
LAMBDA_MAX_RUN_S = 900.0
LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# An unqualified function name: a ':' would name a version or alias, so a job type
# "echo:1" must not reach another version of a function.
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FUNCTION_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,63}$")
MIN_THROTTLE_DELAY_S = 1.0  # a throttled invoke waits at least this long to be tried again
_TIMED_OUT = re.compile(r"Task timed out after (\d+(?:\.\d+)?) seconds")
_MAX_ERROR_TYPE_CHARS = 200


class LambdaServiceError(Exception):
    """Lambda could not run the function (a 5xx, a function not ready, no connection):
    not the handler's fault; retried with the job's backoff."""


def lambda_config(concurrency: int) -> Config:
    """No botocore retries (a retried invoke would run the handler twice: djs retries, by its
    own rules); a read that outlasts the longest run Lambda allows (the executor's deadline
    still abandons an attempt past its timeout); a connection per job thread; TCP keep-alive,
    since an invoke's connection may sit silent for up to 15 minutes."""
    return Config(
        read_timeout=LAMBDA_MAX_RUN_S + 30.0,
        connect_timeout=10.0,
        retries={"max_attempts": 0, "mode": "standard"},
        max_pool_connections=max(1, concurrency),
        tcp_keepalive=True,
    )


class LambdaInvoker:
    """Calls `{prefix}{job type}` with the event, synchronously, and maps what Lambda answers
    to an outcome (see `outcome_of`)."""

    def __init__(self, prefix: str, concurrency: int) -> None:
        if not FUNCTION_PREFIX.match(prefix):
            raise ValueError(
                f"the Lambda function prefix {prefix!r} must be at most 63 letters, digits, '-'"
                " or '_'"
            )
        self.prefix = prefix
        self.client = aws.client("lambda", config=lambda_config(concurrency))

    def function_name(self, job_type: str) -> str:
        name = self.prefix + job_type
        if not FUNCTION_NAME.match(name):
            raise NonRetryableError(
                f"job type {job_type!r} makes no Lambda function name ({name!r}: at most 64"
                " letters, digits, '-' or '_')"
            )
        return name

    def invoke(self, job: ClaimedJob, event: Event, context: JobContext) -> Any:
        name = self.function_name(job.type)
        body = json.dumps(event, separators=(",", ":")).encode()
        if len(body) > LAMBDA_MAX_PAYLOAD_BYTES:
            raise NonRetryableError(
                f"the event is {len(body):,} bytes of JSON; a synchronous Lambda invoke takes at"
                f" most {LAMBDA_MAX_PAYLOAD_BYTES:,}"
            )
        try:
            response = self.client.invoke(
                FunctionName=name, InvocationType="RequestResponse", Payload=body
            )
            raw = response["Payload"].read(LAMBDA_MAX_PAYLOAD_BYTES + 1)
        except ClientError as exc:
            raise _client_error(name, job, exc) from exc
        except BotoCoreError as exc:  # no connection, a read that timed out
            raise LambdaServiceError(f"invoking Lambda function {name} failed: {exc}") from exc
        return outcome_of(name, response.get("FunctionError"), raw, job)


def outcome_of(name: str, function_error: str | None, raw: bytes, job: ClaimedJob) -> Any:
    """The result of an invoke that Lambda answered with 200, or the outcome it raises."""
    if len(raw) > LAMBDA_MAX_PAYLOAD_BYTES:
        raise NonRetryableError(
            f"Lambda function {name} answered more than {LAMBDA_MAX_PAYLOAD_BYTES:,} bytes"
        )
    try:
        payload = json.loads(raw) if raw else None
    except (ValueError, RecursionError) as exc:
        what = "error" if function_error else "result"
        raise NonRetryableError(f"Lambda function {name}'s {what} is not JSON: {exc}") from exc
    if function_error:
        raise _function_error(name, payload, job)
    return payload


def _backoff_s(job: ClaimedJob) -> float:
    return backoff_ms(job.backoff, job.attempt - job.attempt_offset) / 1000


def _function_error(name: str, payload: Any, job: ClaimedJob) -> InvokeFailed:
    """A function that raised (Unhandled) or returned an error (Handled): its errorType says
    which outcome; the stackTrace becomes the attempt's traceback."""
    body = payload if isinstance(payload, dict) else {"errorMessage": str(payload)}
    error_type = str(body.get("errorType") or "")[:_MAX_ERROR_TYPE_CHARS]
    message = str(body.get("errorMessage") or "")
    error: Exception
    if error_type == "NonRetryableError":
        error = NonRetryableError(message)
    elif error_type == "Retry":
        error = _retry(message, job)
    elif error_type == "Sandbox.Timedout" or _TIMED_OUT.search(message):
        error = JobTimeout(f"Lambda function {name}: {message or 'timed out'}")
    else:
        error = FunctionError(error_type or "Unhandled", message)
    return InvokeFailed(error, _stack_text(name, body.get("stackTrace"), error_type, message))


def _retry(message: str, job: ClaimedJob) -> Retry:
    """A Retry with the delay its handler gave (written into its message by the Lambda entry,
    common/handlers.py), else the job's backoff."""
    mark = RETRY_DELAY_MARK.search(message)
    if mark is None:
        return Retry(_backoff_s(job), message or "retry requested")
    return Retry(float(mark.group(1)), message[: mark.start()] or "retry requested")


def _stack_text(name: str, stack: Any, error_type: str, message: str) -> str:
    """The Python runtime's stackTrace (a list of formatted frames) as a traceback."""
    if isinstance(stack, list):
        frames = "".join(
            str(frame) if str(frame).endswith("\n") else f"{frame}\n" for frame in stack
        )
    else:
        frames = "" if stack is None else f"{stack}\n"
    head = f"Traceback (most recent call last), in Lambda function {name}:\n"
    return f"{head}{frames}{error_type or 'Unhandled'}: {message}"


def _client_error(name: str, job: ClaimedJob, exc: ClientError) -> Exception:
    """Lambda refused the invoke: no such function fails the job; a throttle waits (not the
    handler's fault, so at least MIN_THROTTLE_DELAY_S, more as the job's backoff grows); a
    function not ready or a 5xx retries with the backoff; any other 4xx fails the job."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "ResourceNotFoundException" or status == 404:
        return NonRetryableError(
            f"no Lambda function {name} (deploy the worker app, or check"
            f" DJS_LAMBDA_FUNCTION_PREFIX): {message}"
        )
    if code == "TooManyRequestsException" or status == 429:
        delay_s = max(MIN_THROTTLE_DELAY_S, _backoff_s(job))
        return Retry(delay_s, f"Lambda throttled function {name}: {message}")
    if status >= 500 or status == 409 or status == 0:
        return LambdaServiceError(f"Lambda could not run function {name}: {code}: {message}")
    return NonRetryableError(f"Lambda refused to invoke function {name}: {code}: {message}")
