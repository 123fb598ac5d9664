"""Example handlers that do real work. Each is a Lambda-shaped function: (event, context)."""

from __future__ import annotations

import csv
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from chalice.app import Blueprint

from common.handlers import NonRetryableError
from worker_app.registry import registry

bp = Blueprint(__name__)


@registry.handler(bp, "echo", timeout_s=10)
def echo(event: dict[str, Any], context: Any) -> Any:
    """Return the payload unchanged."""
    return event["payload"]


@registry.handler(bp, "now", timeout_s=10)
def now(event: dict[str, Any], context: Any) -> Any:
    """Return the wall-clock time the handler started at (benchmarks measure pickup with it)."""
    return {"started_at": time.time()}


@registry.handler(bp, "sleep", timeout_s=600)
def sleep(event: dict[str, Any], context: Any) -> Any:
    """Sleep for payload.seconds (default 1), then report how long it slept."""
    seconds = float(event["payload"].get("seconds", 1))
    time.sleep(seconds)
    return {"slept_s": seconds}


@registry.handler(bp, "fail", timeout_s=10)
def fail(event: dict[str, Any], context: Any) -> Any:
    """Raise on purpose: payload.message, and non-retryable when payload.fatal is true."""
    message = str(event["payload"].get("message", "failed on purpose"))
    if event["payload"].get("fatal"):
        raise NonRetryableError(message)
    raise RuntimeError(message)


@registry.handler(bp, "webhook", timeout_s=30)
def webhook(event: dict[str, Any], context: Any) -> Any:
    """POST payload.body as JSON to payload.url with a timeout; 4xx is not worth retrying."""
    payload = event["payload"]
    url = str(payload["url"])
    if not url.startswith(("http://", "https://")):
        raise NonRetryableError(f"webhook url must be http(s): {url!r}")
    remaining_s = context.get_remaining_time_in_millis() / 1000
    timeout_s = min(float(payload.get("timeout_s", 5)), remaining_s)
    request = urllib.request.Request(
        url,
        data=json.dumps(payload.get("body", {})).encode(),
        headers={"Content-Type": "application/json", "X-Djs-Job-Id": str(event["job_id"])},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return {"status": response.status, "body": response.read(4096).decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:
            raise NonRetryableError(f"webhook answered {exc.code}") from exc
        raise


@registry.handler(bp, "csv_report", timeout_s=120)
def csv_report(event: dict[str, Any], context: Any) -> Any:
    """Write payload.rows (a list of objects) as CSV to payload.path; return rows and bytes."""
    payload = event["payload"]
    rows = payload.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise NonRetryableError("payload.rows must be a list of objects")
    path = Path(str(payload["path"]))
    columns = sorted({key for row in rows for key in row})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return {"path": str(path), "rows": len(rows), "bytes": path.stat().st_size}
