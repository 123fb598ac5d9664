"""The lifecycle rules: what a handler's outcome does to a job. Pure functions, no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from common import limits
from common.handlers import JobTimeout, NonRetryableError, Retry


@dataclass(frozen=True)
class Decision:
    """After a failed attempt: wait retry_in_ms and run again, or fail for `reason`."""

    retry_in_ms: int | None
    reason: str | None


def backoff_ms(backoff: dict[str, Any], attempt: int, rand: float | None = None) -> int:
    """Delay before attempt n+1, after attempt n failed.

    exponential: delay_ms * 2^(n-1); fixed: delay_ms. Capped at max_delay_ms and at a week,
    then jitter j draws the delay uniformly from [d * (1 - j), d], so it is never longer than d.
    """
    delay = float(backoff.get("delay_ms", 1000))
    if backoff.get("type", "exponential") == "exponential":
        delay *= 2 ** min(attempt - 1, 64)  # past 2^64 steps, only the cap matters
    cap = backoff.get("max_delay_ms")
    if cap is not None:
        delay = min(delay, float(cap))
    jitter = float(backoff.get("jitter", 0.0))
    r = random.random() if rand is None else rand
    return bounded_ms(delay * (1.0 - jitter * r))


def bounded_ms(delay_ms: float) -> int:
    """A wait in whole milliseconds from 0 to a week: 2^99 steps of a backoff, or a handler's
    Retry(delay_s=inf), must not become a number Postgres cannot add to now()."""
    if not math.isfinite(delay_ms):
        return limits.MAX_BACKOFF_MS if delay_ms > 0 else 0
    return int(min(max(delay_ms, 0.0), limits.MAX_BACKOFF_MS))


def decide(
    error: BaseException, attempt: int, attempts_left: int, backoff: dict[str, Any]
) -> Decision:
    """The closed set of handler outcomes that are not a return value.

    NonRetryableError fails at once. Retry waits its own delay; JobTimeout and any other
    exception wait the backoff. Either retry needs an attempt left in the budget.
    """
    if isinstance(error, NonRetryableError):
        return Decision(None, "non_retryable")
    if attempts_left <= 0:
        return Decision(None, "timeout" if isinstance(error, JobTimeout) else "exhausted")
    if isinstance(error, Retry):
        return Decision(bounded_ms(float(error.delay_s) * 1000), None)
    return Decision(backoff_ms(backoff, attempt), None)
