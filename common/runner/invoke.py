"""How the runner calls a handler: in this process, or as its deployed AWS Lambda function.

Both invokers take the same Lambda-shaped event and the attempt's JobContext, and answer in
the closed set of handler outcomes (common/handlers.py): a result, `Retry`,
`NonRetryableError`, `JobTimeout`, or any other exception (retried while attempts remain).
The executor keeps the lease, the deadline and the history the same for both; the result goes
through the same check (executor `_json_ready`), the outcome through the same recorder.

The Lambda invoker is common/runner/lambda_invoke.py, imported only by a runner that uses it:
the Lambda zips hold no botocore (the runtime's own is not vendored), and they import this.
"""

from __future__ import annotations

from typing import Any, Protocol

from common.handlers import Event, HandlerRegistry, JobContext, NonRetryableError
from common.records import ClaimedJob

INVOKERS = ("local", "lambda")  # what --invoke and DJS_INVOKE take


class Invoker(Protocol):
    """Runs one attempt's handler: returns its result or raises its outcome."""

    def invoke(self, job: ClaimedJob, event: Event, context: JobContext) -> Any: ...


class InvokeFailed(Exception):
    """A failed attempt whose traceback was made elsewhere (a Lambda function's stackTrace):
    the executor records `error` with `traceback`, not with the invoker's own frames."""

    def __init__(self, error: Exception, traceback: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.traceback = traceback


class FunctionError(Exception):
    """A Lambda function's own exception, retried like any other; the history names it by its
    errorType ("RuntimeError: nope"), as it names a local handler's."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def error_name(error: BaseException) -> str:
    """The error type an attempt's history and log line name: a Lambda function's own."""
    return error.error_type if isinstance(error, FunctionError) else type(error).__name__


class LocalInvoker:
    """The handler registered for the job's type, called on this thread (the hot path: one
    dict lookup and the call, nothing allocated)."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry

    def invoke(self, job: ClaimedJob, event: Event, context: JobContext) -> Any:
        spec = self.registry.get(job.type)
        if spec is None:
            raise NonRetryableError(f"no handler registered for job type {job.type!r}")
        return spec.func(event, context)
