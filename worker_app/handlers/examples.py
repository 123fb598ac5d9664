"""Example handlers that do real work. Each is a Lambda-shaped function: (event, context)."""

from __future__ import annotations

import csv
import json
import os
import time
import urllib.parse
from typing import Any

from chalice.app import Blueprint

from common import netguard
from common.handlers import NonRetryableError
from worker_app.config import HandlerSettings
from worker_app.handlers import guards
from worker_app.registry import registry

bp = Blueprint(__name__)

_settings: list[HandlerSettings] = []


def configure(handler_settings: HandlerSettings) -> None:
    """What the handlers may touch; worker_app/app.py calls it once at start-up."""
    _settings[:] = [handler_settings]


def settings() -> HandlerSettings:
    if not _settings:
        configure(HandlerSettings())
    return _settings[0]


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
    """Sleep for payload.seconds (default 1, at most the time the attempt has left), in short
    steps that notice a cancel request, then report how long it slept."""
    seconds = _number(event["payload"], "seconds", default=1.0)
    end = time.monotonic() + min(seconds, context.get_remaining_time_in_millis() / 1000)
    while not context.cancelled and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
    if context.cancelled:
        raise NonRetryableError("cancelled while sleeping")
    return {"slept_s": seconds}


@registry.handler(bp, "fail", timeout_s=10)
def fail(event: dict[str, Any], context: Any) -> Any:
    """Raise on purpose: payload.message, and non-retryable when payload.fatal is true."""
    message = str(event["payload"].get("message", "failed on purpose"))[:1000]
    if event["payload"].get("fatal"):
        raise NonRetryableError(message)
    raise RuntimeError(message)


@registry.handler(bp, "webhook", timeout_s=30)
def webhook(event: dict[str, Any], context: Any) -> Any:
    """POST payload.body as JSON to payload.url, a public address only (common/netguard.py) unless
    DJS_WEBHOOK_ALLOW lists it. Redirects are not followed: a 3xx is the result. 4xx is not
    worth retrying; 5xx is retried."""
    payload = event["payload"]
    url = urllib.parse.urlsplit(str(payload.get("url", "")))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise NonRetryableError(f"webhook url must be http(s) with a host: {payload.get('url')!r}")
    timeout_s = min(
        _number(payload, "timeout_s", 5.0), context.get_remaining_time_in_millis() / 1000
    )
    body = json.dumps(payload.get("body", {})).encode()
    headers = {"Content-Type": "application/json", "X-Djs-Job-Id": str(event["job_id"])}
    allow = settings().allowed_targets()
    response = netguard.post(url, body, headers, allow, max(timeout_s, 0.001), 4096)
    text = response.body.decode(errors="replace")
    if 400 <= response.status < 500:
        raise NonRetryableError(f"webhook answered {response.status}")
    if response.status >= 500:
        raise RuntimeError(f"webhook answered {response.status}")
    result: dict[str, Any] = {"status": response.status, "body": text}
    if 300 <= response.status < 400:
        result["location"] = response.location
    return result


@registry.handler(bp, "csv_report", timeout_s=120)
def csv_report(event: dict[str, Any], context: Any) -> Any:
    """Write payload.rows (a list of objects) as CSV to payload.path, a relative .csv path
    below the reports directory (DJS_REPORTS_DIR); return the path, rows and bytes."""
    payload = event["payload"]
    rows = payload.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise NonRetryableError("payload.rows must be a list of objects")
    base = settings().reports_dir
    base.mkdir(parents=True, exist_ok=True)
    path = guards.report_path(base, str(payload.get("path", "")))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Checked again: a directory on the way may have been swapped for a symlink meanwhile.
    path = guards.report_path(base, str(payload.get("path", "")))
    columns = sorted({str(key) for row in rows for key in row})
    with os.fdopen(guards.open_new_file(path), "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return {
        "path": str(path.relative_to(base.resolve())),
        "rows": len(rows),
        "bytes": path.stat().st_size,
    }


def _number(payload: dict[str, Any], key: str, default: float) -> float:
    """A finite, non-negative number from the payload; NonRetryableError otherwise."""
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise NonRetryableError(f"payload.{key} must be a number from 0 to 1e9: {value!r}")
    return float(value)
