"""A handler whose behaviour the test chooses per attempt, through the job's payload.

payload = {"plan": ["fail", "ok"]}: attempt 1 raises, attempt 2 returns. Steps:
ok, fail, fatal (NonRetryableError), retry:<seconds> (Retry), sleep:<seconds> (then returns),
hang (sleeps until cancelled or 30 s), cancellable (waits for context.cancelled, then raises).
A plan shorter than the attempts repeats its last step. Every attempt logs a line and
reports progress.
"""

from __future__ import annotations

import time
from typing import Any

from common.handlers import HandlerRegistry, NonRetryableError, Retry


class _NoChalice:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


registry = HandlerRegistry()
STARTS: dict[int, list[float]] = {}  # job id -> time.time() of each attempt's start


@registry.handler(_NoChalice(), "scripted", timeout_s=5)
def scripted(event: dict[str, Any], context: Any) -> Any:
    STARTS.setdefault(event["job_id"], []).append(time.time())
    plan = event["payload"].get("plan", ["ok"])
    step = plan[min(event["attempt"], len(plan)) - 1] if plan else "ok"
    context.log(f"attempt {event['attempt']}: {step}")
    context.progress(50)
    if step == "ok":
        context.progress(100)
        return {"attempt": event["attempt"], "remaining_ms": context.get_remaining_time_in_millis()}
    if step == "fail":
        raise RuntimeError(f"planned failure on attempt {event['attempt']}")
    if step == "fatal":
        raise NonRetryableError("planned fatal failure")
    if step.startswith("retry:"):
        raise Retry(delay_s=float(step.split(":")[1]))
    if step.startswith("sleep:"):
        time.sleep(float(step.split(":")[1]))
        return {"slept": True}
    if step in ("hang", "cancellable"):
        deadline = time.monotonic() + 30
        while not context.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("stopped: cancellation seen")
    raise ValueError(f"unknown step {step!r}")
