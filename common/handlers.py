"""What a job handler sees and may raise: the same whether a runner or AWS Lambda calls it."""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import limits

Event = dict[str, Any]

# A job's timeout when neither the job nor its handler names one.
DEFAULT_TIMEOUT_S = 300.0


class Retry(Exception):  # a verb, like arq's Retry
    """Raise from a handler to be run again after `delay_s` (if attempts remain)."""

    def __init__(self, delay_s: float = 0.0, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class NonRetryableError(Exception):
    """Raise from a handler to fail the job at once, whatever attempts remain."""


class JobTimeout(Exception):
    """An attempt ran past its timeout; retried like any other error while attempts remain."""


@dataclass
class JobContext:
    """A Lambda-shaped context (function name, request id, remaining time) plus the job's own."""

    function_name: str
    job_id: int
    attempt: int
    deadline: float  # time.monotonic() at which the attempt times out
    timeout_s: float = 0.0
    # A runner passes the attempt's lease token: unique per attempt, and no uuid4() (an
    # os.urandom system call) per job on the hot path.
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 0
    logs: list[str] = field(default_factory=list)
    progress_pct: float | None = None
    # A plain flag, not a threading.Event: an Event per job (a Condition and a lock) was 9 %
    # of a busy runner's GIL time, and handlers only read it.
    _cancelled: bool = field(default=False, init=False, repr=False)
    _log_chars: int = field(default=0, init=False, repr=False)
    _logs_dropped: int = field(default=0, init=False, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def log(self, message: str) -> None:
        """Keep a log line with this attempt: lines of up to 2,000 characters, 64 KiB in all
        (1,000 full lines made 2 MB per attempt, 40 MB in a job's history); past that, one
        line says how many were dropped."""
        if self._log_chars >= limits.MAX_LOG_CHARS:
            self._logs_dropped += 1
            self.logs[-1] = f"... [{self._logs_dropped} more log lines not kept]"
            return
        line = str(message)[: limits.MAX_LOG_LINE_CHARS]
        self._log_chars += len(line)
        self.logs.append(line)
        if self._log_chars >= limits.MAX_LOG_CHARS:
            self.logs.append("... [0 more log lines not kept]")

    def progress(self, pct: float) -> None:
        self.progress_pct = max(0.0, min(100.0, float(pct)))

    @property
    def cancelled(self) -> bool:
        """True once an admin has asked for this job to stop (or its lease was lost)."""
        return self._cancelled

    def cancel(self) -> None:
        """Ask the handler to stop; it sees `cancelled`."""
        self._cancelled = True


HandlerFunc = Callable[[Event, Any], Any]

# How a Retry's delay crosses Lambda: its error document carries a type, a message and a
# stack, so the delay rides at the end of the message (common/runner/invoke.py reads it).
RETRY_DELAY_MARK = re.compile(r" \[retry in (\d{1,12}(?:\.\d{1,6})?) s\]$")


def lambda_entry(func: HandlerFunc) -> HandlerFunc:
    """What AWS Lambda calls for a handler: the same function, given a JobContext made from
    Lambda's context (so `cancelled`, `log`, `progress` and the remaining time work as under a
    runner), and a Retry's delay written into its message. A JobContext passes straight on."""

    @functools.wraps(func)
    def entry(event: Event, context: Any) -> Any:
        if isinstance(context, JobContext):
            return func(event, context)
        try:
            return func(event, _from_lambda(event, context))
        except Retry as exc:
            if not RETRY_DELAY_MARK.search(str(exc)):
                exc.args = (f"{exc} [retry in {max(0.0, min(exc.delay_s, 1e9)):.3f} s]",)
            raise  # the same exception: Lambda's stackTrace keeps the handler's frames

    return entry


def _from_lambda(event: Any, context: Any) -> JobContext:
    """A JobContext from Lambda's context and the runner's event (each field checked)."""
    fields = event if isinstance(event, dict) else {}
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    remaining_s = float(remaining()) / 1000 if callable(remaining) else DEFAULT_TIMEOUT_S
    return JobContext(
        function_name=str(getattr(context, "function_name", "")),
        job_id=_whole(fields.get("job_id")),
        attempt=_whole(fields.get("attempt")),
        deadline=time.monotonic() + remaining_s,
        timeout_s=remaining_s,
        aws_request_id=str(getattr(context, "aws_request_id", "")),
        memory_limit_in_mb=_whole(getattr(context, "memory_limit_in_mb", 0)),
    )


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class HandlerSpec:
    type: str
    func: HandlerFunc
    timeout_s: float


class HandlerRegistry:
    """Maps a job type to its handler. Registration also makes it a Chalice Lambda function."""

    def __init__(self) -> None:
        self._specs: dict[str, HandlerSpec] = {}

    def handler(
        self, app: Any, job_type: str, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: `@registry.handler(bp, "echo")` on `def echo(event, context)`."""

        def register(func: HandlerFunc) -> HandlerFunc:
            if job_type in self._specs:
                raise ValueError(f"job type {job_type!r} registered twice")
            # A runner calls `func` itself; Lambda calls the module's name for it, the entry.
            self._specs[job_type] = HandlerSpec(job_type, func, timeout_s)
            entry = lambda_entry(func)
            # Chalice wraps it as a Lambda function named after the job type.
            app.lambda_function(name=job_type)(entry)
            return entry

        return register

    def get(self, job_type: str) -> HandlerSpec | None:
        return self._specs.get(job_type)

    def types(self) -> list[str]:
        return sorted(self._specs)
