"""The lifecycle rules: what a handler's outcome does to a job."""

from __future__ import annotations

from common.handlers import NonRetryableError, Retry

DEFAULT_BACKOFF_MS = 1000


def retry_delay_ms(exc: BaseException, attempt: int, max_attempts: int) -> int | None:
    """Milliseconds to wait before the next attempt, or None when the job has failed for good.

    The closed set: NonRetryableError fails at once; Retry waits its own delay; any other
    exception waits delay * 2^(attempt-1). Either retry needs an attempt left.
    """
    if isinstance(exc, NonRetryableError) or attempt >= max_attempts:
        return None
    if isinstance(exc, Retry):
        return max(0, int(exc.delay_s * 1000))
    return int(DEFAULT_BACKOFF_MS * 2 ** (attempt - 1))
